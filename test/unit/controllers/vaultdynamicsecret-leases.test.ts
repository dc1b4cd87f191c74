// No lease orphaned by an operator stop (issue 14): the lease record a VaultDynamicSecret's
// destination carries (src/controllers/vaultdynamicsecret/record.ts), and what a restarted operator
// does with it — adopt the lease the status missed, revoke the replaced ones still listed — against
// the fake-backed harness, where a failing status write stands for the stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { API_VERSION, VaultDynamicSecrets } from '../../../src/api/resources.ts';
import type {
  VaultDynamicSecret,
  VaultDynamicSecretStatus,
} from '../../../src/api/v1beta1/vaultdynamicsecret.ts';
import { ANNOTATION_LEASES } from '../../../src/consts/labels.ts';
import { vaultDynamicSecretReconciler } from '../../../src/controllers/vaultdynamicsecret/reconcile.ts';
import {
  adoptable,
  decodeRecord,
  encodeRecord,
  type LeaseRecord,
  MAX_PENDING_REVOKES,
  mergePending,
} from '../../../src/controllers/vaultdynamicsecret/record.ts';
import { Secrets } from '../../../src/k8s/resources.ts';
import type { Secret } from '../../../src/k8s/types.ts';
import { VaultError } from '../../../src/vault/errors.ts';
import { harness } from './harness.ts';

const KEY = Buffer.alloc(32, 7); // the harness's HMAC key
const T0 = 1_700_000_000;

const record = (over: Partial<LeaseRecord> = {}): LeaseRecord => ({
  lease: { id: 'db/creds/app/l2', duration: 600, renewable: true, issued: T0, generation: 2, mac: 'm2' },
  replaces: 'db/creds/app/l1',
  revoke: [{ id: 'db/creds/app/l1', expires: T0 + 300 }],
  ...over,
});

const recordWithout = (): LeaseRecord => {
  const { lease: _, ...rest } = record();
  return rest;
};

const status = (id: string, over: Partial<VaultDynamicSecretStatus> = {}): VaultDynamicSecretStatus => ({
  lastRenewalTime: T0 - 100,
  lastGeneration: 1,
  secretLease: { id, duration: 600, renewable: true, requestID: 'r' },
  secretMAC: 'm1',
  ...over,
});

