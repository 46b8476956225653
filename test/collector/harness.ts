/** Shared pieces of the collector tests: collectors in-process or as processes, fake agents. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { encodeBatch, WindowProfile } from '../../src/sketch/index.js';
import { startCollector, type Collector } from '../../src/collector/server.js';
import type { CollectorConfig } from '../../src/collector/config.js';
import { normal, rng } from '../helpers.js';

export const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const WINDOW = 60_000;

export interface Running {
  url: string;
  ingestKey: string;
  admin<T = unknown>(path: string, init?: RequestInit): Promise<{ status: number; body: T }>;
  ingest(body: Uint8Array<ArrayBuffer>, query?: string): Promise<Response>;
}

function client(url: string, ingestKey: string): Running {
  return {
    url,
    ingestKey,
    async admin<T>(path: string, init: RequestInit = {}) {
      const res = await fetch(`${url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
      });
      return { status: res.status, body: (await res.json()) as T };
    },
    ingest(body: Uint8Array<ArrayBuffer>, query = `key=${ingestKey}`) {
      return fetch(`${url}/v1/ingest?${query}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    },
  };
}

/** A collector in this process (in-memory PGlite unless `databaseUrl` is given). */
export async function inProcess(options: Partial<CollectorConfig> = {}): Promise<Running & { collector: Collector }> {
  const collector = await startCollector({ port: 0, adminToken: ADMIN_TOKEN, ...options });
  const c = client(collector.url, '');
  const { body } = await c.admin<{ ingestKey: string }>('/v1/projects', { method: 'POST', body: JSON.stringify({ id: 'test' }) });
  return { ...client(collector.url, body.ingestKey), collector };
}

const children = new Set<ChildProcess>();

/** Kills every collector process this test file started (an `after` hook: a test that failed
 * half-way must not leave a child that keeps the test process alive). */
export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/** A collector as a child process through the CLI, as an operator runs it. */
export async function spawnCollector(args: string[], env: Record<string, string> = {}): Promise<Running & { process: ChildProcess; output(): string; stop(): Promise<void>; kill(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/index.ts'), 'collector', '--port', '0', '--project', 'test', ...args], {
    cwd: ROOT,
    // One process, whatever the cores: kill() must hit the collector itself (singleThreadedGc.ts
    // has its own test of the relaunch).
    env: { ...process.env, SKETCHWATCH_ADMIN_TOKEN: ADMIN_TOKEN, SKETCHWATCH_SINGLE_THREADED_GC: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const ready = await new Promise<{ url: string; key: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${out}${err}`)), 30_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const key = /ingest key (\S+)/.exec(out)?.[1];
      if (url && key) {
        clearTimeout(timer);
        resolve({ url, key });
      }
    });
    child.on('exit', (code) => reject(new Error(`collector exited with ${code}: ${out}${err}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    ...client(ready.url, ready.key),
    process: child,
    /** What it printed so far, stdout and stderr. */
    output: () => out + err,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** What a simulated agent sent: the batches' bytes and the raw values behind them. */
export interface Sent {
  batches: Array<{ agentId: string; sequence: number; bytes: Uint8Array<ArrayBuffer> }>;
  predictions: number;
  x: number[];
}

/**
 * `agents` agents each send `perAgent` batches of `rows` predictions into windows starting at
 * `windowStart`, spread over two windows and two segments (model versions).
 */
export function simulate(agents: number, perAgent: number, rows: number, windowStart: number, seed = 1): Sent {
  const r = rng(seed);
  const sent: Sent = { batches: [], predictions: 0, x: [] };
  for (let a = 0; a < agents; a++) {
    const agentId = `agent-${seed}-${a}`;
    for (let s = 0; s < perAgent; s++) {
      const start = windowStart + (s % 2) * WINDOW;
      const w = new WindowProfile(start, WINDOW, { model: 'weather', version: a % 2 ? '3' : '4' });
      for (let i = 0; i < rows; i++) {
        const x = 10 + 3 * normal(r);
        sent.x.push(x);
        w.predictions++;
        w.input('x').add(x);
        w.input('y').add(i % 50 === 0 ? null : normal(r));
        w.output('class', 'classes', { classes: ['a', 'b', 'c'] }).addLabel(i % 3);
        w.latency.add(Math.exp(normal(r)));
      }
      sent.predictions += rows;
      sent.batches.push({ agentId, sequence: s, bytes: encodeBatch({ agentId, sequence: s, sentAt: Date.now(), windows: [w] }) });
    }
  }
  return sent;
}

export interface WindowSummary {
  start: number;
  predictions: number;
  inputs: Array<{ name: string; count: number; missing: number }>;
}

/** Total predictions and x-count the collector reports for the two windows. */
export async function totals(c: Running, windowStart: number): Promise<{ predictions: number; x: number; missing: number }> {
  const { status, body } = await c.admin<{ windows: WindowSummary[] }>(`/v1/projects/test/models/weather/windows?from=${windowStart}&to=${windowStart + 2 * WINDOW}`);
  if (status !== 200) throw new Error(`windows query: ${status} ${JSON.stringify(body)}`);
  let predictions = 0;
  let x = 0;
  let missing = 0;
  for (const w of body.windows) {
    predictions += w.predictions;
    x += w.inputs.find((f) => f.name === 'x')?.count ?? 0;
    missing += w.inputs.find((f) => f.name === 'y')?.missing ?? 0;
  }
  return { predictions, x, missing };
}

/** The current UTC-aligned window start, minus `back` windows. */
export function recentWindow(back = 2): number {
  return WindowProfile.alignedStart(Date.now(), WINDOW) - back * WINDOW;
}

const PG_ADMIN_URL = process.env.SKETCHWATCH_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A fresh database on the test PostgreSQL server (127.0.0.1:5432, or
 * SKETCHWATCH_TEST_DATABASE_URL): its URL, and `drop` to remove it (forcing connections out).
 */
export async function pgTestDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await admin.connect();
  } catch (e) {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL} (${(e as Error).message}): start it, or set SKETCHWATCH_TEST_DATABASE_URL`);
  }
  const name = `${prefix}_${process.pid}_${Date.now()}`;
  await admin.query(`create database ${name}`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
