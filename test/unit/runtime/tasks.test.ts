import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { BACKGROUND_BACKOFF } from '../../../src/backoff.ts';
import { TaskQueue } from '../../../src/runtime/tasks.ts';
import { FakeClock } from './fake-clock.ts';

const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

function start(clock = new FakeClock()) {
  const q = new TaskQueue({ name: 'test', logger: pino({ level: 'silent' }), clock, random: () => 0 });
  const stop = new AbortController();
  const done = q.run(stop.signal);
  const halt = (): Promise<void> => {
    stop.abort();
    return done;
  };
  return { q, clock, stop: halt };
}

describe('TaskQueue', () => {
  it('runs a task when it is due; scheduling the key again replaces the pending task', async () => {
    const { q, clock, stop } = start();
    const ran: string[] = [];
    q.schedule('k', async () => void ran.push('first'), 1_000);
    q.schedule('k', async () => void ran.push('second'), 1_000);
    await clock.advanceAsync(999);
    assert.deepEqual(ran, []);
    await clock.advanceAsync(1);
    assert.deepEqual(ran, ['second']);
    assert.equal(q.pending, 0);
    await stop();
  });

  it('retries a failing task with the background backoff until it succeeds', async () => {
    const { q, clock, stop } = start();
    let attempts = 0;
    q.schedule('k', async () => {
      attempts += 1;
      if (attempts < 3) throw new Error('apiserver down');
    });
    await flush();
    assert.equal(attempts, 1);
    await clock.advanceAsync(BACKGROUND_BACKOFF.initialMs);
    assert.equal(attempts, 2);
    await clock.advanceAsync(BACKGROUND_BACKOFF.initialMs * 2);
    assert.equal(attempts, 3);
    assert.equal(q.pending, 0);
    await stop();
  });

  it('never runs one key twice at once; a task scheduled meanwhile runs after', async () => {
    const { q, stop } = start();
    let active = 0;
    let maxActive = 0;
    let release: () => void = () => {};
    const slow = async () => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      await new Promise<void>((r) => {
        release = r;
      });
      active -= 1;
    };
    const after: string[] = [];
    q.schedule('k', slow);
    await flush();
    q.schedule('k', async () => void after.push('next'));
    await flush();
    assert.deepEqual(after, []);
    release();
    await flush();
    assert.deepEqual(after, ['next']);
    assert.equal(maxActive, 1);
    await stop();
  });

  it('lets a running task finish on shutdown and drops tasks not yet due', async () => {
    const { q, stop } = start();
    let finished = false;
    let release: () => void = () => {};
    q.schedule('running', async () => {
      await new Promise<void>((r) => {
        release = r;
      });
      finished = true;
    });
    q.schedule('later', async () => assert.fail('must not run'), 60_000);
    await flush();
    const stopped = stop();
    release();
    await stopped;
    assert.equal(finished, true);
    assert.equal(q.pending, 1);
  });
});
