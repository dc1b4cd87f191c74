// Orphan revocations are kept per target (the node service's queue key) and bounded: a record whose
// revocation keeps failing is given up after maxAttempts passes, logged and counted, and no longer
// persisted or retried; a failed pass is retried with the upkeep backoff.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Revocations, UNTARGETED } from '../../../src/csi/revocations.ts';
import type { Held } from '../../../src/csi/secrets.ts';
import type { OrphanRecord } from '../../../src/csi/state.ts';
import { FakeClock } from '../runtime/fake-clock.ts';
import { testGrant } from './grant.ts';

const lease = (id: string): Held => ({
  kind: 'lease',
  leaseId: id,
  clientId: 'c',
  durationS: 60,
  renewable: true,
  renewalPercent: 67,
  startedAtMs: 0,
  revoke: true,
});

function setup(failing: (who: string) => boolean, maxAttempts = 3) {
  const clock = new FakeClock();
  const woken: string[] = [];
  const saved: OrphanRecord[][] = [];
  const counts = { revoked: 0, abandoned: 0 };
  const r = new Revocations({
    release: async (_g, who) => {
      if (failing(who)) throw new Error('vault refuses');
    },
    state: { saveOrphans: async (o) => void saved.push(structuredClone(o)) },
    wake: (key) => void woken.push(key),
    clock,
    random: () => 0.5,
    log: pino({ level: 'silent' }),
    onRevoked: (n) => {
      counts.revoked += n;
    },
    onAbandoned: (n) => {
      counts.abandoned += n;
    },
    maxAttempts,
  });
  return { r, clock, woken, saved, counts };
}

describe('Revocations', () => {
  it('gives a failing record up after maxAttempts passes; others are revoked', async () => {
    const { r, clock, woken, saved, counts } = setup((who) => who === 'pod a/bad');
    await r.add('/t/bad', testGrant(1, {}), 'pod a/bad', [lease('l1'), lease('l2')]);
    await r.add('/t/good', testGrant(1, {}), 'pod a/good', [lease('l3')]);
    assert.deepEqual(woken, ['/t/bad', '/t/good']);
    await r.run('/t/good');
    assert.equal(r.dueAt('/t/good'), undefined, 'nothing left for that target');
    for (let pass = 0; pass < 10 && r.dueAt('/t/bad') !== undefined; pass++) {
      clock.advance(Math.max(0, (r.dueAt('/t/bad') ?? 0) - clock.now()));
      await r.run('/t/bad');
    }
    assert.equal(r.dueAt('/t/bad'), undefined);
    assert.equal(counts.revoked, 1);
    assert.equal(counts.abandoned, 2);
    assert.equal(r.pending, 0);
    assert.deepEqual(saved.at(-1), []);
    assert.ok(
      saved.some((s) => s.some((o) => o.attempts === 2 && o.targetPath === '/t/bad')),
      'attempts and the target are persisted',
    );
  });

  it('retries a failed pass after the backoff, not before', async () => {
    let fail = true;
    const { r, clock } = setup(() => fail, 10);
    await r.add('/t/x', testGrant(1, {}), 'pod a/x', [lease('l1')]);
    assert.equal(r.dueAt('/t/x'), clock.now());
    await r.run('/t/x');
    const retryAt = r.dueAt('/t/x') ?? 0;
    assert.ok(retryAt > clock.now(), 'backs off');
    fail = false;
    await r.run('/t/x'); // woken early (a publish of the same target): not due yet
    assert.equal(r.records, 1);
    clock.advance(retryAt - clock.now());
    await r.run('/t/x');
    assert.equal(r.records, 0);
  });

  it('only revokes what must be revoked; records of an older driver have a key of their own', async () => {
    const { r, woken } = setup(() => false);
    await r.add('/t/y', testGrant(1, {}), 'pod a/y', [{ ...lease('l1'), revoke: false }]);
    assert.deepEqual(woken, [], 'nothing to revoke');
    r.resume([
      { who: 'pod a/old', grant: testGrant(1, {}), held: [lease('l9')] },
      { targetPath: '/t/z', who: 'pod a/z', grant: testGrant(1, {}), held: [lease('l8')] },
    ]);
    assert.deepEqual(woken, [], 'scheduled by start, once everything is loaded');
    r.start();
    assert.deepEqual(woken.sort(), ['/t/z', UNTARGETED]);
    assert.equal(r.records, 2);
  });

  it('keeps what a previous process recorded in every save, and records an item once', async () => {
    const { r, saved } = setup(() => false);
    r.resume([{ targetPath: '/t/a', who: 'pod a/a', grant: testGrant(1, {}), held: [lease('l1')] }]);
    // A crash after recording a volume's leases, before removing its record: the next process
    // forgets the volume again.
    await r.add('/t/a', testGrant(1, {}), 'pod a/a', [lease('l1')]);
    assert.equal(saved.length, 0, 'nothing new, nothing written');
    await r.add('/t/b', testGrant(1, {}), 'pod a/b', [lease('l1'), lease('l2')]);
    assert.deepEqual(
      saved.at(-1)?.map((o) => o.held.map((h) => (h.kind === 'lease' ? h.leaseId : h.serial))),
      [['l1'], ['l2']],
    );
    assert.equal(r.pending, 2);
  });
});
