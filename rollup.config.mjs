// Builds the package into dist/ (type declarations come from `tsc -p tsconfig.build.json`).
// rollup-plugin-esbuild transpiles; TypeScript 5.9 type-checks separately (`npm run typecheck`).
import { gzipSync } from 'node:zlib';
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
        console.log(`  ${options.dir ?? ''}/${file.fileName}: ${kib(file.code.length)} raw, ${kib(min.code.length)} min, ${kib(gz)} min+gzip`);
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
  if (warning.code === 'CIRCULAR_DEPENDENCY' && warning.ids?.every((id) => id.includes('/src/sketch/'))) return;
  warn(warning);
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
  {
    input: { 'cli/index': 'src/cli/index.ts', 'collector/server': 'src/collector/server.ts' },
    output: { dir: 'dist', format: 'esm', sourcemap: true, chunkFileNames: 'shared/[name]-[hash].js' },
    external: nodeExternal,
    plugins: [esbuild({ target: 'node20' })],
    onwarn,
  },
];
