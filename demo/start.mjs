// `npm start`: the collector on the embedded store with the demo project, its ingest key and
// the training baseline loaded, serving the demo page and the dashboard. Uses the built package
// only (npm start builds it first).
//
//   node demo/start.mjs [--port 8787] [--host 127.0.0.1] [--data .sketchwatch-data | --memory]
//   env: SKETCHWATCH_ADMIN_TOKEN (default: random, printed), SKETCHWATCH_DEMO_WEBHOOK (a Slack or
//   JSON webhook URL for the demo's alerts; `,json` at the end for the JSON format)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { relaunchForGc, singleThreadedGc, startCollector, whenParentGone } from '../dist/collector/server.js';
import { BASELINE, buildBaseline } from './baseline.mjs';

const DEMO = dirname(fileURLToPath(import.meta.url));
const ROOT = join(DEMO, '..');

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.SKETCHWATCH_PORT ?? '8787' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string', default: process.env.SKETCHWATCH_DATA_DIR ?? join(ROOT, '.sketchwatch-data') },
    memory: { type: 'boolean', default: false },
  },
});

// The demo's settings: one-minute windows and a send every 5 s, so drift shows within a minute.
const WINDOW = 60_000;
const FLUSH = 5_000;

async function main() {
  // On one core, as `sketchwatch collector` does: run again as node --single-threaded-gc.
  const relaunched = await relaunchForGc();
  if (relaunched !== null) process.exit(relaunched);
  if (!existsSync(BASELINE)) buildBaseline();
  const collector = await startCollector({
    port: Number(values.port),
    host: values.host,
    dataDir: process.env.DATABASE_URL || values.memory ? undefined : values.data,
    serve: [
      { prefix: '/demo/', dir: DEMO },
      { prefix: '/dist/agent/', dir: join(ROOT, 'dist/agent') },
    ],
  });
  const admin = async (path, init = {}) => {
    const r = await fetch(`${collector.url}${path}`, { ...init, headers: { authorization: `Bearer ${collector.config.adminToken}`, ...(init.headers ?? {}) } });
    const body = await r.json();
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${JSON.stringify(body)}`);
    return body;
  };
  const json = { 'content-type': 'application/json' };
  const project = await admin('/v1/projects', { method: 'POST', headers: json, body: JSON.stringify({ id: 'demo' }) });
  await admin('/v1/projects/demo/models/weather/baselines/training', {
    method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(BASELINE),
  });
  const hook = process.env.SKETCHWATCH_DEMO_WEBHOOK;
  if (hook) {
    const [url, format] = hook.split(',');
    const existing = await admin('/v1/projects/demo/webhooks');
    if (!existing.webhooks?.some((w) => w.url === url)) {
      await admin('/v1/projects/demo/webhooks', { method: 'POST', headers: json, body: JSON.stringify({ url, format: format === 'json' ? 'json' : 'slack' }) });
    }
  }
  // What the page needs to send (nothing secret: an ingest key only lets a page send data).
  writeFileSync(join(DEMO, 'config.json'), `${JSON.stringify({ key: project.ingestKey, window: WINDOW, flushInterval: FLUSH, dashboard: '/dashboard/' }, null, 2)}\n`);

  // Before the lines that say it is up: a signal with no handler yet would end it uncommitted.
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await collector.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  whenParentGone(stop);
  console.log(`sketchwatch demo (store: ${collector.db.kind}${collector.config.dataDir ? ` in ${collector.config.dataDir}` : ''}${singleThreadedGc() ? '; V8 GC on the main thread only' : ''})`);
  console.log(`  demo:       ${collector.url}/demo/`);
  console.log(`  dashboard:  ${collector.url}/dashboard/#token=${encodeURIComponent(collector.config.adminToken)}`);
  console.log(`  ingest key: ${project.ingestKey} (project demo)`);
  console.log(`  admin token: ${collector.config.adminToken}`);
  if (hook) console.log(`  alerts go to ${hook.split(',')[0]}`);
  console.log('Ctrl-C stops it.');
}

main().catch((e) => {
  console.error(`sketchwatch demo: ${e.message}`);
  process.exit(1);
});
