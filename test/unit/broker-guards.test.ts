import { expect } from 'chai';
import { ConnectionLimits } from '../../src/broker/connection-limits.js';
import { FrameReader, GuardError } from '../../src/broker/packet-guard.js';

/** The (type, size) of each complete fixed header in `chunks`, fed one after the other. */
function headers(chunks: Buffer[]): { seen: Array<[number, number]>; error?: GuardError } {
  const reader = new FrameReader();
  const seen: Array<[number, number]> = [];
  for (const chunk of chunks) {
    const error = reader.feed(chunk, (type, bytes) => void seen.push([type, bytes]));
    if (error) return { seen, error };
  }
  return { seen };
}

describe('FrameReader: MQTT fixed headers in a byte stream', () => {
  const connect = Buffer.from([0x10, 0x03, 0xaa, 0xbb, 0xcc]);
  const ping = Buffer.from([0xc0, 0x00]);
  // PUBLISH declaring 321 bytes: 321 = 0xC1 0x02 as a varint.
  const publishHeader = Buffer.from([0x30, 0xc1, 0x02]);

  it('reports each packet\'s type and total size (header included), whatever the chunking', () => {
    const stream = Buffer.concat([connect, ping, publishHeader, Buffer.alloc(321), ping]);
    const expected: Array<[number, number]> = [[1, 5], [12, 2], [3, 324], [12, 2]];
    expect(headers([stream]).seen).to.deep.equal(expected);
    expect(headers([...stream].map((b) => Buffer.from([b]))).seen, 'byte by byte').to.deep.equal(expected);
  });

  it('knows a declared 250 MB packet from its first 5 bytes', () => {
    // 250_000_000 as a 4-byte varint.
    expect(headers([Buffer.from([0x10, 0x80, 0xe5, 0x9a, 0x77])]).seen).to.deep.equal([[1, 250_000_005]]);
  });

  it('stops at the first error the check returns', () => {
    const reader = new FrameReader();
    const refused = new GuardError('packet_too_large', 'too large');
    expect(reader.feed(Buffer.concat([connect, publishHeader]), (type) => (type === 3 ? refused : undefined))).to.equal(refused);
  });

  it('refuses a remaining length longer than 4 bytes', () => {
    expect(headers([Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])]).error?.reason).to.equal('malformed_length');
  });
});

describe('ConnectionLimits', () => {
  it('admits up to the per-address and total limits, and gives places back once', () => {
    const limits = new ConnectionLimits({ maxConnections: 3, maxPerAddress: 2 });
    const a1 = limits.admit('a');
    const a2 = limits.admit('a');
    expect([a1, a2].every(Boolean)).to.equal(true);
    expect(limits.admit('a'), 'a third from a').to.equal(undefined);
    const b1 = limits.admit('b');
    expect(b1).to.be.a('function');
    expect(limits.admit('c'), 'a fourth in total').to.equal(undefined);
    a1!();
    a1!();
    expect(limits.open).to.equal(2);
    expect(limits.admit('c')).to.be.a('function');
    expect(limits.admit('a')).to.equal(undefined);
  });
});
