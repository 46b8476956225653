/**
 * Long tasks in a V8 CPU profile (.cpuprofile, as bench/collector.ts writes with
 * SKETCHWATCH_BENCH_PROFILE): runs of samples with no idle sample between them, i.e. stretches
 * in which the event loop was never idle — one long task or several back to back; a request
 * arriving at its start waited for all of it. For each run of at least --min ms (15 by
 * default), its length and the functions it spent the most time in (own time, and the outermost
 * of our own frames on each sample's stack — which part of the collector the time belongs to).
 *
 *   node bench/longtasks.mjs /tmp/prof/pglite-disk-fixed.cpuprofile [--min 15] [--top 6]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  options: { min: { type: 'string', default: '15' }, top: { type: 'string', default: '6' } },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error('usage: node bench/longtasks.mjs FILE.cpuprofile [--min MS] [--top N]');
  process.exit(2);
}
const MIN_MS = Number(args.min);
const TOP = Number(args.top);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
const isIdle = (n) => n.callFrame.functionName === '(idle)';
/** The outermost frame of ours (src/) on the stack: which part of the collector was running. */
function ownerOf(id) {
  let owner = null;
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const n = nodes.get(at);
    if (n.callFrame.url.includes('/src/')) owner = n;
  }
  return label(owner ?? nodes.get(id));
}

const runs = [];
let run = null;
let t = profile.startTime;
profile.samples.forEach((id, i) => {
  t += profile.timeDeltas[i] ?? 0;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const n = nodes.get(id);
  if (isIdle(n)) {
    if (run) runs.push(run);
    run = null;
    return;
  }
  run ??= { start: t, ms: 0, self: new Map(), owner: new Map() };
  run.ms += dt / 1000;
  const own = label(n);
  run.self.set(own, (run.self.get(own) ?? 0) + dt / 1000);
  const o = ownerOf(id);
  run.owner.set(o, (run.owner.get(o) ?? 0) + dt / 1000);
});
if (run) runs.push(run);

const total = (profile.endTime - profile.startTime) / 1000;
const long = runs.filter((r) => r.ms >= MIN_MS).sort((a, b) => b.ms - a.ms);
const busy = runs.reduce((s, r) => s + r.ms, 0);
console.log(`${positionals[0]}: ${(total / 1000).toFixed(1)} s profiled, busy ${((100 * busy) / total).toFixed(0)}%, ${runs.length} busy stretches, ${long.length} of ≥ ${MIN_MS} ms`);
const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([k, v]) => `${v.toFixed(1)} ms ${k}`);
for (const r of long.slice(0, 25)) {
  console.log(`\n${r.ms.toFixed(1)} ms at +${((r.start - profile.startTime) / 1000).toFixed(0)} ms`);
  console.log('  by our frame:  ' + top(r.owner).join('\n                 '));
  console.log('  own time:      ' + top(r.self).join('\n                 '));
}
