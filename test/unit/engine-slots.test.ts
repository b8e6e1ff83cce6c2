import { expect } from 'chai';
import { ServiceUnavailableError } from '../../src/errors.js';
import { EngineSlots } from '../../src/images/engine-slots.js';

/** A job that runs until `finish()` is called. */
function heldJob(): { job: () => Promise<string>; finish: (value: string) => void; started: () => boolean } {
  let finish: (value: string) => void = () => undefined;
  let started = false;
  return {
    job: () => {
      started = true;
      return new Promise<string>((resolve) => (finish = resolve));
    },
    finish: (value) => finish(value),
    started: () => started,
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('EngineSlots (issue 12, item 8: bounded transform queue)', () => {
  it('runs up to `slots` jobs at once and hands a finished job\'s slot to the oldest waiting one', async () => {
    const slots = new EngineSlots(1);
    const [first, second, third] = [heldJob(), heldJob(), heldJob()];
    const results = [slots.run(first.job), slots.run(second.job), slots.run(third.job)];
    await tick();
    expect([first.started(), second.started(), third.started(), slots.queued]).to.deep.equal([true, false, false, 2]);
    first.finish('a');
    await tick();
    expect([second.started(), third.started()]).to.deep.equal([true, false]);
    second.finish('b');
    await tick();
    third.finish('c');
    expect(await Promise.all(results)).to.deep.equal(['a', 'b', 'c']);
  });

  it('refuses a job at once with 503 + Retry-After when maxQueue jobs already wait', async () => {
    const slots = new EngineSlots(1, { maxQueue: 1, what: 'image transforms' });
    const [running, waiting] = [heldJob(), heldJob()];
    const results = [slots.run(running.job), slots.run(waiting.job)];
    const refused = await slots.run(async () => 'never').catch((err: unknown) => err);
    expect(refused).to.be.instanceOf(ServiceUnavailableError);
    expect(refused).to.include({ status: 503, message: 'too many image transforms waiting (limit 1); retry shortly' });
    expect((refused as ServiceUnavailableError).retryAfterSeconds).to.be.greaterThan(0);
    running.finish('a');
    await tick();
    waiting.finish('b');
    expect(await Promise.all(results)).to.deep.equal(['a', 'b']);
  });

  it('maxQueue 0: no job waits', async () => {
    const slots = new EngineSlots(1, { maxQueue: 0 });
    const running = heldJob();
    const result = slots.run(running.job);
    expect(await slots.run(async () => 'never').catch((err: unknown) => err)).to.be.instanceOf(ServiceUnavailableError);
    running.finish('a');
    expect(await result).to.equal('a');
  });

  it('refuses a job still waiting after queueTimeoutMs, which then never runs; the queue moves on', async () => {
    const slots = new EngineSlots(1, { queueTimeoutMs: 30, what: 'image transforms' });
    const running = heldJob();
    const result = slots.run(running.job);
    let ran = false;
    const started = Date.now();
    const refused = await slots.run(async () => (ran = true)).catch((err: unknown) => err);
    expect(Date.now() - started).to.be.at.least(25);
    expect(refused).to.be.instanceOf(ServiceUnavailableError);
    expect((refused as Error).message).to.equal('image transforms are busy: no slot freed within 30 ms; retry shortly');
    expect(slots.queued).to.equal(0);
    running.finish('a');
    expect(await result).to.equal('a');
    expect(ran).to.equal(false);
    // The slot was released, not handed to the refused job.
    expect(await slots.run(async () => 'next')).to.equal('next');
  });

  it('releases the slot of a job that throws', async () => {
    const slots = new EngineSlots(1);
    expect(await slots.run(async () => Promise.reject(new Error('boom'))).catch((err: Error) => err.message)).to.equal('boom');
    expect(await slots.run(async () => 'after')).to.equal('after');
  });
});
