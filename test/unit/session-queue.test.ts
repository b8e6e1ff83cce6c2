import { expect } from 'chai';
import { SessionQueue, type QueuedMessage } from '../../src/broker/session-queue.js';

const message = (brokerCounter: number, bytes = 10, brokerId = 'b1'): QueuedMessage => ({ brokerId, brokerCounter, bytes });

describe('SessionQueue: a session\'s queued messages in memory, oldest first', () => {
  it('counts messages and bytes, takes the oldest first and skips the ones acknowledged', () => {
    const queue = new SessionQueue();
    for (let i = 1; i <= 5; i++) queue.push(message(i, i));
    expect([queue.length, queue.bytes]).to.deep.equal([5, 15]);
    queue.remove(queue.find('b1', 2, 'oldest')!);
    expect(queue.takeOldest(2).map((m) => m.brokerCounter)).to.deep.equal([1, 3]);
    expect([queue.length, queue.bytes]).to.deep.equal([2, 9]);
    expect(queue.takeOldest(10).map((m) => m.brokerCounter)).to.deep.equal([4, 5]);
    expect([queue.length, queue.bytes]).to.deep.equal([0, 0]);
  });

  it('finds a message by broker id and counter from either end, and not once removed', () => {
    const queue = new SessionQueue();
    queue.push(message(7, 1, 'old-broker'));
    queue.push(message(7, 1, 'new-broker'));
    expect(queue.find('new-broker', 7, 'oldest')?.brokerId).to.equal('new-broker');
    expect(queue.find('old-broker', 7, 'newest')?.brokerId).to.equal('old-broker');
    const found = queue.find('old-broker', 7, 'oldest')!;
    queue.remove(found);
    queue.remove(found);
    expect(queue.find('old-broker', 7, 'oldest')).to.equal(undefined);
    expect(queue.length).to.equal(1);
  });

  it('stays correct over many pushes and trims (its array is compacted as it goes)', () => {
    const queue = new SessionQueue();
    let next = 0;
    for (let round = 0; round < 5000; round++) {
      queue.push(message(next++));
      if (queue.length > 100) queue.takeOldest(queue.length - 100);
    }
    expect(queue.length).to.equal(100);
    expect(queue.takeOldest(1)[0].brokerCounter).to.equal(next - 100);
    expect(queue.find('b1', next - 1, 'newest')?.brokerCounter).to.equal(next - 1);
  });
});
