// The demo's training baseline, built with the CLI from the built package, as a user would:
//   sketchwatch baseline demo/data/training.csv --model weather --inputs … --out demo/data/baseline.swb
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEMO = dirname(fileURLToPath(import.meta.url));
export const FEATURES = ['precipitation', 'temp_max', 'temp_min', 'wind'];
export const CLASSES = ['drizzle', 'fog', 'rain', 'snow', 'sun'];
export const BASELINE = join(DEMO, 'data/baseline.swb');

export function buildBaseline() {
  execFileSync(process.execPath, [
    join(DEMO, '../dist/cli/index.js'), 'baseline', join(DEMO, 'data/training.csv'),
    '--model', 'weather',
    '--inputs', FEATURES.join(','),
    '--outputs', [...CLASSES.map((c) => `p_${c}`), 'confidence', 'entropy'].join(','),
    '--class-output', 'class', '--classes', CLASSES.join(','),
    '--out', BASELINE,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
}
