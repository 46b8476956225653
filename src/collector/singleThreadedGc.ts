import { spawn } from 'node:child_process';
import { availableParallelism, constants } from 'node:os';
import { ConfigError } from './config.js';

/**
 * V8's garbage collector on the main thread only (`node --single-threaded-gc`) for a collector
 * that has one core.
 *
 * By default V8 marks the old generation on background threads while JavaScript runs, and
 * scavenges with helper threads. With one core there is nothing to run them on but the core the
 * event loop needs: for the 25–40 ms of each marking cycle the collector's thread shares its
 * core with the markers, and every request in that stretch waits. At 1,000 beacons/s on one
 * core (bench/collector.ts --quick, four runs each, alternated) the requests in the latency tail
 * were, 93 of 100, those that overlapped a major GC, and the flag took p99 to
 *   in memory   23.7 / 25.4 / 14.9 / 25.8  →  17.8 / 10.7 / 13.9 / 10.1 ms
 *   on disk     47.9 / 35.8 / 34.5 / 33.4  →  21.1 / 26.7 / 21.5 / 22.5 ms
 *   PostgreSQL  52.2 / 35.9 / 36.7 / 38.4  →  21.7 / 20.6 / 33.1 / 19.9 ms
 * with throughput unchanged within the noise. With two cores or more the background threads
 * have cores of their own, so the default stays.
 *
 * V8 takes the flag only at start-up (set from inside a running process it aborted the process
 * at its next GC), so `sketchwatch collector` and `npm start` run themselves again as a child
 * process with it (relaunchForGc). SKETCHWATCH_SINGLE_THREADED_GC = auto (default: when the
 * process may use one core only, as `availableParallelism()` counts them: CPU affinity, not a
 * cgroup quota) | on | off.
 */
export type GcSetting = 'auto' | 'on' | 'off';

const SINGLE_THREADED_GC_FLAG = '--single-threaded-gc';
const ENV = 'SKETCHWATCH_SINGLE_THREADED_GC';
/** Set in the child's environment: it was started by relaunchForGc. */
const RELAUNCHED_ENV = 'SKETCHWATCH_GC_RELAUNCHED';

/** SKETCHWATCH_SINGLE_THREADED_GC; ConfigError for anything but auto, on, off (or unset). */
export function gcSetting(env: NodeJS.ProcessEnv = process.env): GcSetting {
  const raw = env[ENV];
  if (raw === undefined || raw === '') return 'auto';
  if (raw === 'auto' || raw === 'on' || raw === 'off') return raw;
  throw new ConfigError(`${ENV} must be auto, on or off, got ${JSON.stringify(raw)}`);
}

/** Whether this process runs with V8's GC on the main thread only. */
export function singleThreadedGc(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.includes(SINGLE_THREADED_GC_FLAG);
}

/** Whether a collector with `cores` cores should run with the flag (see gcSetting). */
export function wantSingleThreadedGc(env: NodeJS.ProcessEnv = process.env, cores: number = availableParallelism()): boolean {
  const setting = gcSetting(env);
  return setting === 'on' || (setting === 'auto' && cores <= 1);
}

/**
 * When the flag is wanted and this process lacks it: runs this same command again in a child
 * with it (same arguments, environment and standard streams; SIGINT, SIGTERM and SIGHUP passed
 * on) and resolves with the child's exit code once it exits. Resolves null when this process
 * should go on itself: the flag is not wanted, it is already set, or the child could not be
 * started (said on stderr). The child is tied to this process by an IPC channel, so that it
 * can stop when this one is gone without passing a signal on (SIGKILL): see whenParentGone.
 */
export async function relaunchForGc(options: { env?: NodeJS.ProcessEnv; cores?: number } = {}): Promise<number | null> {
  const env = options.env ?? process.env;
  // The child: its channel to the parent must not keep it alive once its work is done.
  if (process.env[RELAUNCHED_ENV] === '1') process.channel?.unref();
  if (singleThreadedGc() || !wantSingleThreadedGc(env, options.cores)) return null;
  const args = [SINGLE_THREADED_GC_FLAG, ...process.execArgv, ...process.argv.slice(1)];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: { ...env, [RELAUNCHED_ENV]: '1' } });
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const forward = (signal: NodeJS.Signals) => {
      // The child may already have it (a terminal signals the whole process group).
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    for (const s of signals) process.on(s, forward);
    const done = (code: number | null) => {
      for (const s of signals) process.off(s, forward);
      resolve(code);
    };
    child.on('error', (e) => {
      if (child.pid !== undefined) return; // started: a failed kill, not a failed start
      process.stderr.write(`sketchwatch: could not start node ${SINGLE_THREADED_GC_FLAG} (${e.message}); running with the default GC\n`);
      done(null);
    });
    // Killed by a signal: the shell's convention, 128 + its number.
    child.once('exit', (code, signal) => done(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)));
  });
}

/**
 * In a process relaunchForGc started: calls `stop` once the parent is gone (its IPC channel
 * closed: the parent was killed, SIGKILL included), so no collector is left running unseen
 * with the port and the data directory. Elsewhere it does nothing. The channel does not keep
 * the process alive.
 */
export function whenParentGone(stop: () => void): void {
  if (process.env[RELAUNCHED_ENV] !== '1' || !process.connected) return;
  process.once('disconnect', () => {
    // Its standard streams may have gone with it: a message that cannot be written is dropped.
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    stop();
  });
  process.channel?.unref();
}