describe('the lease record', () => {
  it('round-trips, signed for its owner only', () => {
    const value = encodeRecord(KEY, 'uid-d', record());
    assert.ok(value);
    assert.deepEqual(decodeRecord(KEY, 'uid-d', value), record());
    assert.equal(decodeRecord(KEY, 'uid-other', value), undefined, 'copied to another owner');
    assert.equal(decodeRecord(Buffer.alloc(32, 8), 'uid-d', value), undefined, 'another key');
    assert.deepEqual(decodeRecord(KEY, 'uid-d', encodeRecord(KEY, 'uid-d', recordWithout())), {
      replaces: 'db/creds/app/l1',
      revoke: [{ id: 'db/creds/app/l1', expires: T0 + 300 }],
    });
  });

  it('records nothing without a lease or a pending revocation (the annotation goes)', () => {
    assert.equal(encodeRecord(KEY, 'uid-d', { replaces: 'x', revoke: [] }), undefined);
  });

  it('is ignored when edited, malformed or oversized', () => {
    const value = encodeRecord(KEY, 'uid-d', record()) ?? '';
    const edits = [
      value.replace('db/creds/app/l2', 'other/creds/x/l9'),
      value.replace('"expires":', '"expires":1'),
      value.replace('"replaces":"db/creds/app/l1"', '"replaces":""'),
      value.slice(0, -2),
      '{}',
      'null',
      '[]',
      JSON.stringify({ ...JSON.parse(value), revoke: 'x' }),
      JSON.stringify({ ...JSON.parse(value), lease: { id: 'a' } }),
      `${value.slice(0, -1)},"pad":"${'a'.repeat(40_000)}"}`,
    ];
    for (const v of edits) assert.equal(decodeRecord(KEY, 'uid-d', v), undefined, v.slice(0, 80));
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        assert.equal(decodeRecord(KEY, 'uid-d', s), undefined);
      }),
    );
  });

  it('is adopted only when the status is exactly one step behind it', () => {
    const adopted = adoptable(status('db/creds/app/l1'), record());
    assert.deepEqual(adopted?.secretLease, {
      id: 'db/creds/app/l2',
      duration: 600,
      renewable: true,
      requestID: '',
    });
    assert.equal(adopted?.lastRenewalTime, T0);
    assert.equal(adopted?.lastGeneration, 2);
    assert.equal(adopted?.secretMAC, 'm2');
    // A first issue: no status, or one without a lease (a failed first sync).
    assert.ok(adoptable(undefined, record({ replaces: '' })));
    assert.ok(adoptable(status(''), record({ replaces: '' })));
    // Already recorded; an older record (restored from a backup); lease-less credentials.
    assert.equal(adoptable(status('db/creds/app/l2'), record()), undefined);
    assert.equal(adoptable(status('db/creds/app/l3'), record()), undefined);
    assert.equal(adoptable(status('db/creds/app/l1'), recordWithout()), undefined);
  });

  it('pending revocations: a union by id, never the lease in use nor an expired one, bounded', () => {
    const entry = fc.record({
      id: fc.constantFrom('a', 'b', 'c', 'd', ''),
      expires: fc.integer({ min: T0 - 10, max: T0 + 10 }),
    });
    fc.assert(
      fc.property(fc.array(entry), fc.array(entry), fc.constantFrom('a', ''), (x, y, inUse) => {
        const merged = mergePending([x, y], inUse, T0);
        const ids = merged.map((p) => p.id);
        assert.equal(new Set(ids).size, ids.length, 'each id once');
        for (const p of merged) {
          assert.notEqual(p.id, '');
          assert.notEqual(p.id, inUse);
          assert.ok(p.expires >= T0);
          const latest = Math.max(...[...x, ...y].filter((q) => q.id === p.id).map((q) => q.expires));
          assert.equal(p.expires, latest);
        }
        for (const q of [...x, ...y])
          if (q.id !== '' && q.id !== inUse && q.expires >= T0) assert.ok(ids.includes(q.id), q.id);
      }),
    );
    const many = Array.from({ length: 40 }, (_, i) => ({ id: `l${i}`, expires: T0 + i }));
    const kept = mergePending([many], '', T0);
    assert.equal(kept.length, MAX_PENDING_REVOKES);
    assert.equal(kept[0]?.id, `l${40 - MAX_PENDING_REVOKES}`, 'the ones expiring first are dropped');
  });
});

