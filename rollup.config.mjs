// Builds the package into dist/ (type declarations come from `tsc -p tsconfig.build.json`).
// rollup-plugin-esbuild transpiles; TypeScript 5.9 type-checks separately (`npm run typecheck`).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import commonjs from '@rollup/plugin-commonjs';
import { nodeResolve } from '@rollup/plugin-node-resolve';
import { transform } from 'esbuild';
import esbuild from 'rollup-plugin-esbuild';

/** Prints each output file's size, raw and minified + gzipped, as a page would load it. */
function sizeReport() {
  return {
    name: 'size-report',
    async generateBundle(options, bundle) {
      for (const file of Object.values(bundle)) {
        if (file.type !== 'chunk') continue;
        const min = await transform(file.code, { minify: true, format: 'esm' });
        const gz = gzipSync(min.code, { level: 9 }).length;
        const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
        console.log(`  ${options.dir ?? options.file?.replace(/\/[^/]*$/, '')}/${file.fileName}: ${kib(file.code.length)} raw, ${kib(min.code.length)} min, ${kib(gz)} min+gzip`);
      }
    },
  };
}

/**
 * TDigest.encode()/decode() call the codec and the codec builds digests: a cycle by design (the
 * wire format stays in one file), safe because neither side touches the other at module load.
 * Any other cycle is reported.
 */
function onwarn(warning, warn) {
  // tfjs's transpiled helpers test `this` at module level; harmless in a bundle.
  if (warning.code === 'THIS_IS_UNDEFINED' && warning.id?.includes('/node_modules/')) return;
  if (warning.code === 'CIRCULAR_DEPENDENCY' && warning.ids?.every((id) => id.includes('/src/sketch/'))) return;
  warn(warning);
}

/**
 * `import('virtual:sketchwatch-worker')` in the page code: the built worker's source as a string,
 * for the default inline blob worker (built first: rollup runs the configs below in order).
 */
function inlineWorker() {
  const id = '\0sketchwatch-worker';
  return {
    name: 'inline-worker',
    resolveId: (source) => (source === 'virtual:sketchwatch-worker' ? id : null),
    load(source) {
      if (source !== id) return null;
      this.addWatchFile('dist/agent/worker.js');
      return `export default ${JSON.stringify(readFileSync('dist/agent/worker.js', 'utf8'))};`;
    },
  };
}

// tfjs's Node fallbacks are never reached in a browser (PLATFORM-NOTES: without this list,
// "require$$0 is not defined" in the worker).
const nodeOnly = ['fs', 'path', 'os', 'perf_hooks', 'worker_threads', 'crypto'];
const browserPlugins = (minify) => [
  nodeResolve({ browser: true, preferBuiltins: false }),
  commonjs({ ignore: nodeOnly }),
  esbuild({ target: 'es2020', minify }),
  sizeReport(),
];

/** Copies files next to a build's output (the dashboard's page and uPlot's stylesheet). */
function copy(files) {
  return {
    name: 'copy',
    generateBundle() {
      for (const [from, to] of files) this.emitFile({ type: 'asset', fileName: to, source: readFileSync(from) });
    },
  };
}

/** The collector and CLI run on Node: their dependencies stay external (installed with us). */
const nodeExternal = (id) => /^(node:|fastify|pg$|@electric-sql\/pglite)/.test(id);

export default [
  // Isomorphic subpaths, one self-contained file each (a page or worker loads just what it needs).
  ...['sketch', 'drift'].map((name) => ({
    input: { index: `src/${name}/index.ts` },
    output: { dir: `dist/${name}`, format: 'esm', sourcemap: true },
    plugins: [esbuild({ target: 'es2022' }), sizeReport()],
    onwarn,
  })),
  // The agent's worker: tfjs (core, layers, converter; cpu, webgl and wasm backends), comlink, idb
  // and the profiler, as one classic script — a blob by default, or served via `workerUrl`.
  {
    input: 'src/agent/worker/index.ts',
    output: { file: 'dist/agent/worker.js', format: 'iife', sourcemap: false },
    plugins: browserPlugins(true),
    onwarn,
  },
  // The page side for npm (ESM; the inline worker is a separate chunk loaded only when used) …
  {
    input: { index: 'src/agent/index.ts' },
    output: { dir: 'dist/agent', format: 'esm', sourcemap: true, chunkFileNames: 'worker-source-[hash].js' },
    plugins: [inlineWorker(), ...browserPlugins(false)],
    onwarn,
  },
  // … and for a <script> tag: window.sketchwatch, everything in one file.
  {
    input: 'src/agent/index.ts',
    output: { file: 'dist/agent/sketchwatch.iife.js', format: 'iife', name: 'sketchwatch', exports: 'named', inlineDynamicImports: true },
    plugins: [inlineWorker(), ...browserPlugins(true)],
    onwarn,
  },
  // The dashboard the collector serves at /dashboard/: one script with uPlot, its page and CSS.
  {
    input: { main: 'src/dashboard/main.ts' },
    output: { dir: 'dist/dashboard', format: 'esm', sourcemap: true },
    plugins: [
      ...browserPlugins(true),
      copy([['src/dashboard/index.html', 'index.html'], ['node_modules/uplot/dist/uPlot.min.css', 'uPlot.min.css']]),
    ],
    onwarn,
  },
  {
    input: { 'cli/index': 'src/cli/index.ts', 'collector/server': 'src/collector/server.ts', 'collector/fold-worker': 'src/collector/fold-worker.ts' },
    output: { dir: 'dist', format: 'esm', sourcemap: true, chunkFileNames: 'shared/[name]-[hash].js' },
    external: nodeExternal,
    plugins: [esbuild({ target: 'node20' })],
    onwarn,
  },
];
