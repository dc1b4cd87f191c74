// Per-workload rollout-restart debouncing (src/controllers/shared/restart.ts), which dynamic secrets
// rely on so that several secrets rotating together restart a workload once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { RestartDebouncer, type RestartOutcome } from '../../../src/controllers/shared/restart.ts';
import { TaskQueue } from '../../../src/runtime/tasks.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

const owner = (name: string) => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultDynamicSecret',
  metadata: { name, namespace: 'ns', uid: `uid-${name}` },
});
const web = { kind: 'Deployment' as const, name: 'web' };
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** The restarts run on a real task queue driven by the fake clock. */
function tasksOn(clock: FakeClock): TaskQueue {
  const q = new TaskQueue({ name: 'restarts', logger: pino({ level: 'silent' }), clock, random: () => 0 });
  void q.run(new AbortController().signal);
  return q;
}

function setup() {
  const clock = new FakeClock();
  const patches: { at: number; target: string }[] = [];
  const notes: { owner: string; ok: boolean; merged: number }[] = [];
  const d = new RestartDebouncer(
    clock,
    tasksOn(clock),
    async (ns, t) => {
      patches.push({ at: clock.now(), target: `${ns}/${t.kind}/${t.name}` });
    },
    (o, _t, outcome: RestartOutcome, merged) =>
      notes.push({ owner: o.metadata.name ?? '', ok: outcome.ok, merged }),
    { coalesceMs: 1_000, minIntervalMs: 10_000 },
  );
  return { clock, d, patches, notes };
}

describe('rollout restart debouncing', () => {
  it('requests within the coalescing window become one restart, each owner notified', async () => {
    const { clock, d, patches, notes } = setup();
    const a = d.request(owner('a'), 'ns', web);
    clock.advance(300);
    const b = d.request(owner('b'), 'ns', web);
    assert.equal(a.deferred, false);
    assert.equal(a.done, b.done);
    clock.advance(700);
    await flush();
    assert.deepEqual(await a.done, { ok: true });
    assert.equal(patches.length, 1);
    assert.deepEqual(
      notes.map((n) => [n.owner, n.merged]),
      [
        ['a', 2],
        ['b', 2],
      ],
    );
  });

  it('a workload is restarted at most once per minimum interval; later requests merge', async () => {
    const { clock, d, patches } = setup();
    d.request(owner('a'), 'ns', web);
    clock.advance(1_000);
    await flush();
    assert.equal(patches.length, 1);
    clock.advance(2_000);
    const late = d.request(owner('b'), 'ns', web);
    assert.equal(late.deferred, true);
    assert.equal(late.at, patches[0]!.at + 10_000);
    clock.advance(3_000);
    d.request(owner('c'), 'ns', web);
    clock.advance(10_000);
    await flush();
    assert.equal(patches.length, 2);
    assert.ok(patches[1]!.at - patches[0]!.at >= 10_000);
  });

  it('different workloads are independent', async () => {
    const { clock, d, patches } = setup();
    d.request(owner('a'), 'ns', web);
    d.request(owner('a'), 'ns', { kind: 'StatefulSet', name: 'db' });
    d.request(owner('a'), 'other', web);
    clock.advance(1_000);
    await flush();
    assert.equal(patches.length, 3);
  });

  it('a failed patch settles with the error and notifies every owner', async () => {
    const clock = new FakeClock();
    const notes: boolean[] = [];
    const d = new RestartDebouncer(
      clock,
      tasksOn(clock),
      async () => {
        throw new Error('deployment is paused');
      },
      (_o, _t, outcome) => notes.push(outcome.ok),
      { coalesceMs: 0, minIntervalMs: 0 },
    );
    const r = d.request(owner('a'), 'ns', web);
    await flush();
    assert.deepEqual(await r.done, { ok: false, message: 'deployment is paused' });
    assert.deepEqual(notes, [false]);
  });
});
