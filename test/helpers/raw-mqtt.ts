import net from 'node:net';
import { readFileSync } from 'node:fs';

/**
 * Hand-built MQTT 3.1.1 packets and raw sockets, for tests that must behave
 * as no well-behaved client library would: declare huge packets, never read,
 * never send CONNECT.
 */

/** The fixed header of a packet: type/flags byte and the remaining length as a varint (MQTT 3.1.1 2.2.3). */
export function fixedHeader(typeAndFlags: number, remainingLength: number): Buffer {
  const bytes = [typeAndFlags];
  let n = remainingLength;
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    bytes.push(digit);
  } while (n > 0);
  return Buffer.from(bytes);
}

function utf8Field(text: string | Buffer): Buffer {
  const body = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length);
  return Buffer.concat([length, body]);
}

/** A CONNECT packet (MQTT 3.1.1). */
export function connectPacket({ clientId, clean = true, username, password, keepaliveSeconds = 0 }: {
  clientId: string; clean?: boolean; username?: string; password?: string; keepaliveSeconds?: number;
}): Buffer {
  const flags = (clean ? 0x02 : 0) | (username !== undefined ? 0x80 : 0) | (password !== undefined ? 0x40 : 0);
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(keepaliveSeconds);
  const body = Buffer.concat([
    utf8Field('MQTT'), Buffer.from([4, flags]), keepalive, utf8Field(clientId),
    ...(username !== undefined ? [utf8Field(username)] : []),
    ...(password !== undefined ? [utf8Field(password)] : []),
  ]);
  return Buffer.concat([fixedHeader(0x10, body.length), body]);
}

/** A SUBSCRIBE packet for `filters`, all at `qos`. */
export function subscribePacket(messageId: number, filters: string[], qos: 0 | 1 = 1): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  const body = Buffer.concat([id, ...filters.map((f) => Buffer.concat([utf8Field(f), Buffer.from([qos])]))]);
  return Buffer.concat([fixedHeader(0x82, body.length), body]);
}

/** A TCP connection to the broker, with what the broker sent so far. */
export interface RawClient {
  socket: net.Socket;
  /** Bytes received (until `stopReading`). */
  received(): Buffer;
  /** Resolves once the broker closed the connection (or it failed). */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Stops reading from the socket: the kernel buffers fill and the broker's writes back up. */
  stopReading(): void;
  /** Waits until at least `count` bytes arrived; rejects when the connection closes first or after `timeoutMs`. */
  waitForBytes(count: number, timeoutMs?: number): Promise<Buffer>;
}

/** Opens a TCP connection to `port` on 127.0.0.1 (from `localAddress`, e.g. 127.0.0.2 to be another client address). */
export async function rawConnect(port: number, localAddress?: string): Promise<RawClient> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  let closed = false;
  const onData = (chunk: Buffer) => chunks.push(chunk);
  socket.on('data', onData);
  socket.on('error', () => undefined);
  // Not events.once: it rejects when 'error' (a reset by the broker) comes before 'close'.
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => {
    closed = true;
    resolve();
  }));
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closedPromise]);
  return {
    socket,
    received: () => Buffer.concat(chunks),
    closed: closedPromise,
    isClosed: () => closed,
    stopReading() {
      socket.off('data', onData);
      socket.pause();
    },
    async waitForBytes(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (Buffer.concat(chunks).length < count) {
        if (closed) throw new Error(`connection closed after ${Buffer.concat(chunks).length} of ${count} bytes`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} bytes`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return Buffer.concat(chunks);
    },
  };
}

/**
 * Writes `totalBytes` of zeros in 64 KiB chunks, waiting for 'drain' when the
 * socket's buffer is full, until all are written or the peer closes.
 * @returns the bytes handed to the kernel before the connection closed (all of them if it stayed open)
 */
export async function streamZeros(write: (chunk: Buffer) => Promise<boolean>, totalBytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  while (sent < totalBytes) {
    if (!(await write(chunk))) break;
    sent += chunk.length;
  }
  return sent;
}

/** A `write` for `streamZeros` on a socket: false once the socket is closed or destroyed. */
export function socketWriter(socket: net.Socket): (chunk: Buffer) => Promise<boolean> {
  return async (chunk) => {
    if (socket.destroyed || !socket.writable) return false;
    if (socket.write(chunk)) return true;
    await new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done).off('close', done);
        resolve();
      };
      socket.on('drain', done).on('close', done);
    });
    return !socket.destroyed;
  };
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
