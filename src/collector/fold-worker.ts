import { parentPort } from 'node:worker_threads';
import { scanBatch, type BatchView } from '../sketch/codec.js';
import { partialRow, type PartialRow } from './Fold.js';
import type { FromWorker, ToWorker } from './FoldWorker.js';
import { FlushMerge } from './FlushMerge.js';

/**
 * The collector's fold worker (FoldWorker.ts starts it): a FlushMerge per fold, merged into as
 * batches arrive, encoded into partial rows and dropped when the fold is taken. Its messages
 * come in order, so a take finds every merge of its fold done.
 */
const port = parentPort!;

const folds = new Map<number, FlushMerge>();
const spare: FlushMerge[] = [];

function fold(id: number): FlushMerge {
  let f = folds.get(id);
  if (f === undefined) folds.set(id, (f = spare.pop() ?? new FlushMerge()));
  return f;
}

function retire(id: number): void {
  const f = folds.get(id);
  if (f === undefined) return;
  folds.delete(id);
  f.release();
  if (spare.length < 2) spare.push(f);
}

function send(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'merge': {
      const into = fold(m.fold);
      const failures: Array<{ agentId: string; message: string }> = [];
      for (const { project, agentId, at, length, starts, parts } of m.items) {
        let batch: BatchView | null = null;
        try {
          batch = scanBatch(new Uint8Array(m.buffer, at, length), { trusted: true });
          if (parts === undefined) {
            if (batch.windows.length !== starts.length) throw new Error('window count differs from what ingest saw');
            batch.windows.forEach((w, i) => (w.start = starts[i]));
            into.mergeBatch(project, batch.windows, batch.bytes);
          } else {
            for (let i = 0; i < parts.length; i++) {
              const w = batch.windows[parts[i]];
              if (w === undefined) throw new Error(`the batch has no window ${parts[i]}`);
              w.start = starts[i];
              into.merge(project, w, batch.bytes);
            }
          }
        } catch (e) {
          failures.push({ agentId: agentId || batch?.agentId || '(unknown)', message: (e as Error).message });
        }
      }
      // The merged profiles keep nothing of the bytes: the buffer goes back for the next message.
      send({ t: 'merged', n: m.items.length, failures, buffer: m.buffer }, [m.buffer]);
      break;
    }
    case 'take': {
      const f = folds.get(m.fold);
      const rows: PartialRow[] = f ? f.windows().map(partialRow) : [];
      retire(m.fold);
      const transfer: ArrayBuffer[] = [];
      for (const r of rows) {
        const b = r.profile;
        if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) transfer.push(b.buffer);
      }
      send({ t: 'rows', fold: m.fold, rows }, transfer);
      break;
    }
    case 'drop':
      retire(m.fold);
      break;
  }
});

send({ t: 'ready' });
