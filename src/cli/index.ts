#!/usr/bin/env node
import { statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createProject } from '../collector/Aggregates.js';
import { ConfigError } from '../collector/config.js';
import { startCollector } from '../collector/server.js';
import { relaunchForGc, singleThreadedGc, whenParentGone } from '../collector/singleThreadedGc.js';
import { buildBaseline } from './baseline.js';

const USAGE = `usage: sketchwatch <command> [options]

commands:
  collector   run the collector
    --port N          port to listen on (default 8787, 0 = any free port)
    --host H          address to bind (default 127.0.0.1)
    --data DIR        embedded store directory (default .sketchwatch-data; ignored with DATABASE_URL)
    --memory          embedded store in memory (nothing kept; for trials and tests)
    --project ID      create this project if missing and print its ingest key
  baseline <file.csv|.json|.jsonl>   build a baseline profile from training data
    --model M         the model it describes (required)
    --inputs a,b,c    numeric input columns (default: every column not named below)
    --categorical c   columns of labels (comma separated)
    --outputs o       output columns (numeric)
    --class-output c  a classifier's predicted-class column, recorded as the output \`class\`
    --classes a,b,c   its labels, in the model's output order (with --class-output)
    --out FILE        where to write the profile (default <file>.swb)
    --chunks N        profile N consecutive chunks too, to calibrate thresholds (default 20, 0 = none)
    --upload URL      also upload it: the collector's base URL (needs --project, --name and
                      SKETCHWATCH_ADMIN_TOKEN)
    --project P, --name N   the project and baseline name for --upload (name default: training)
  environment: DATABASE_URL=postgres://… (PostgreSQL instead of the embedded store),
               SKETCHWATCH_ADMIN_TOKEN (else a random one is printed),
               SKETCHWATCH_SINGLE_THREADED_GC=auto|on|off (auto: on one core the collector runs
               itself again as node --single-threaded-gc), and the SKETCHWATCH_* limits in the README.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'baseline') return baselineCommand(rest);
  if (command !== 'collector') {
    process.stderr.write(`sketchwatch: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      memory: { type: 'boolean' },
      project: { type: 'string' },
    },
    strict: true,
  });
  // One core: run again as `node --single-threaded-gc` (see singleThreadedGc.ts), and end with it.
  const relaunched = await relaunchForGc();
  if (relaunched !== null) return relaunched;
  const port = values.port === undefined ? undefined : Number(values.port);
  const collector = await startCollector({
    port,
    host: values.host,
    dataDir: process.env.DATABASE_URL || values.memory ? undefined : (values.data ?? process.env.SKETCHWATCH_DATA_DIR ?? '.sketchwatch-data'),
    logger: false,
  });
  // Before it says it is listening: whoever waits for that line may signal it straight away, and
  // a signal with no handler yet would end it without committing what is queued.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`sketchwatch: ${signal}, committing queued batches and stopping\n`);
    collector.close().then(
      () => process.exit(0),
      (e: Error) => {
        process.stderr.write(`sketchwatch: error while stopping: ${e.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  whenParentGone(() => stop('the process that started it is gone'));
  const gc = singleThreadedGc() ? '; V8 GC on the main thread only' : '';
  const lines = [`sketchwatch collector listening on ${collector.url} (store: ${collector.db.kind}${collector.config.dataDir ? ` in ${collector.config.dataDir}` : ''}${gc})`];
  if (!process.env.SKETCHWATCH_ADMIN_TOKEN) lines.push(`admin token: ${collector.config.adminToken}`);
  if (values.project) {
    const project = await createProject(collector.db, values.project);
    lines.push(`project ${project.id}: ingest key ${project.ingestKey}`);
    lines.push(`  ingest: POST ${collector.url}/v1/ingest?key=${project.ingestKey}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return -1; // keep running
}

async function baselineCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      inputs: { type: 'string' },
      categorical: { type: 'string' },
      outputs: { type: 'string' },
      'class-output': { type: 'string' },
      classes: { type: 'string' },
      out: { type: 'string' },
      chunks: { type: 'string' },
      upload: { type: 'string' },
      project: { type: 'string' },
      name: { type: 'string' },
    },
    strict: true,
  });
  const file = positionals[0];
  if (!file || !values.model) {
    process.stderr.write(`sketchwatch baseline: give a data file and --model\n\n${USAGE}`);
    return 2;
  }
  const list = (v?: string) => (v ? v.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
  if ((values['class-output'] === undefined) !== (values.classes === undefined)) {
    process.stderr.write('sketchwatch baseline: --class-output and --classes go together\n');
    return 2;
  }
  const showProgress = statSync(file).size > 1 << 20;
  let last = 0;
  const result = await buildBaseline(file, {
    model: values.model,
    inputs: list(values.inputs),
    categorical: list(values.categorical),
    outputs: list(values.outputs),
    classOutput: values['class-output'] === undefined ? undefined : { column: values['class-output'], classes: list(values.classes) ?? [] },
    chunks: values.chunks === undefined ? undefined : Number(values.chunks),
    progress: showProgress
      ? (done, total) => {
          const now = Date.now();
          if (now - last < 200 && done < total) return;
          last = now;
          const width = 30;
          const filled = Math.round((done / total) * width);
          process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${((100 * done) / total).toFixed(0)}% of ${(total / 1048576).toFixed(1)} MiB`);
        }
      : undefined,
  });
  if (showProgress) process.stderr.write('\n');
  const out = values.out ?? `${file.replace(/\.[^.]+$/, '')}.swb`;
  writeFileSync(out, result.bytes);
  const features = [...result.window.inputs.keys(), ...result.window.outputs.keys()];
  process.stdout.write(`baseline for ${values.model}: ${result.rows} rows, ${features.length} features (${features.join(', ')}) → ${out} (${result.bytes.length} bytes)\n`);
  for (const [column, n] of result.unparseable) process.stdout.write(`  note: ${n} cells of ${column} were not numbers (counted as missing)\n`);
  if (values.upload) {
    const token = process.env.SKETCHWATCH_ADMIN_TOKEN;
    if (!values.project || !token) {
      process.stderr.write('sketchwatch baseline: --upload needs --project and SKETCHWATCH_ADMIN_TOKEN\n');
      return 2;
    }
    const name = values.name ?? 'training';
    const url = `${values.upload.replace(/\/$/, '')}/v1/projects/${encodeURIComponent(values.project)}/models/${encodeURIComponent(values.model)}/baselines/${encodeURIComponent(name)}`;
    const res = await fetch(url, { method: 'PUT', body: result.bytes, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } });
    if (!res.ok) {
      process.stderr.write(`sketchwatch baseline: upload failed: ${res.status} ${await res.text()}\n`);
      return 1;
    }
    process.stdout.write(`uploaded as baseline ${JSON.stringify(name)} of ${values.project}/${values.model}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    const message = e instanceof ConfigError || (e instanceof Error && /ECONNREFUSED|parseArgs|ERR_PARSE_ARGS/.test(`${e.message}${(e as { code?: string }).code ?? ''}`))
      ? (e as Error).message
      : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`sketchwatch: ${message}\n`);
    process.exitCode = 1;
  },
);
