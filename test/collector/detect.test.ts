import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { encodeBatch, WindowProfile } from '../../src/sketch/index.js';
import { normal, rng } from '../helpers.js';
import { ADMIN_TOKEN, inProcess, recentWindow, WINDOW, type Running } from './harness.js';
import { featureDrifts, MIN_AGREEING_METRICS } from '../../src/collector/Detector.js';

/** A local webhook sink: records every JSON body posted to it. */
async function sink(): Promise<{ url: string; bodies: unknown[]; server: Server }> {
  const bodies: unknown[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      bodies.push(JSON.parse(data));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/hook`, bodies, server };
}

interface Shape {
  shift?: number;
  scale?: number;
  nanRate?: number;
  classMix?: [number, number, number];
}

/** n predictions of a model whose input x ~ N(10 + 3·shift, (3·scale)²), y ~ N(0, 1). */
function profile(start: number, n: number, seed: number, shape: Shape = {}, segment: Record<string, string> = { model: 'weather' }): WindowProfile {
  const r = rng(seed);
  const w = new WindowProfile(start, WINDOW, segment);
  const mix = shape.classMix ?? [0.5, 0.3, 0.2];
  for (let i = 0; i < n; i++) {
    w.predictions++;
    w.input('x').add(10 + 3 * (shape.shift ?? 0) + 3 * (shape.scale ?? 1) * normal(r));
    w.input('y').add(r() < (shape.nanRate ?? 0) ? NaN : normal(r));
    const u = r();
    w.output('class', 'classes', { classes: ['sun', 'rain', 'fog'] }).addLabel(u < mix[0] ? 0 : u < mix[0] + mix[1] ? 1 : 2);
    w.latency.add(Math.exp(normal(r)));
  }
  return w;
}

interface Alert {
  key: string;
  state: string;
  summary: string;
}

describe('detector and alerts (baseline from training data, webhook sink)', () => {
  let c: Running & { collector: { close(): Promise<void>; detect(): Promise<void> } };
  let slack: Awaited<ReturnType<typeof sink>>;
  let json: Awaited<ReturnType<typeof sink>>;
  const t0 = recentWindow(20);
  let seq = 0;
  const send = async (w: WindowProfile) => {
    const res = await c.ingest(encodeBatch({ agentId: 'agent-d', sequence: seq++, sentAt: Date.now(), windows: [w] }));
    assert.equal(res.status, 200, await res.text());
  };
  const firing = async () => (await c.admin<{ alerts: Alert[] }>('/v1/projects/test/alerts?state=firing')).body.alerts;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 300)); // webhook deliveries are asynchronous

  before(async () => {
    c = await inProcess({ detectIntervalMs: 3_600_000, webhookBackoffMs: 10 });
    slack = await sink();
    json = await sink();
    assert.equal((await c.admin('/v1/projects/test/webhooks', { method: 'POST', body: JSON.stringify({ url: slack.url }) })).status, 200);
    assert.equal((await c.admin('/v1/projects/test/webhooks', { method: 'POST', body: JSON.stringify({ url: json.url, format: 'json' }) })).status, 200);
    const training = profile(0, 20_000, 1, {}, { model: 'weather', source: 'training' });
    const upload = await fetch(`${c.url}/v1/projects/test/models/weather/baselines/training`, {
      method: 'PUT',
      body: encodeBatch({ agentId: 'baseline', sequence: 0, sentAt: Date.now(), windows: [training] }),
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' },
    });
    assert.equal(upload.status, 200, await upload.text());
  });
  after(async () => {
    await c.collector.close();
    slack.server.close();
    json.server.close();
  });

  it('normal traffic raises no alert', async () => {
    for (let k = 0; k < 4; k++) {
      await send(profile(t0 + k * WINDOW, 3000, 100 + k));
      await c.collector.detect();
    }
    await settle();
    assert.deepEqual(await firing(), []);
    assert.equal(slack.bodies.length, 0);
    const drift = await c.admin<{ results: Array<{ feature: string; metric: string; drifted: boolean }> }>(
      `/v1/projects/test/models/weather/drift?from=${t0}&to=${t0 + 4 * WINDOW}`,
    );
    assert.ok(drift.body.results.length >= 4 * 5, 'statistics are stored per window, feature and metric');
    assert.ok(drift.body.results.every((r) => !r.drifted));
  });

  it('a mean shift of x fires an alert for x, delivered to Slack and JSON hooks', async () => {
    await send(profile(t0 + 4 * WINDOW, 3000, 200, { shift: 1 }));
    await c.collector.detect();
    await settle();
    const keys = (await firing()).map((a) => a.key);
    assert.ok(keys.includes('drift|training|input|x'), keys.join(', '));
    assert.ok(!keys.some((k) => k.includes('|y')), 'y did not move');
    const text = (slack.bodies as Array<{ text: string }>).map((b) => b.text).join('\n');
    assert.match(text, /:red_circle: \*Alert\* test\/weather: input x drifted from training: .*ks/);
    const generic = json.bodies as Array<{ state: string; key: string; details: { feature: string } }>;
    assert.ok(generic.some((b) => b.state === 'firing' && b.key === 'drift|training|input|x' && b.details.feature === 'x'));
  });

  it('a few partial predictions in the next window do not resolve it; normal traffic does, with a message', async () => {
    await send(profile(t0 + 5 * WINDOW, 20, 300));
    await c.collector.detect();
    assert.ok((await firing()).some((a) => a.key === 'drift|training|input|x'), 'too little data to call it resolved');
    await send(profile(t0 + 5 * WINDOW, 3000, 301));
    await c.collector.detect();
    await settle();
    assert.ok(!(await firing()).some((a) => a.key === 'drift|training|input|x'));
    assert.ok((json.bodies as Array<{ state: string; key: string }>).some((b) => b.state === 'resolved' && b.key === 'drift|training|input|x'));
  });

  it('a NaN tripwire on y fires as a data-quality alert from one small batch', async () => {
    await send(profile(t0 + 6 * WINDOW, 60, 400, { nanRate: 0.2 }));
    await c.collector.detect();
    const keys = (await firing()).map((a) => a.key);
    assert.ok(keys.includes('quality|training|input|y|nan'), keys.join(', '));
  });

  it('a scale change and a class-mix shift are caught too', async () => {
    await send(profile(t0 + 7 * WINDOW, 3000, 500, { scale: 1.6, classMix: [0.25, 0.35, 0.4] }));
    await c.collector.detect();
    const keys = (await firing()).map((a) => a.key);
    assert.ok(keys.includes('drift|training|input|x'), keys.join(', '));
    assert.ok(keys.includes('drift|training|output|class'), keys.join(', '));
  });
});

describe('the drift rule', () => {
  const m = (drifted: boolean) => ({ value: 1, threshold: 0.5, noiseFloor: 0.1, drifted });
  it('one metric alone is not drift; two independent ones that agree are (the binned divergences count once); a feature with one metric needs that one', () => {
    const five = { ks: m(true), psi: m(false), wasserstein: m(false), jensenShannon: m(false), hellinger: m(false) };
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['ks'], metrics: five }), false);
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['ks', 'psi'], metrics: { ...five, psi: m(true) } }), true);
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['chiSquare'], metrics: { chiSquare: m(true) } }), true);
    assert.equal(featureDrifts({ insufficientData: true, drifted: ['ks', 'psi'], metrics: five }), null);
    // The three binned divergences are one piece of evidence: alone, they are not drift.
    const binned = { ...five, psi: m(true), jensenShannon: m(true), hellinger: m(true) };
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['psi', 'jensenShannon', 'hellinger'], metrics: binned }), false);
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['wasserstein', 'hellinger'], metrics: { ...binned, wasserstein: m(true) } }), true);
    // A categorical feature's two metrics are each their own.
    const categorical = { chiSquare: m(true), lInf: m(true) };
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['chiSquare'], metrics: categorical }), false);
    assert.equal(featureDrifts({ insufficientData: false, drifted: ['chiSquare', 'lInf'], metrics: categorical }), true);
    assert.equal(MIN_AGREEING_METRICS, 2);
  });
});
