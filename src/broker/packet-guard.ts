import { Duplex } from 'node:stream';

/** Why a guard closed a connection (the `reason` label of the refusal metric). */
export type GuardReason = 'connect_expected' | 'connect_too_large' | 'packet_too_large' | 'malformed_length' | 'slow_client';

/** A connection closed by `PacketGuard`. */
export class GuardError extends Error {
  constructor(readonly reason: GuardReason, message: string) {
    super(message);
    this.name = 'GuardError';
  }
}

/** Limits of one connection. */
export interface GuardLimits {
  /** Bytes a client may send before the broker's CONNACK, CONNECT included. */
  maxConnectBytes: number;
  /** Largest packet after that, fixed header included. */
  maxPacketBytes: number;
  /** Unsent bytes the broker may hold for the client; beyond them it is disconnected. */
  maxBufferedBytes: number;
}

const CONNECT = 1;

/**
 * Follows MQTT packet boundaries in a byte stream by reading only the fixed
 * headers (type, then the remaining length as a varint of at most 4 bytes,
 * MQTT 3.1.1 2.2.3), so a packet's declared size is known from its first
 * bytes, long before its body arrives.
 */
export class FrameReader {
  private state: 'type' | 'length' | 'body' = 'type';
  private type = 0;
  private length = 0;
  private lengthBytes = 0;
  private remaining = 0;

  /**
   * Reads `chunk`; calls `onHeader(type, packetBytes)` for each complete fixed header.
   * @returns the first error `onHeader` returns, or a malformed-length error
   */
  feed(chunk: Buffer, onHeader: (type: number, packetBytes: number) => GuardError | undefined): GuardError | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'type') {
        this.type = chunk[i++] >> 4;
        this.length = 0;
        this.lengthBytes = 0;
        this.state = 'length';
      } else if (this.state === 'length') {
        const byte = chunk[i++];
        this.length += (byte & 0x7f) * 128 ** this.lengthBytes;
        this.lengthBytes += 1;
        if (byte & 0x80) {
          if (this.lengthBytes === 4) return new GuardError('malformed_length', 'malformed remaining length');
          continue;
        }
        const error = onHeader(this.type, 1 + this.lengthBytes + this.length);
        if (error) return error;
        this.remaining = this.length;
        this.state = this.remaining > 0 ? 'body' : 'type';
      } else {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'type';
      }
    }
    return undefined;
  }
}

/**
 * The stream aedes gets instead of the raw connection (TCP, TLS or
 * WebSocket). aedes' parser (mqtt-packet) buffers a whole packet before it
 * looks at it and has no size limit, so this guard reads each fixed header as
 * it passes and closes the connection as soon as a packet is declared too
 * large: CONNECT must come first and, with whatever comes before the CONNACK,
 * fit in `maxConnectBytes`; later packets fit in `maxPacketBytes`.
 *
 * Outgoing, it takes every write at once, so aedes never waits for one
 * client's 'drain' (its delivery path holds the publish until then, which
 * stalls every subscriber), and disconnects the client instead when more than
 * `maxBufferedBytes` wait unsent.
 */
export class PacketGuard extends Duplex {
  private readonly frames = new FrameReader();
  private packets = 0;
  private bytesBeforeConnack = 0;
  private connackSent = false;

  constructor(private readonly inner: Duplex, readonly remoteAddress: string, private readonly limits: GuardLimits) {
    // A write is handed to `inner` at once, so this stream's own buffer stays empty: never report it full.
    super({ writableHighWaterMark: Number.MAX_SAFE_INTEGER, decodeStrings: true });
    inner.on('data', (chunk: Buffer) => this.receive(chunk));
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
  }

  /** Unsent bytes held for this client. */
  get bufferedBytes(): number {
    return this.inner.writableLength;
  }

  private receive(chunk: Buffer): void {
    const error = this.frames.feed(chunk, (type, packetBytes) => this.check(type, packetBytes));
    if (error) {
      this.destroy(error);
      return;
    }
    if (!this.push(chunk)) this.inner.pause();
  }

  private check(type: number, packetBytes: number): GuardError | undefined {
    this.packets += 1;
    if (this.packets === 1 && type !== CONNECT) return new GuardError('connect_expected', 'the first packet must be CONNECT');
    if (!this.connackSent) {
      this.bytesBeforeConnack += packetBytes;
      if (this.bytesBeforeConnack > this.limits.maxConnectBytes) {
        return new GuardError('connect_too_large', `more than ${this.limits.maxConnectBytes} bytes before CONNACK`);
      }
    } else if (packetBytes > this.limits.maxPacketBytes) {
      return new GuardError('packet_too_large', `packet of ${packetBytes} bytes exceeds ${this.limits.maxPacketBytes}`);
    }
    return undefined;
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // The broker writes nothing before the CONNACK.
    this.connackSent = true;
    if (this.inner.destroyed) return callback();
    this.inner.write(chunk);
    if (this.inner.writableLength > this.limits.maxBufferedBytes) {
      callback();
      this.destroy(new GuardError('slow_client', `more than ${this.limits.maxBufferedBytes} bytes unsent`));
      return;
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.inner.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inner.destroy();
    callback(error);
  }
}
