import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { fsyncDir, isErrno } from '../lib/durable.js';

/** Bytes of one slot: `<seq> <crc32 hex>` padded with spaces, ending with a newline. */
const SLOT_BYTES = 32;

/**
 * A sequence number kept in a small file that is overwritten in place, never
 * replaced: two slots written in turn, each with a checksum, the higher valid
 * one wins. Why: writing it needs no new disk space (a checkpoint must still be
 * recorded on a full disk) and no rename or directory fsync (one fdatasync), and
 * a write torn by a crash leaves the other slot, the previous value, intact.
 */
export class SeqFile {
  private constructor(
    private readonly file: string,
    private handle: FileHandle | undefined,
    private value: number,
    private nextSlot: number,
  ) {}

  /**
   * Opens the file, if there is one (it is made at the first write).
   * @returns the file and the value it holds (0 when missing or when neither slot is valid)
   */
  static async open(file: string): Promise<SeqFile> {
    let handle: FileHandle;
    try {
      handle = await fs.open(file, 'r+');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      return new SeqFile(file, undefined, 0, 0);
    }
    const bytes = Buffer.alloc(SLOT_BYTES * 2);
    await handle.read(bytes, 0, bytes.length, 0);
    const values = [parseSlot(bytes.subarray(0, SLOT_BYTES)), parseSlot(bytes.subarray(SLOT_BYTES))];
    const best = (values[1] ?? -1) > (values[0] ?? -1) ? 1 : 0;
    return new SeqFile(file, handle, values[best] ?? legacy(bytes) ?? 0, 1 - best);
  }

  /** Reads the value without opening the file for writing (0 when missing). */
  static async read(file: string): Promise<number> {
    const bytes = await fs.readFile(file).catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) return Buffer.alloc(0);
      throw err;
    });
    return Math.max(parseSlot(bytes.subarray(0, SLOT_BYTES)) ?? 0, parseSlot(bytes.subarray(SLOT_BYTES, SLOT_BYTES * 2)) ?? 0);
  }

  /** The value last written (or read at open). */
  get current(): number {
    return this.value;
  }

  /** Writes `value` into the older slot; with `sync`, waits until it is on disk. */
  async write(value: number, sync: boolean): Promise<void> {
    if (!this.handle) {
      await this.create(value);
      return;
    }
    await this.handle.write(slot(value), 0, SLOT_BYTES, this.nextSlot * SLOT_BYTES);
    if (sync) await this.handle.datasync();
    this.value = value;
    this.nextSlot = 1 - this.nextSlot;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }

  /** The first write makes the file, durably (content, then its directory entry). */
  private async create(value: number): Promise<void> {
    const handle = await fs.open(this.file, 'w+');
    try {
      await handle.write(Buffer.concat([slot(value), slot(0)]), 0, SLOT_BYTES * 2, 0);
      await handle.sync();
      await fsyncDir(path.dirname(this.file));
    } catch (err) {
      await handle.close();
      await fs.rm(this.file, { force: true });
      throw err;
    }
    this.handle = handle;
    this.value = value;
    this.nextSlot = 1;
  }
}
function slot(value: number): Buffer {
  const text = `${value} ${crc(String(value))}`;
  return Buffer.from(`${text.padEnd(SLOT_BYTES - 1, ' ')}\n`, 'latin1');
}

function parseSlot(bytes: Buffer): number | undefined {
  const match = /^(\d+) ([0-9a-f]{8}) *\n$/.exec(bytes.toString('latin1'));
  if (!match || crc(match[1]) !== match[2]) return undefined;
  const value = Number(match[1]);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** A file written by versions that kept the number as plain text (the delivered watermark). */
function legacy(bytes: Buffer): number | undefined {
  const match = /^\s*(\d+)\s*$/.exec(bytes.toString('latin1').replace(/\0+$/, ''));
  return match ? Number(match[1]) : undefined;
}

function crc(text: string): string {
  return (zlib.crc32(text) >>> 0).toString(16).padStart(8, '0');
}
