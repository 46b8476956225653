/**
 * Trains the demo's model: a small tf.js classifier of Seattle's weather (drizzle, fog, rain,
 * snow, sun) from one day's precipitation (mm), maximum and minimum temperature (°C) and wind
 * (m/s) — the real data the `vega-datasets` package ships (1,461 days, 2012–2015).
 *
 *   npm run demo:train          (regenerates everything below; deterministic, ~20 s)
 *
 * Writes, into demo/:
 *   model/model.json, model/weights.bin   the model, taking raw units (the normalisation is
 *                                         folded into the first layer's weights)
 *   data/training.csv                     2012–2013 with the model's outputs on them: what the
 *                                         training baseline is built from
 *   data/holdout.json                     2014–2015: the rows the demo page streams
 * Then builds the training baseline with the CLI, as a user would:
 *   sketchwatch baseline demo/data/training.csv --model weather … --out demo/data/baseline.swb
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { buildBaseline, CLASSES, FEATURES } from './baseline.mjs';

const DEMO = dirname(fileURLToPath(import.meta.url));
const ROOT = join(DEMO, '..');

interface Day {
  date: string;
  precipitation: number;
  temp_max: number;
  temp_min: number;
  wind: number;
  weather: string;
}

function readDays(): Day[] {
  const text = readFileSync(join(ROOT, 'node_modules/vega-datasets/data/seattle-weather.csv'), 'utf8');
  const [header, ...lines] = text.trim().split('\n');
  const cols = header.split(',');
  return lines.map((line) => {
    const cells = line.split(',');
    const get = (name: string) => cells[cols.indexOf(name)];
    return {
      date: get('date'),
      precipitation: Number(get('precipitation')),
      temp_max: Number(get('temp_max')),
      temp_min: Number(get('temp_min')),
      wind: Number(get('wind')),
      weather: get('weather'),
    };
  });
}

async function main(): Promise<void> {
  const days = readDays();
  const train = days.filter((d) => d.date < '2014');
  const holdout = days.filter((d) => d.date >= '2014');
  const x = (rows: Day[]) => rows.map((d) => FEATURES.map((f) => d[f as keyof Day] as number));
  const mean = FEATURES.map((_, j) => train.reduce((s, d) => s + x([d])[0][j], 0) / train.length);
  const std = FEATURES.map((_, j) => Math.sqrt(train.reduce((s, d) => s + (x([d])[0][j] - mean[j]) ** 2, 0) / train.length));

  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES.length], units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 11 }), name: 'hidden' }),
      tf.layers.dense({ units: CLASSES.length, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 12 }), name: 'probabilities' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.02), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const xs = tf.tensor2d(x(train).map((r) => r.map((v, j) => (v - mean[j]) / std[j])));
  const ys = tf.tensor1d(train.map((d) => CLASSES.indexOf(d.weather)), 'float32');
  await model.fit(xs, ys, { epochs: 60, batchSize: 32, shuffle: false, verbose: 0 });

  // Fold the normalisation into the first layer: W' = W / std (per input row), b' = b − Σ W·mean/std.
  const [w, b] = model.getLayer('hidden').getWeights();
  const wv = w.arraySync() as number[][];
  const bv = b.arraySync() as number[];
  const w2 = wv.map((row, i) => row.map((v) => v / std[i]));
  const b2 = bv.map((v, k) => v - wv.reduce((s, row, i) => s + (row[k] * mean[i]) / std[i], 0));
  model.getLayer('hidden').setWeights([tf.tensor2d(w2), tf.tensor1d(b2)]);

  const probs = (rows: Day[]) => (model.predict(tf.tensor2d(x(rows))) as tf.Tensor).arraySync() as number[][];
  const accuracy = (rows: Day[]) => {
    const p = probs(rows);
    return rows.filter((d, i) => CLASSES[p[i].indexOf(Math.max(...p[i]))] === d.weather).length / rows.length;
  };
  console.log(`trained on ${train.length} days (2012–2013): accuracy ${(100 * accuracy(train)).toFixed(1)} %; held out ${holdout.length} days (2014–2015): ${(100 * accuracy(holdout)).toFixed(1)} %`);

  mkdirSync(join(DEMO, 'model'), { recursive: true });
  mkdirSync(join(DEMO, 'data'), { recursive: true });
  await model.save(tf.io.withSaveHandler(async (a) => {
    writeFileSync(join(DEMO, 'model/model.json'), `${JSON.stringify({
      format: 'layers-model', generatedBy: 'demo/train.ts', convertedBy: null, modelTopology: a.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    })}\n`);
    writeFileSync(join(DEMO, 'model/weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));

  // The training data with the model's outputs, computed the way the agent records them, in a
  // fixed random order: the baseline's chunks (by position in the file) then measure sampling
  // noise, not the seasons — in date order they would differ as winter from summer, and the
  // calibrated thresholds would be too wide to catch anything.
  let seed = 2014;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = train.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [train[i], train[j]] = [train[j], train[i]];
  }
  const p = probs(train);
  const header = [...FEATURES, ...CLASSES.map((c) => `p_${c}`), 'confidence', 'entropy', 'class'];
  const lines = train.map((d, i) => {
    const top = Math.max(...p[i]);
    const h = -p[i].reduce((s, v) => s + (v > 0 ? v * Math.log2(v) : 0), 0);
    return [...FEATURES.map((f) => d[f as keyof Day] as number), ...p[i].map((v) => v.toPrecision(6)), top.toPrecision(6), h.toPrecision(6), CLASSES[p[i].indexOf(top)]].join(',');
  });
  writeFileSync(join(DEMO, 'data/training.csv'), `${header.join(',')}\n${lines.join('\n')}\n`);
  writeFileSync(join(DEMO, 'data/holdout.json'), `${JSON.stringify(holdout)}\n`);
  buildBaseline();
  console.log('baseline: demo/data/baseline.swb');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
