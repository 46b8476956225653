import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * The embedded store's write-ahead journal: accepted batches, as received, appended to segment
 * files and synced to disk before they are acknowledged. The collector folds them in memory and
 * writes the fold to the store (PGlite) at each checkpoint, together with the number of the first
 * segment the store does not yet hold; segments below it are then deleted. After a crash, the
 * segments from that number on are replayed. So the store is written once per checkpoint, not
 * once per batch: PGlite runs on the collector's own thread (WASM) and costs ~45 ns per byte,
 * while a file append costs about a hundredth of that.
 *
 * Segment n is `<dir>/<n, 12 digits>.log`; one segment holds exactly the batches of one fold
 * (the collector rotates at each checkpoint). A record is
 *
 *   u32 length of the payload | u32 CRC-32 of the payload | payload
 *   payload: u8 window count W | W × f64 window start (as the collector placed it, after clock
 *            correction) | u16 project length | project (UTF-8) | the batch's bytes
 *
 * A crash while appending leaves a torn record at the end of the newest segment: replay stops at
 * the first record whose length or CRC does not hold and cuts the file there (its batch was
 * never acknowledged, so its agent resends it).
 *
 * Must: never report an append done before the data is synced; leave no partial record behind a
 * failed append (the file is cut back to its size before it).
 */
export interface JournalRecord {
  project: string;
  /** Where the collector put each window of the batch (clock-corrected starts), in batch order. */
  starts: number[];
  bytes: Uint8Array;
}

const HEADER = 8;
/** Largest group an append encodes into its reused buffer (a larger one gets its own). */
const REUSE_MAX = 4 * 1024 * 1024;
/** Largest payload replay believes (the collector's body cap is far below). */
const MAX_PAYLOAD = 256 * 1024 * 1024;

export class Journal {
  private file: FileHandle | null = null;
  private size = 0;
  private broken: Error | null = null;
  /** What appends encode into (see `encode`), and whether one is being written from it. */
  private buffer: Buffer = Buffer.alloc(0);
  private writing = false;

  private constructor(
    readonly dir: string,
    /** The segment appends go to. */
    public current: number,
  ) {}

  /** Opens (creating) the journal directory; appends start once `start` picks a segment. */
  static async open(dir: string): Promise<Journal> {
    await mkdir(dir, { recursive: true });
    return new Journal(dir, -1);
  }

