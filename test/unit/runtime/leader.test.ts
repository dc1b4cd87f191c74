import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
