#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createProject } from '../collector/Aggregates.js';
import { ConfigError } from '../collector/config.js';
import { startCollector } from '../collector/server.js';

const USAGE = `usage: sketchwatch <command> [options]

commands:
  collector   run the collector
    --port N          port to listen on (default 8787, 0 = any free port)
    --host H          address to bind (default 127.0.0.1)
    --data DIR        embedded store directory (default .sketchwatch-data; ignored with DATABASE_URL)
    --memory          embedded store in memory (nothing kept; for trials and tests)
    --project ID      create this project if missing and print its ingest key
  environment: DATABASE_URL=postgres://… (PostgreSQL instead of the embedded store),
               SKETCHWATCH_ADMIN_TOKEN (else a random one is printed), and the SKETCHWATCH_* limits
               in the README.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
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
  const port = values.port === undefined ? undefined : Number(values.port);
  const collector = await startCollector({
    port,
    host: values.host,
    dataDir: process.env.DATABASE_URL || values.memory ? undefined : (values.data ?? process.env.SKETCHWATCH_DATA_DIR ?? '.sketchwatch-data'),
    logger: false,
  });
  const lines = [`sketchwatch collector listening on ${collector.url} (store: ${collector.db.kind}${collector.config.dataDir ? ` in ${collector.config.dataDir}` : ''})`];
  if (!process.env.SKETCHWATCH_ADMIN_TOKEN) lines.push(`admin token: ${collector.config.adminToken}`);
  if (values.project) {
    const project = await createProject(collector.db, values.project);
    lines.push(`project ${project.id}: ingest key ${project.ingestKey}`);
    lines.push(`  ingest: POST ${collector.url}/v1/ingest?key=${project.ingestKey}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
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
  return -1; // keep running
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
