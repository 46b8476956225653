import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { yieldToLoop } from '../../src/collector/yieldToLoop.js';

describe('yieldToLoop', () => {
  it('runs one background slice per turn of the event loop, taking the waiting chains in turn', async () => {
    // A marker that re-queues itself runs once in every turn's check phase: between two of its
    // runs lies exactly one turn of the loop.
    const log: string[] = [];
    let marking = true;
    const mark = () => {
      log.push('|');
      if (marking) setImmediate(mark);
    };
    setImmediate(mark);
    const chain = async (name: string) => {
      for (let i = 0; i < 5; i++) {
        await yieldToLoop();
        log.push(name);
      }
    };
    await Promise.all([chain('a'), chain('b'), chain('c')]);
    marking = false;
    const turns = log.join('').split('|');
    assert.equal(turns.join('').length, 15, 'every slice ran');
    assert.ok(turns.every((t) => t.length <= 1), `a turn ran several slices: ${log.join('')}`);
    // First come, first served: the chains alternate.
    assert.equal(turns.join(''), 'abc'.repeat(5));
  });

  it('lets I/O in between slices', async () => {
    const { createServer, request } = await import('node:http');
    const server = createServer((_, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    // A background chain that yields 2,000 times; a request made meanwhile is answered long
    // before the chain ends.
    let slices = 0;
    const background = (async () => {
      for (let i = 0; i < 2_000; i++) {
        await yieldToLoop();
        slices++;
      }
    })();
    const answeredAt = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/' }, (res) => {
        res.resume();
        res.on('end', () => resolve(slices));
      })
        .on('error', reject)
        .end();
    });
    await background;
    server.close();
    assert.ok(answeredAt < 2_000, `the request waited for all ${answeredAt} slices`);
  });
});
