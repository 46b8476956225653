import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs the README's `sketchwatch/sketch` example against the built package, as a newcomer
 * would paste it, and checks every `expression; // value` comment in it.
 */
describe('README', () => {
  it('the sketchwatch/sketch example runs and prints what its comments say', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const block = /```js\n(import [^\n]*'sketchwatch\/sketch';[\s\S]*?)```/.exec(readme);
    assert.ok(block, 'README has a js example importing sketchwatch/sketch');
    let checks = 0;
    const code = block[1]
      .split('\n')
      .map((line) => {
        const m = /^(?!const |let |var )(\S.*?);\s*\/\/\s*(-?\d+(?:\.\d+)?)(?=\s|$)/.exec(line);
        if (!m) return line;
        checks++;
        return `__check(${JSON.stringify(m[1])}, ${m[1]}, ${m[2]});`;
      })
      .join('\n');
    const program = `${code}
function __check(what, got, want) {
  if (!(Math.abs(got - want) <= 1e-4 * Math.max(1, Math.abs(want)))) {
    console.error(\`README: \${what} gives \${got}, the comment says \${want}\`);
    process.exitCode = 1;
  }
}
console.log('checked ${checks}');
`;
    assert.ok(checks >= 7, `the example states its results (${checks} found)`);
    // Inside the package folder, so 'sketchwatch/sketch' resolves through package.json#exports.
    const dir = join(root, 'test', '.tmp');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'readme-example.mjs');
    writeFileSync(file, program);
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    assert.match(out, new RegExp(`checked ${checks}`));
  });
});