describe('VaultDynamicSecret after an operator stop: no lease orphaned, none issued twice', () => {
  const vds = (generation = 1, spec: Partial<NonNullable<VaultDynamicSecret['spec']>> = {}) =>
    ({
      apiVersion: API_VERSION,
      kind: 'VaultDynamicSecret',
      metadata: { name: 'd', namespace: 'app', uid: 'uid-d', generation },
      spec: {
        vaultAuthRef: 'default',
        mount: 'db',
        path: 'creds/app',
        renewalPercent: generation,
        destination: { name: 'creds', create: true, overwrite: false },
        ...spec,
      },
    }) as VaultDynamicSecret;

  /** Vault: credentials under new leases l1, l2, …; `alive` decides what lookup and renew find. */
  const setup = () => {
    const h = harness<VaultDynamicSecret>(VaultDynamicSecrets, (h) =>
      vaultDynamicSecretReconciler(h.ctx, h.store, h.newDestinations()),
    );
    const revoked = new Set<string>();
    let n = 0;
    const gone = (path: string) =>
      new VaultError({ method: 'PUT', path, status: 400, errors: ['invalid lease'] });
    h.vault.answer = (c) => {
      const id = String(c.body?.lease_id ?? '');
      if (c.path === 'db/creds/app') {
        n += 1;
        return {
          lease_id: `db/creds/app/l${n}`,
          lease_duration: 600,
          renewable: true,
          data: { username: `u${n}` },
        };
      }
      if (c.path === 'sys/leases/lookup') {
        if (revoked.has(id)) throw gone(c.path);
        return { data: { id, ttl: 500, renewable: true } };
      }
      if (c.path === 'sys/leases/renew') return { lease_id: id, lease_duration: 600, renewable: true };
      if (c.path === 'sys/leases/revoke') revoked.add(id);
      return {};
    };
    const issued = () => h.vault.paths().filter((p) => p === 'db/creds/app').length;
    const revokes = () =>
      h.vault.calls.filter((c) => c.path === 'sys/leases/revoke').map((c) => String(c.body?.lease_id));
    const dest = () => h.kube.peek<Secret>(Secrets, 'creds', 'app');
    const recordNow = () => decodeRecord(KEY, 'uid-d', dest()?.metadata.annotations?.[ANNOTATION_LEASES]);
    const secretWrites = () => h.kube.writes.filter((w) => w.id === 'secrets/app/creds').length;
    const leaseOf = () => h.store.get('app', 'd')?.status?.secretLease?.id;
    /** A spec change, as the apiserver applies it: status and finalizers stay. */
    const update = (generation: number, spec: Partial<NonNullable<VaultDynamicSecret['spec']>> = {}) => {
      const stored = h.store.get('app', 'd');
      const next = vds(generation, spec);
      h.apply({
        ...next,
        metadata: { ...stored?.metadata, ...next.metadata },
        ...(stored?.status ? { status: stored.status } : {}),
      });
    };
    /** Runs once with the status write failing (the stop), then starts a new reconciler. */
    const stopAtStatus = async () => {
      h.kube.stopAtStatus = true;
      await assert.rejects(h.run('d'));
      h.kube.stopAtStatus = false;
      h.restart();
    };
    return { h, revoked, issued, revokes, dest, recordNow, secretWrites, leaseOf, stopAtStatus, update };
  };

  it('the destination carries its lease; a rotation costs one more Secret write, a quiet renewal none', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    assert.equal(t.recordNow()?.lease?.id, 'db/creds/app/l1');
    assert.equal(t.recordNow()?.replaces, '');
    assert.equal(t.secretWrites(), 1);
    t.update(2);
    const rotated = await t.h.run('d');
    assert.deepEqual(t.revokes(), ['db/creds/app/l1']);
    assert.deepEqual(t.recordNow(), {
      lease: {
        id: 'db/creds/app/l2',
        duration: 600,
        renewable: true,
        issued: Math.floor(t.h.clock.now() / 1000),
        generation: 2,
        mac: t.h.store.get('app', 'd')?.status?.secretMAC ?? '',
      },
      replaces: 'db/creds/app/l1',
      revoke: [],
    });
    assert.equal(t.secretWrites(), 3, 'the credentials with l1 pending, then the record without it');
    const reads = t.h.kube.reads.length;
    assert.ok('requeueAfterMs' in rotated);
    t.h.clock.advance(rotated.requeueAfterMs);
    await t.h.run('d');
    assert.equal(t.h.vault.paths().at(-1), 'sys/leases/renew');
    assert.equal(t.secretWrites(), 3, 'a renewal writes no Secret');
    assert.equal(t.h.kube.reads.length, reads, 'and reads none');
  });

  it('stopped after the first Secret write: the restarted operator adopts its lease and issues nothing', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.stopAtStatus();
    assert.equal(t.leaseOf(), undefined, 'the status missed the lease');
    const action = await t.h.run('d');
    assert.equal(t.issued(), 1, 'no new credentials');
    assert.equal(t.leaseOf(), 'db/creds/app/l1');
    assert.equal(t.secretWrites(), 1, 'the Secret is left as written');
    assert.ok('requeueAfterMs' in action && action.requeueAfterMs > 0, 'waits for the renewal horizon');
    assert.equal(t.h.events.at(-1)?.reason, 'SecretSynced');
    assert.equal(
      t.h.store.get('app', 'd')?.status?.conditions?.find((c) => c.type === 'Ready')?.status,
      'True',
    );
  });

  it('stopped after the rotation wrote the Secret: adopts the new lease and revokes the replaced one', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    t.update(2);
    await t.stopAtStatus();
    assert.equal(t.leaseOf(), 'db/creds/app/l1');
    assert.deepEqual(
      t.recordNow()?.revoke.map((p) => p.id),
      ['db/creds/app/l1'],
    );
    await t.h.run('d');
    assert.equal(t.issued(), 2, 'no third credentials');
    assert.equal(t.leaseOf(), 'db/creds/app/l2');
    assert.equal(t.h.store.get('app', 'd')?.status?.lastGeneration, 2);
    assert.deepEqual(t.revokes(), ['db/creds/app/l1']);
    assert.deepEqual(t.recordNow()?.revoke, [], 'the record cleared');
    assert.ok(t.h.events.some((e) => e.reason === 'SecretRotated' && /taken over/.test(e.message)));
  });

  it('a recorded lease that Vault no longer knows is not adopted: new credentials, nothing left live', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    t.update(2);
    await t.stopAtStatus();
    t.revoked.add('db/creds/app/l2'); // revoked meanwhile
    await t.h.run('d');
    assert.equal(t.issued(), 3);
    assert.equal(t.leaseOf(), 'db/creds/app/l3');
    assert.ok(t.revokes().includes('db/creds/app/l1'));
    assert.deepEqual(t.recordNow()?.revoke, []);
  });

  it('a record copied from another owner or edited is ignored', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.stopAtStatus();
    const s = t.dest();
    assert.ok(s);
    const forged = encodeRecord(KEY, 'uid-someone-else', {
      lease: { id: 'db/creds/app/l1', duration: 600, renewable: true, issued: T0, generation: 1, mac: 'x' },
      replaces: '',
      revoke: [{ id: 'other/creds/victim/v1', expires: 2 * T0 }],
    });
    await t.h.kube.replace(Secrets, {
      ...s,
      metadata: { ...s.metadata, annotations: { [ANNOTATION_LEASES]: forged ?? '' } },
    });
    await t.h.run('d');
    assert.equal(t.issued(), 2, 'not adopted: new credentials');
    assert.ok(!t.revokes().includes('other/creds/victim/v1'), 'a forged pending revocation is not acted on');
  });

  it('stopped before the replaced lease was revoked: the restarted operator revokes it and clears the record', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    const answer = t.h.vault.answer;
    t.h.vault.answer = (c) => {
      if (c.path === 'sys/leases/revoke') throw new Error('connection reset');
      return answer(c);
    };
    t.update(2);
    const action = await t.h.run('d');
    assert.ok('requeueAfterMs' in action && action.requeueAfterMs <= 30_000, 'tried again soon');
    assert.equal(t.h.events.at(-1)?.reason, 'SecretLeaseRevoke');
    assert.deepEqual(
      t.recordNow()?.revoke.map((p) => p.id),
      ['db/creds/app/l1'],
    );
    t.h.vault.answer = answer;
    t.h.restart();
    await t.h.run('d');
    assert.equal(t.issued(), 2);
    assert.equal(t.revoked.has('db/creds/app/l1'), true);
    assert.deepEqual(t.recordNow()?.revoke, []);
    const writes = t.secretWrites();
    await t.h.run('d');
    assert.equal(t.secretWrites(), writes, 'settled: nothing more to write');
  });

  it('a token that may not revoke (403): a Warning, and the lease is left to its TTL, not retried', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    const answer = t.h.vault.answer;
    t.h.vault.answer = (c) => {
      if (c.path === 'sys/leases/revoke')
        throw new VaultError({ method: 'PUT', path: c.path, status: 403, errors: ['permission denied'] });
      return answer(c);
    };
    t.update(2);
    const action = await t.h.run('d');
    assert.ok('requeueAfterMs' in action && action.requeueAfterMs > 30_000, 'no quick retry');
    assert.match(t.h.events.at(-1)?.message ?? '', /left to expire at its TTL/);
    assert.deepEqual(t.recordNow()?.revoke, []);
    await t.h.run('d');
    assert.equal(t.revokes().length, 1, 'asked once');
  });

  it('an already revoked lease in the record is settled without error (Vault: invalid lease)', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    t.update(2);
    await t.stopAtStatus();
    const seen = t.h.events.length;
    const answer = t.h.vault.answer;
    t.h.vault.answer = (c) => {
      if (c.path === 'sys/leases/revoke')
        throw new VaultError({ method: 'PUT', path: c.path, status: 400, errors: ['invalid lease'] });
      return answer(c);
    };
    await t.h.run('d');
    assert.deepEqual(t.recordNow()?.revoke, []);
    assert.deepEqual(
      t.h.events.slice(seen).filter((e) => e.type === 'Warning'),
      [],
    );
  });

  it('deleted before the restarted operator adopted the lease: both leases are revoked', async () => {
    const t = setup();
    t.h.apply(vds(1));
    await t.h.run('d');
    t.update(2);
    await t.stopAtStatus();
    t.h.markDeleted('d');
    await t.h.run('d');
    assert.deepEqual(new Set(t.revokes()), new Set(['db/creds/app/l1', 'db/creds/app/l2']));
    assert.equal(await t.h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), undefined);
  });

  it('revoke: false keeps replaced leases out of the record', async () => {
    const t = setup();
    t.h.apply(vds(1, { revoke: false }));
    await t.h.run('d');
    t.update(2, { revoke: false });
    await t.h.run('d');
    assert.deepEqual(t.revokes(), []);
    assert.deepEqual(t.recordNow()?.revoke, []);
    assert.equal(t.secretWrites(), 2, 'no second write');
  });
});
