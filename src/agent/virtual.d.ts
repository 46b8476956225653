/** The worker bundle's source, inlined by the build (rollup.config.mjs) for the default blob worker. */
declare module 'virtual:sketchwatch-worker' {
  const source: string;
  export default source;
}
