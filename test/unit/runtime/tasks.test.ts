import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
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

  it('call: runs awaited work under the key and settles with its outcome, never retried', async () => {
    const { q, stop } = start();
    assert.equal(await q.call('k', async () => 42), 42);
    let attempts = 0;
    await assert.rejects(
      q.call('k', async () => {
        attempts += 1;
        throw new Error('refused');
      }),
      /refused/,
    );
    await flush();
    assert.equal(attempts, 1);
    assert.equal(q.pending, 0);
    await stop();
  });

  it('call: calls of one key run one at a time in order, and never beside its scheduled task', async () => {
    const { q, stop } = start();
    const order: string[] = [];
    let active = 0;
    let maxActive = 0;
    const gates: (() => void)[] = [];
    const work = (name: string) => async () => {
      active += 1;
      maxActive = Math.max(maxActive, active);
      order.push(name);
      await new Promise<void>((r) => gates.push(r));
      active -= 1;
    };
    q.schedule('k', work('task'));
    await flush();
    const calls = [q.call('k', work('a')), q.call('k', work('b')), q.call('other', work('other'))];
    await flush();
    assert.deepEqual(order, ['task', 'other'], 'the call waits for the running task; another key does not');
    for (let i = 0; i < 4; i++) {
      gates.shift()?.();
      await flush();
    }
    await Promise.all(calls);
    assert.deepEqual(order, ['task', 'other', 'a', 'b']);
    assert.equal(maxActive, 2, 'one per key at most');
    await stop();
  });

  it('call: a withdrawn call rejects with the reason and leaves the others alone', async () => {
    const { q, stop } = start();
    let release: () => void = () => {};
    const first = q.call('k', () => new Promise<string>((r) => (release = () => r('first'))));
    const ac = new AbortController();
    const second = q.call('k', async () => assert.fail('withdrawn'), ac.signal);
    const third = q.call('k', async () => 'third');
    ac.abort(new Error('deadline'));
    await assert.rejects(second, /deadline/);
    release();
    assert.deepEqual(await Promise.all([first, third]), ['first', 'third']);
    await stop();
  });

  it('call: shutdown rejects waiting calls and lets the running one finish; later calls are refused', async () => {
    const { q, stop } = start();
    let release: () => void = () => {};
    const running = q.call('k', () => new Promise<string>((r) => (release = () => r('done'))));
    const waiting = q.call('k', async () => 'never');
    await flush();
    const stopped = stop();
    await assert.rejects(waiting, /shutting down/);
    release();
    await stopped;
    assert.equal(await running, 'done');
    await assert.rejects(
      q.call('k', async () => 'late'),
      /shutting down/,
    );
  });

  it('call: a scheduled task runs once, never before it is due, whatever calls come on its key', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 10_000 }),
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 12_000 }), withdraw: fc.boolean() }), {
          maxLength: 6,
        }),
        async (delay, calls) => {
          const { q, clock, stop } = start();
          const t0 = clock.now();
          const ranAt: number[] = [];
          q.schedule('k', async () => void ranAt.push(clock.now()), delay);
          const settled: Promise<unknown>[] = [];
          for (const c of [...calls].sort((a, b) => a.at - b.at)) {
            await clock.advanceAsync(c.at - (clock.now() - t0));
            const ac = new AbortController();
            settled.push(q.call('k', async () => clock.now(), ac.signal).catch(() => 'withdrawn'));
            if (c.withdraw) ac.abort(new Error('gone'));
          }
          await clock.advanceAsync(Math.max(0, delay + 1 - (clock.now() - t0)));
          await Promise.all(settled);
          assert.equal(ranAt.length, 1);
          assert.ok((ranAt[0] ?? 0) - t0 >= delay, `ran at ${(ranAt[0] ?? 0) - t0}, due ${delay}`);
          await stop();
        },
      ),
      { numRuns: 60 },
    );
  });
});