  /** Segment numbers on disk, ascending. */
  async segments(): Promise<number[]> {
    const names = await readdir(this.dir);
    return names
      .map((n) => /^(\d{12})\.log$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  /** Reads a segment's records, cutting a torn tail off the file. */
  async read(segment: number): Promise<JournalRecord[]> {
    const path = this.path(segment);
    const data = await readFile(path);
    const records: JournalRecord[] = [];
    let at = 0;
    while (at + HEADER <= data.length) {
      const length = data.readUInt32LE(at);
      const crc = data.readUInt32LE(at + 4);
      if (length > MAX_PAYLOAD || at + HEADER + length > data.length) break;
      const payload = data.subarray(at + HEADER, at + HEADER + length);
      if (crc32(payload) !== crc) break;
      const record = decodeRecord(payload);
      if (record === null) break;
      records.push(record);
      at += HEADER + length;
    }
    if (at < data.length) await truncate(path, at);
    return records;
  }

  /** Makes `segment` the one appends go to (created if missing). */
  async start(segment: number): Promise<void> {
    // O_DSYNC: each write returns once its data (and the size that reaches it) is on disk, as a
    // write followed by fdatasync would, in one trip to the thread pool instead of two; every
    // trip's completion waits its turn on the busy event loop.
    const next = await open(this.path(segment), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o644);
    const size = (await next.stat()).size;
    await this.file?.close().catch(() => {});
    this.file = next;
    this.size = size;
    this.current = segment;
  }

  /** Ends the current segment and starts the next; returns the number of the one ended. */
  async rotate(): Promise<number> {
    const ended = this.current;
    await this.start(ended + 1);
    return ended;
  }

  /**
   * Appends records and syncs them; the caller runs one append at a time. On failure the segment
   * is cut back to where it was; if even that fails, the journal refuses every later append (what
   * it holds can no longer be trusted to match what was acknowledged).
   */
  async append(records: JournalRecord[]): Promise<void> {
    if (this.broken) throw this.broken;
    if (this.file === null) throw new Error('journal: no segment started');
    if (records.length === 0) return;
    const data = this.encode(records);
    const before = this.size;
    const owns = !this.writing && data.buffer === this.buffer.buffer;
    if (owns) this.writing = true;
    try {
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await this.file.write(data, written, data.length - written, before + written);
        written += bytesWritten;
      }
      this.size = before + data.length;
    } catch (e) {
      try {
        await this.file.truncate(before);
        await this.file.datasync();
      } catch (cut) {
        this.broken = new Error(`journal: could not undo a failed append (${(cut as Error).message}); ingest stops`);
      }
      throw e;
    } finally {
      if (owns) this.writing = false;
    }
  }

  /**
   * The records, encoded one after another into this journal's own buffer, reused from append to
   * append (a group over REUSE_MAX gets a buffer of its own, and so would an append made while
   * another is being written). A new ~10 KB buffer per record and a group-sized one to join them were most of
   * the ArrayBuffer memory ingest allocated, and allocating it is what drove the collector's
   * major GCs ("external memory pressure").
   */
  private encode(records: JournalRecord[]): Buffer {
    const projects = records.map((r) => Buffer.from(r.project, 'utf8'));
    let size = 0;
    for (let i = 0; i < records.length; i++) size += HEADER + payloadSize(records[i], projects[i]);
    let out: Buffer;
    if (this.writing || size > REUSE_MAX) {
      out = Buffer.allocUnsafe(size);
    } else {
      if (this.buffer.length < size) this.buffer = Buffer.allocUnsafeSlow(Math.min(REUSE_MAX, Math.max(size, 2 * this.buffer.length)));
      out = this.buffer;
    }
    let at = 0;
    for (let i = 0; i < records.length; i++) at = encodeRecord(records[i], projects[i], out, at);
    return out.subarray(0, size);
  }

  /** Deletes segments up to and including `segment` (their batches are in the store). */
  async removeThrough(segment: number): Promise<void> {
    for (const s of await this.segments()) {
      if (s > segment || s === this.current) continue;
      await unlink(this.path(s)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
    }
  }

  async close(): Promise<void> {
    await this.file?.close();
    this.file = null;
  }

  private path(segment: number): string {
    return join(this.dir, `${String(segment).padStart(12, '0')}.log`);
  }
}

function payloadSize(r: JournalRecord, project: Buffer): number {
  if (r.starts.length > 255) throw new RangeError('journal: more than 255 windows in one batch');
  return 1 + 8 * r.starts.length + 2 + project.length + r.bytes.length;
}

/** Writes the record at `start` of `out` (room checked by the caller); returns where it ends. */
function encodeRecord(r: JournalRecord, project: Buffer, out: Buffer, start: number): number {
  const payload = payloadSize(r, project);
  let at = start + HEADER;
  at = out.writeUInt8(r.starts.length, at);
  for (const s of r.starts) at = out.writeDoubleLE(s, at);
  at = out.writeUInt16LE(project.length, at);
  at += project.copy(out, at);
  out.set(r.bytes, at);
  at += r.bytes.length;
  out.writeUInt32LE(payload, start);
  out.writeUInt32LE(crc32(out.subarray(start + HEADER, at)), start + 4);
  return at;
}

function decodeRecord(p: Buffer): JournalRecord | null {
  if (p.length < 3) return null;
  const windows = p.readUInt8(0);
  let at = 1;
  if (at + 8 * windows + 2 > p.length) return null;
  const starts: number[] = [];
  for (let i = 0; i < windows; i++, at += 8) starts.push(p.readDoubleLE(at));
  const projectLength = p.readUInt16LE(at);
  at += 2;
  if (at + projectLength > p.length) return null;
  const project = p.toString('utf8', at, at + projectLength);
  at += projectLength;
  // A copy: the file's buffer is dropped after replay, the batch's view must outlive it.
  return { project, starts, bytes: new Uint8Array(p.subarray(at)) };
}
