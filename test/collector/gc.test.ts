/**
 * The one-core GC mode (src/collector/singleThreadedGc.ts): the setting, the decision, and the
 * CLI running itself again as `node --single-threaded-gc` — a real child process, its signals
 * passed on, and no collector left behind when the process that started it is killed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/collector/config.js';
import { gcSetting, singleThreadedGc, wantSingleThreadedGc } from '../../src/collector/singleThreadedGc.js';
import { until } from '../helpers.js';
import { killAll, ROOT, spawnCollector } from './harness.js';

const jobs = new Set<ChildProcess>();
const stray = new Set<number>();
after(() => {
  killAll();
  for (const c of jobs) c.kill('SIGKILL');
  for (const pid of stray) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** `sketchwatch collector --memory` with SKETCHWATCH_SINGLE_THREADED_GC=`setting`, and the process it runs the collector in. */
async function cli(setting: string) {
  const c = await spawnCollector(['--memory'], { SKETCHWATCH_SINGLE_THREADED_GC: setting });
  const inner = childrenOf(c.process.pid!).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cli/index.ts'));
  for (const pid of inner) stray.add(pid);
  return { ...c, inner };
}

/** The processes `pid` started (Linux /proc). */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('single-threaded GC on one core', () => {
  it('reads SKETCHWATCH_SINGLE_THREADED_GC strictly and decides by the cores', () => {
    assert.equal(gcSetting({}), 'auto');
    assert.equal(gcSetting({ SKETCHWATCH_SINGLE_THREADED_GC: '' }), 'auto');
    for (const v of ['auto', 'on', 'off'] as const) assert.equal(gcSetting({ SKETCHWATCH_SINGLE_THREADED_GC: v }), v);
    assert.throws(() => gcSetting({ SKETCHWATCH_SINGLE_THREADED_GC: 'yes' }), (e: Error) => e instanceof ConfigError && /must be auto, on or off, got "yes"/.test(e.message));
    assert.equal(wantSingleThreadedGc({}, 1), true);
    assert.equal(wantSingleThreadedGc({}, 2), false);
    assert.equal(wantSingleThreadedGc({ SKETCHWATCH_SINGLE_THREADED_GC: 'on' }, 8), true);
    assert.equal(wantSingleThreadedGc({ SKETCHWATCH_SINGLE_THREADED_GC: 'off' }, 1), false);
    assert.equal(singleThreadedGc(['--import', 'tsx', '--single-threaded-gc']), true);
    assert.equal(singleThreadedGc(['--import', 'tsx']), false);
  });

  it('a relaunched process that finishes its work exits, and the parent with its code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-gc-'));
    try {
      const script = join(dir, 'job.mjs');
      writeFileSync(script, [
        `import { relaunchForGc, singleThreadedGc } from ${JSON.stringify(join(ROOT, 'src/collector/singleThreadedGc.ts'))};`,
        // A module that listens when it finds a channel (bench/loadgen.ts does): in the child
        // that holds the channel open unless relaunchForGc lets go of it.
        'if (process.send) process.on("message", () => {});',
        'const code = await relaunchForGc();',
        'if (code !== null) { console.log(`parent: child ended with ${code}`); process.exit(code); }',
        'console.log(`child: single-threaded ${singleThreadedGc()}`);',
        'process.exitCode = 3;',
      ].join('\n'));
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        cwd: ROOT, env: { ...process.env, SKETCHWATCH_SINGLE_THREADED_GC: 'on' }, stdio: ['ignore', 'pipe', 'inherit'],
      });
      jobs.add(child);
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`still running after 30 s (its channel to the parent kept the child alive?): ${out}`)), 30_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 3, out);
      assert.match(out, /child: single-threaded true/);
      assert.match(out, /parent: child ended with 3/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the CLI runs itself again with the flag, passes SIGTERM on and ends with the child', async () => {
    const c = await cli('on');
    assert.match(c.output(), /V8 GC on the main thread only/);
    assert.equal(c.inner.length, 1, 'the collector runs in a child process');
    assert.ok(readFileSync(`/proc/${c.inner[0]}/cmdline`, 'utf8').split('\0').includes('--single-threaded-gc'));
    const health = await fetch(`${c.url}/healthz`);
    assert.equal(health.status, 200);
    await c.stop();
    assert.equal(c.process.exitCode, 0, c.output());
    assert.equal(alive(c.inner[0]), false, 'the child is gone with it');
    assert.match(c.output(), /SIGTERM, committing queued batches and stopping/);
  });

  it('a collector whose parent was SIGKILLed stops by itself', async () => {
    const c = await cli('on');
    assert.equal(c.inner.length, 1);
    await c.kill();
    await until(() => !alive(c.inner[0]), 20_000, 'the orphaned collector to stop');
    await assert.rejects(fetch(`${c.url}/healthz`), 'nothing listens on its port any more');
  });

  it('off: one process, the default GC', async () => {
    const c = await cli('off');
    assert.doesNotMatch(c.output(), /V8 GC on the main thread only/);
    assert.deepEqual(c.inner, []);
    await c.stop();
    assert.equal(c.process.exitCode, 0);
  });
});
