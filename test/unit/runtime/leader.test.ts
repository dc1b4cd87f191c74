import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LeaderElector } from '../../../src/runtime/leader.ts';
import { FakeClock, flush } from './fake-clock.ts';
import { FakeLeases } from './fake-leases.ts';

function candidate(
  api: FakeLeases,
  clock: FakeClock,
  identity: string,
  leaders: Set<string>,
  release = true,
) {
  const events: string[] = [];
  const stop = new AbortController();
  const el = new LeaderElector({
    client: api.client(),
    namespace: 'ferry',
    name: 'ferry-lock',
    identity,
    clock,
    random: () => 0,
    releaseOnCancel: release,
    onStartedLeading: () => {
      assert.equal(leaders.size, 0, `${identity} started leading while ${[...leaders]} leads`);
      leaders.add(identity);
      events.push('start');
    },
    onStoppedLeading: () => {
      leaders.delete(identity);
      events.push('stop');
    },
  });
  return { el, stop, events, done: el.run(stop.signal) };
}

describe('LeaderElector', () => {
  it('one leads; on release the other takes over at its next retry', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    const leaders = new Set<string>();
    const a = candidate(api, clock, 'a', leaders);
    await flush();
    const b = candidate(api, clock, 'b', leaders);
    await clock.advanceAsync(10_000);
    assert.ok(a.el.isLeader());
    assert.ok(!b.el.isLeader());
    assert.equal(b.el.leader(), 'a');
    assert.equal(api.lease?.spec?.holderIdentity, 'a');
    a.stop.abort();
    assert.equal(await a.done, false);
    assert.equal(api.lease?.spec?.holderIdentity, '');
    await clock.advanceAsync(2_400 * 1.2);
    assert.ok(b.el.isLeader());
    assert.equal(api.lease?.spec?.leaseTransitions, 1);
    b.stop.abort();
    await b.done;
    assert.deepEqual(a.events, ['start', 'stop']);
  });

  it('without release, takeover waits out leaseDuration from the last observed change', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    const leaders = new Set<string>();
    const a = candidate(api, clock, 'a', leaders, false);
    await flush();
    const b = candidate(api, clock, 'b', leaders);
    await clock.advanceAsync(5_000);
    // a stops without releasing (as a crashed process would).
    a.stop.abort();
    await a.done;
    assert.equal(api.lease?.spec?.holderIdentity, 'a');
    await clock.advanceAsync(12_000);
    assert.ok(!b.el.isLeader(), 'lease not yet expired');
    await clock.advanceAsync(6_000);
    assert.ok(b.el.isLeader(), 'took over within leaseDuration + one retry period');
    b.stop.abort();
    await b.done;
  });

  it('gives up leadership once renewals fail past renewDeadline, before the lease could expire', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    const leaders = new Set<string>();
    const a = candidate(api, clock, 'a', leaders);
    await clock.advanceAsync(1);
    assert.ok(a.el.isLeader());
    const lastRenew = clock.now();
    api.down = true;
    await clock.advanceAsync(2_000 + 10_000 + 1);
    assert.ok(!a.el.isLeader());
    assert.equal(await a.done, true, 'reports leadership lost');
    assert.ok(clock.now() - lastRenew < 15_000);
    assert.deepEqual(a.events, ['start', 'stop']);
  });

  it('rides out a short outage that follows a renewal which hung for most of renewDeadline', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    const a = candidate(api, clock, 'a', new Set());
    await clock.advanceAsync(1);
    assert.ok(a.el.isLeader());
    // etcd away: the API server holds the next renewal for 9 s, then lets it through.
    let resume = () => {};
    api.stalled = new Promise((r) => {
      resume = r;
    });
    await clock.advanceAsync(2_000 + 9_000);
    api.stalled = undefined;
    resume();
    await flush();
    await clock.advanceAsync(1_500);
    // Then the API server is killed and back 4 s later: well inside renewDeadline.
    api.down = true;
    await clock.advanceAsync(4_000);
    api.down = false;
    await clock.advanceAsync(10_000);
    assert.ok(a.el.isLeader(), 'still leading');
    a.stop.abort();
    assert.equal(await a.done, false);
  });

  it('stops at its first renewal that finds another holder, not at renewDeadline', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    const a = candidate(api, clock, 'a', new Set());
    await clock.advanceAsync(1);
    assert.ok(a.el.isLeader());
    // A successor took the lease (a was paused past its lease, say).
    const lease = api.lease;
    assert.ok(lease?.spec);
    api.lease = { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } };
    await clock.advanceAsync(2_000 + 1);
    assert.ok(!a.el.isLeader(), 'lost at the first renewal attempt');
    assert.equal(await a.done, true);
  });

  it('a process frozen past its lease aborts its leading signal in the first timer turn after it wakes', async () => {
    const api = new FakeLeases();
    const clock = new FakeClock();
    let leading: AbortSignal | undefined;
    const stop = new AbortController();
    const el = new LeaderElector({
      client: api.client(),
      namespace: 'ferry',
      name: 'ferry-lock',
      identity: 'a',
      clock,
      random: () => 0,
      onStartedLeading: (signal) => {
        leading = signal;
      },
    });
    const done = el.run(stop.signal);
    await clock.advanceAsync(1);
    assert.ok(leading && !leading.aborted);
    // Frozen for 20 s: the timers fire on waking with no promise continuation in between, so no
    // renewal attempt can run before the reconciles must stop.
    clock.advance(20_000);
    assert.ok(leading.aborted, 'leadership ended synchronously');
    assert.ok(!el.isLeader());
    assert.equal(await done, true);
  });

  it('property: under any sequence of partitions and stalls, two candidates never lead at once, and one leads once the API is healthy', async () => {
    const step = fc.record({
      ms: fc.integer({ min: 1, max: 6_000 }),
      aDown: fc.boolean(),
      bDown: fc.boolean(),
      aStalled: fc.boolean(),
      bStalled: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 10 }), async (steps) => {
        const api = new FakeLeases();
        const clock = new FakeClock();
        const stop = new AbortController();
        const leading = new Map<string, AbortSignal>();
        const overlaps: string[] = [];
        type Link = { down?: boolean; stalled?: Promise<void> | undefined };
        const links: Record<'a' | 'b', Link> = { a: {}, b: {} };
        // A candidate that loses leadership exits and comes back, as the operator's process does.
        const campaign = async (id: 'a' | 'b') => {
          for (let gen = 0; !stop.signal.aborted; gen++) {
            const identity = `${id}${gen}`;
            await new LeaderElector({
              client: api.client(links[id]),
              namespace: 'ferry',
              name: 'ferry-lock',
              identity,
              clock,
              random: () => 0,
              releaseOnCancel: false,
              onStartedLeading: (signal) => {
                // Recorded, not asserted: the elector catches what this callback throws.
                for (const [other, s] of leading)
                  if (!s.aborted) overlaps.push(`${identity} started at ${clock.now()} while ${other} leads`);
                leading.set(identity, signal);
              },
            }).run(stop.signal);
          }
        };
        const runs = [campaign('a'), campaign('b')];
        // A stall lasts until a step without it: requests hang across several steps, as they do
        // behind an API server waiting on etcd.
        const resume = { a: () => {}, b: () => {} };
        const set = (id: 'a' | 'b', down: boolean, stalled: boolean) => {
          links[id].down = down;
          if (stalled && !links[id].stalled)
            links[id].stalled = new Promise<void>((r) => {
              resume[id] = r;
            });
          else if (!stalled && links[id].stalled) {
            links[id].stalled = undefined;
            resume[id]();
          }
        };
        for (const st of steps) {
          set('a', st.aDown, st.aStalled);
          set('b', st.bDown, st.bStalled);
          await flush();
          await clock.advanceAsync(st.ms);
        }
        set('a', false, false);
        set('b', false, false);
        await flush();
        await clock.advanceAsync(30_000);
        assert.deepEqual(overlaps, []);
        assert.ok(
          [...leading.values()].some((s) => !s.aborted),
          'someone leads on a healthy API',
        );
        stop.abort();
        await clock.advanceAsync(20_000);
        await Promise.all(runs);
      }),
      { numRuns: 150 },
    );
  });

  it('validates timing parameters', () => {
    const api = new FakeLeases();
    const base = {
      client: api.client(),
      namespace: 'n',
      name: 'l',
      identity: 'i',
      onStartedLeading: () => {},
    };
    assert.throws(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }));
    assert.throws(() => new LeaderElector({ ...base, retryPeriodMs: 9_000 }));
    assert.throws(() => new LeaderElector({ ...base, identity: '' }));
  });
});
