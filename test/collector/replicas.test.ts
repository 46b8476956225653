import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rng, shuffle } from '../helpers.js';
import { killAll, pgTestDatabase, recentWindow, simulate, spawnCollector, totals, type Sent } from './harness.js';

/**
 * Collectors as real processes: two replicas on one PostgreSQL database, one on PGlite, and a
 * SIGKILL in the middle of ingest.
 */
after(killAll);

/** Sends every batch to the given collectors (round robin, `copies` times each, shuffled). */
async function deliver(targets: Array<{ ingest(b: Uint8Array<ArrayBuffer>): Promise<Response> }>, sent: Sent, copies: number, seed: number): Promise<string[]> {
  const jobs = shuffle(Array.from({ length: copies }, () => sent.batches).flat(), rng(seed));
  const statuses: string[] = [];
  for (let i = 0; i < jobs.length; i += 8) {
    const group = jobs.slice(i, i + 8);
    const results = await Promise.all(group.map(async (b, k) => {
      const res = await targets[(i + k) % targets.length].ingest(b.bytes);
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { status: string }).status;
    }));
    statuses.push(...results);
  }
  return statuses;
}

describe('two collector replicas on one PostgreSQL database', () => {
  let url: string;
  let drop: () => Promise<void>;
  before(async () => {
    ({ url, drop } = await pgTestDatabase('sketchwatch_test'));
  });
  after(() => drop());

  it('batches spread over both, duplicates across replicas → counts exact', async () => {
    // Started together on purpose: migrations must not race.
    const [a, b] = await Promise.all([spawnCollector([], { DATABASE_URL: url }), spawnCollector([], { DATABASE_URL: url })]);
    try {
      assert.equal(a.ingestKey, b.ingestKey, 'both replicas serve the same project');
      const start = recentWindow(3);
      const sent = simulate(8, 6, 120, start, 21);
      const statuses = await deliver([a, b], sent, 3, 4);
      assert.equal(statuses.filter((s) => s === 'applied').length, sent.batches.length);
      for (const replica of [a, b]) {
        const t = await totals(replica, start);
        assert.equal(t.predictions, sent.predictions);
        assert.equal(t.x, sent.x.length);
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('one collector process on the embedded store (PGlite)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sketchwatch-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('duplicates and restarts → counts exact; data survives a clean restart', async () => {
    const start = recentWindow(3);
    const sent = simulate(4, 6, 100, start, 31);
    let c = await spawnCollector(['--data', dir]);
    await deliver([c], sent, 2, 6);
    await c.stop();
    c = await spawnCollector(['--data', dir]);
    try {
      const statuses = await deliver([c], sent, 1, 7);
      assert.ok(statuses.every((s) => s === 'duplicate'), 'resent batches are recognized after a restart');
      const t = await totals(c, start);
      assert.equal(t.predictions, sent.predictions);
    } finally {
      await c.stop();
    }
  });

  it('SIGKILL during ingest, restart, resend what was not acknowledged → counts exact', async () => {
    const killDir = mkdtempSync(join(tmpdir(), 'sketchwatch-kill-'));
    try {
      const start = recentWindow(3);
      const sent = simulate(10, 8, 80, start, 41);
      let c = await spawnCollector(['--data', killDir]);
      const acked = new Set<number>();
      const inFlight: Array<Promise<void>> = [];
      let i = 0;
      // Keep 8 requests in flight; kill the process once a third of the batches are acknowledged.
      await new Promise<void>((resolve) => {
        const next = (): void => {
          if (acked.size >= sent.batches.length / 3) return resolve();
          if (i >= sent.batches.length) return resolve();
          const index = i++;
          const p = c.ingest(sent.batches[index].bytes).then(async (res) => {
            if (res.status === 200) acked.add(index);
          }, () => {}).then(next);
          inFlight.push(p);
        };
        for (let k = 0; k < 8; k++) next();
      });
      await c.kill();
      await Promise.allSettled(inFlight);
      assert.ok(acked.size > 0 && acked.size < sent.batches.length, `killed mid-stream (${acked.size} acknowledged)`);
      c = await spawnCollector(['--data', killDir]);
      try {
        // An agent resends everything it holds: every batch not acknowledged.
        for (let k = 0; k < sent.batches.length; k++) {
          if (acked.has(k)) continue;
          const res = await c.ingest(sent.batches[k].bytes);
          assert.equal(res.status, 200);
        }
        const t = await totals(c, start);
        assert.equal(t.predictions, sent.predictions, 'nothing acknowledged was lost, nothing counted twice');
        assert.equal(t.x, sent.x.length);
      } finally {
        await c.stop();
      }
    } finally {
      rmSync(killDir, { recursive: true, force: true });
    }
  });
});
