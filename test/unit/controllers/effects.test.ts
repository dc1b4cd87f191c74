// The effect paths of the secret kinds against the fake-backed harness: what each reconcile writes to
// Kubernetes and asks of Vault, which Events it records, and what it returns or throws.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  API_VERSION,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
} from '../../../src/api/resources.ts';
import type { VaultDynamicSecret } from '../../../src/api/v1beta1/vaultdynamicsecret.ts';
import type { VaultPKISecret } from '../../../src/api/v1beta1/vaultpkisecret.ts';
import type { VaultStaticSecret } from '../../../src/api/v1beta1/vaultstaticsecret.ts';
import { DESTINATION_POLL_MS, secretKindErrorPolicy } from '../../../src/controllers/outcome.ts';
import { collectSecretExpiry } from '../../../src/controllers/secret-expiry.ts';
import { vaultDynamicSecretReconciler } from '../../../src/controllers/vaultdynamicsecret/reconcile.ts';
import { vaultPKISecretReconciler } from '../../../src/controllers/vaultpkisecret/reconcile.ts';
import { vaultStaticSecretReconciler } from '../../../src/controllers/vaultstaticsecret/reconcile.ts';
import { CODES, FerryError, isFerryError, TerminalError } from '../../../src/errors.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import type { ResourceType } from '../../../src/k8s/resources.ts';
import { Secrets } from '../../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../../src/k8s/types.ts';
import { secretExpiryMetric } from '../../../src/metrics/controller.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import {
  type Action,
  awaitChange,
  type ReconcileContext,
  type Reconciler,
} from '../../../src/runtime/controller.ts';
import { VaultError } from '../../../src/vault/errors.ts';
import { type FakeKube, type Harness, harness, type RecordedEvent, type ScriptedVault } from './harness.ts';

const CERT = '-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----';
const meta = (name: string) => ({ name, namespace: 'app', uid: `uid-${name}`, generation: 1 });
const secretOf = async (h: { kube: FakeKube }, name: string) => h.kube.peek<Secret>(Secrets, name, 'app');
const decoded = (s: Secret | undefined): Record<string, string> =>
  Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
const reasons = (events: { type: string; reason: string }[]) => events.map((e) => `${e.type}:${e.reason}`);
/** The ferry_secret_expiry_timestamp_seconds series a scrape would serve for these stores. */
async function expirySeries(stores: {
  dynamic?: { list(): VaultDynamicSecret[] };
  pki?: { list(): VaultPKISecret[] };
}): Promise<string[]> {
  const registry = new MetricsRegistry();
  const gauge = secretExpiryMetric(registry);
  const none = { list: () => [] };
  gauge.onCollect(() => collectSecretExpiry(gauge, stores.dynamic ?? none, stores.pki ?? none));
  return (await registry.metrics()).match(/^ferry_secret_expiry_timestamp_seconds\{.*$/gm) ?? [];
}
/** A missing create: false destination: a Warning, the errorPolicy polls, and Vault is asked only
 * `vaultCalls` (nothing is issued that could not be written). */
async function pollsForMissingDestination(
  h: { run(name: string): Promise<Action>; vault: ScriptedVault; events: RecordedEvent[] },
  name: string,
  vaultCalls: string[] = [],
) {
  const err = await h.run(name).then(
    () => assert.fail('the reconcile must fail'),
    (e: unknown) => e,
  );
  assert.ok(isFerryError(err) && err.code === CODES.DESTINATION_MISSING);
  assert.deepEqual(h.vault.paths(), vaultCalls);
  assert.deepEqual(reasons(h.events), ['Warning:InexistentDestination']);
  const action = secretKindErrorPolicy(() => 0.5)(err, {} as ReconcileContext);
  assert.ok(action && 'requeueAfterMs' in action && action.requeueAfterMs <= DESTINATION_POLL_MS);
}

describe('VaultStaticSecret effects', () => {
  const vss = (spec: Partial<NonNullable<VaultStaticSecret['spec']>> = {}): VaultStaticSecret => ({
    apiVersion: API_VERSION,
    kind: 'VaultStaticSecret',
    metadata: meta('s'),
    spec: {
      vaultAuthRef: 'default',
      mount: 'kv',
      path: 'app',
      type: 'kv-v2',
      destination: { name: 'out', create: true, overwrite: false },
      ...spec,
    } as NonNullable<VaultStaticSecret['spec']>,
  });
  const setup = () => {
    const h = harness<VaultStaticSecret>(VaultStaticSecrets, (h) =>
      vaultStaticSecretReconciler(h.ctx, h.store, h.newDestinations()),
    );
    let password = 'one';
    h.vault.answer = (c) =>
      c.path === 'kv/data/app' ? { data: { data: { password }, metadata: { version: 1 } } } : undefined;
    return { h, rotate: (p: string) => (password = p) };
  };

  it('creates the destination, then writes nothing while Vault is unchanged, then follows a rotation', async () => {
    const { h, rotate } = setup();
    h.apply(vss());
    const first = await h.run('s');
    // No refreshAfter: the default period, read at 1–1.05× (never early: KV data does not expire).
    assert.ok('requeueAfterMs' in first && first.requeueAfterMs >= 60_000 && first.requeueAfterMs < 63_000);
    assert.equal(decoded(await secretOf(h, 'out')).password, 'one');
    assert.deepEqual(reasons(h.events), ['Normal:SecretSynced']);
    assert.ok(h.store.get('app', 's')?.status?.secretMAC);

    await h.run('s');
    assert.equal(h.kube.count('replace'), 0, 'no write while nothing changed');
    assert.equal(h.events.length, 1);

    rotate('two');
    await h.run('s');
    assert.equal(decoded(await secretOf(h, 'out')).password, 'two');
    assert.deepEqual(reasons(h.events), ['Normal:SecretSynced', 'Normal:SecretRotated']);
  });

  it('reports a Vault failure in status and an Event, and leaves the destination alone', async () => {
    const { h } = setup();
    h.vault.answer = () => {
      throw new VaultError({ method: 'GET', path: 'kv/data/app', status: 403, message: 'permission denied' });
    };
    h.apply(vss());
    await assert.rejects(h.run('s'));
    assert.deepEqual(reasons(h.events), ['Warning:VaultClientError']);
    assert.equal(await secretOf(h, 'out'), undefined);
    const synced = h.store.get('app', 's')?.status?.conditions?.find((c) => c.type === 'SecretSynced');
    assert.equal(synced?.status, 'False');
  });

  it('a VaultAuth deleted first: quiet while the namespace is being deleted, an error with a Warning otherwise', async () => {
    const { h } = setup();
    h.apply(vss());
    await h.run('s');
    h.failAccess(new FerryError(CODES.INVALID_REF, 'VaultAuth app/default not found'));
    const thrown = async () =>
      h.run('s').then(
        () => assert.fail('no error'),
        (e: unknown) => e,
      );
    const live = await thrown();
    assert.ok(!(live instanceof TerminalError), 'retried');
    assert.deepEqual(reasons(h.events), ['Normal:SecretSynced', 'Warning:VaultClientConfigError']);
    h.terminateNamespace();
    for (let i = 0; i < 2; i++) {
      // The first learns it from the refused Event, the next one knows.
      const quiet = await thrown();
      assert.ok(quiet instanceof TerminalError && quiet.expected, 'not retried, not an error');
    }
    assert.equal(h.events.length, 2, 'no Warning Event');
  });

  it('instantUpdates without a change stream: a condition, and one Warning, never silence', async () => {
    const { h } = setup();
    h.apply(vss({ syncConfig: { instantUpdates: true } }));
    await h.run('s');
    await h.run('s');
    const instant = () =>
      h.store.get('app', 's')?.status?.conditions?.find((c) => c.type === 'InstantUpdates');
    assert.equal(instant()?.status, 'False');
    assert.equal(instant()?.reason, 'InstantUpdatesUnavailable');
    assert.deepEqual(reasons(h.events), ['Warning:InstantUpdatesUnavailable', 'Normal:SecretSynced']);

    h.ctx.options.auditStream = { host: '127.0.0.1', port: 1, allowedPeers: [] };
    await h.run('s');
    assert.equal(instant()?.status, 'True');
    assert.equal(instant()?.reason, 'AuditStream');
    assert.equal(h.events.length, 2);
  });

  it('instantUpdates turned off: the InstantUpdates condition goes', async () => {
    const { h } = setup();
    const on = h.apply(vss({ syncConfig: { instantUpdates: true } }));
    await h.run('s');
    const types = () => h.store.get('app', 's')?.status?.conditions?.map((c) => c.type);
    assert.ok(types()?.includes('InstantUpdates'));
    const spec = on.spec as NonNullable<VaultStaticSecret['spec']>;
    h.apply({
      ...on,
      metadata: { ...on.metadata, generation: 2 },
      spec: { ...spec, syncConfig: { instantUpdates: false } },
    });
    await h.run('s');
    assert.deepEqual(types(), ['SecretSynced', 'Healthy', 'Ready']);
    // Also when the sync fails: the condition describes the spec, not the outcome.
    h.apply({ ...on, metadata: { ...on.metadata, generation: 3 } });
    await h.run('s');
    assert.ok(types()?.includes('InstantUpdates'));
    h.vault.answer = () => {
      throw new VaultError({ method: 'GET', path: 'kv/data/app', status: 500, message: 'down' });
    };
    h.apply({ ...on, metadata: { ...on.metadata, generation: 4 }, spec: { ...spec, syncConfig: {} } });
    await assert.rejects(h.run('s'));
    assert.deepEqual(types(), ['SecretSynced', 'Healthy', 'Ready']);
  });

  it('polls for a missing create: false destination instead of backing off', async () => {
    const { h } = setup();
    h.apply(vss({ destination: { name: 'absent', create: false, overwrite: false } }));
    await pollsForMissingDestination(h, 's', ['kv/data/app']);
  });

  describe('quiet refreshes (issue 12): no API call while Vault and the destination are unchanged', () => {
    const OUT = 'secrets/app/out';
    /** A reconciler whose destination writer can be replaced, as an operator restart replaces it. */
    const restartable = () => {
      let reconcile: Reconciler = async () => awaitChange();
      const h = harness<VaultStaticSecret>(VaultStaticSecrets, () => (rc) => reconcile(rc));
      const restart = () => {
        reconcile = vaultStaticSecretReconciler(h.ctx, h.store, h.newDestinations());
      };
      restart();
      let password = 'one';
      h.vault.answer = (c) =>
        c.path === 'kv/data/app' ? { data: { data: { password }, metadata: { version: 1 } } } : undefined;
      return { h, restart, rotate: (p: string) => (password = p) };
    };
    const tamper = async (h: { kube: FakeKube }, data: Record<string, string>) => {
      const cur = await secretOf(h, 'out');
      assert.ok(cur);
      await h.kube.replace(Secrets, { ...cur, data });
    };
    const destinationWrites = (kube: FakeKube) =>
      kube.writes.filter((w) => w.id === OUT && w.verb !== 'status').length;

    it('reads nothing on an unchanged refresh, and still heals an edit or a deletion', async () => {
      const { h, rotate } = restartable();
      h.apply(vss());
      await h.run('s');
      assert.equal(h.kube.reads.filter((r) => r === OUT).length, 0, 'the first sync creates without a read');
      const reads = () => h.kube.reads.filter((r) => r === OUT).length;

      for (let i = 0; i < 3; i++) await h.run('s');
      assert.equal(reads(), 0, 'unchanged refreshes read nothing');
      assert.equal(destinationWrites(h.kube), 1, 'and write nothing');

      // Someone edits the Secret: the watch shows a new resourceVersion, so the refresh reads and heals.
      await tamper(h, { password: Buffer.from('edited').toString('base64') });
      await h.run('s');
      assert.equal(decoded(await secretOf(h, 'out')).password, 'one');
      assert.equal(reads(), 1);
      assert.equal(h.events.at(-1)?.reason, 'SecretDataDrift');
      await h.run('s');
      assert.equal(reads(), 1, 'quiet again after the heal');

      // Someone deletes it: recreated.
      await h.kube.delete(Secrets, 'out', 'app');
      await h.run('s');
      assert.equal(decoded(await secretOf(h, 'out')).password, 'one');

      // A change in Vault is written.
      rotate('two');
      await h.run('s');
      assert.equal(decoded(await secretOf(h, 'out')).password, 'two');
      assert.equal(h.events.at(-1)?.reason, 'SecretRotated');

      // A change of the destination's labels is written too, though the data is the same.
      h.apply(vss({ destination: { name: 'out', create: true, overwrite: false, labels: { team: 'a' } } }));
      await h.run('s');
      assert.equal((await secretOf(h, 'out'))?.metadata.labels?.team, 'a');
    });

    it('after a restart, reads once and writes nothing, then reads nothing', async () => {
      const { h, restart } = restartable();
      h.apply(vss());
      await h.run('s');
      const writes = destinationWrites(h.kube);
      const reads = () => h.kube.reads.filter((r) => r === OUT).length;
      restart();
      await h.run('s');
      assert.equal(reads(), 1, 'one read after the restart (none for the first sync)');
      await h.run('s');
      await h.run('s');
      assert.equal(reads(), 1, 'then none');
      assert.equal(destinationWrites(h.kube), writes, 'no destination write across the restart');
      assert.deepEqual(reasons(h.events), ['Normal:SecretSynced']);
    });

    it('a create: false destination (not in the watch of managed Secrets) is read on every refresh', async () => {
      const { h } = restartable();
      h.kube.put<Secret>(Secrets, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'out', namespace: 'app', uid: 'theirs' },
        type: 'Opaque',
        data: {},
      });
      h.apply(vss({ destination: { name: 'out', create: false, overwrite: false } }));
      await h.run('s');
      await h.run('s');
      assert.equal(h.kube.reads.filter((r) => r === OUT).length, 2);
      assert.equal(destinationWrites(h.kube), 1);
    });
  });

  describe('destination ownership', () => {
    const foreign = (h: { kube: FakeKube }, annotations: Record<string, string> = {}) =>
      h.kube.put<Secret>(Secrets, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'theirs', namespace: 'app', uid: 'theirs-uid', annotations },
        type: 'Opaque',
        data: { token: Buffer.from('keep-me').toString('base64') },
      });
    const strictly = () => {
      const { h } = setup();
      (h.ctx.options as { strictDestinationOwnership?: boolean }).strictDestinationOwnership = true;
      return h;
    };
    const refusedAs = async (h: ReturnType<typeof strictly>, why: RegExp) => {
      const err = await h.run('s').then(
        () => assert.fail('the reconcile must fail'),
        (e: unknown) => e,
      );
      assert.ok(isFerryError(err) && err.code === CODES.DESTINATION_NOT_OPTED_IN, String(err));
      assert.deepEqual(decoded(await secretOf(h, 'theirs')), { token: 'keep-me' }, 'the Secret is untouched');
      assert.deepEqual(reasons(h.events), ['Warning:DestinationNotOptedIn']);
      const synced = h.store.get('app', 's')?.status?.conditions?.find((c) => c.type === 'SecretSynced');
      assert.equal(synced?.status, 'False');
      assert.match(synced?.message ?? '', why);
      assert.match(synced?.message ?? '', /annotation ferry\.secrets\.hashicorp\.com\/allow-sync: "true"/);
    };

    it("by default (VSO's rules) create: false rewrites any Secret and overwrite takes one over", async () => {
      for (const destination of [
        { name: 'theirs', create: false, overwrite: false },
        { name: 'theirs', create: true, overwrite: true },
      ]) {
        const { h } = setup();
        foreign(h);
        h.apply(vss({ destination }));
        await h.run('s');
        assert.equal(decoded(await secretOf(h, 'theirs')).password, 'one');
      }
    });

    it('strict: create: false writes only a Secret that opted in', async () => {
      const h = strictly();
      foreign(h);
      h.apply(vss({ destination: { name: 'theirs', create: false, overwrite: false } }));
      await refusedAs(h, /destination\.create is false/);
      foreign(h, { 'ferry.secrets.hashicorp.com/allow-sync': 'true' });
      await h.run('s');
      assert.equal(decoded(await secretOf(h, 'theirs')).password, 'one');
    });

    it('strict: overwrite: true never takes over a Secret that did not opt in', async () => {
      const h = strictly();
      foreign(h);
      h.apply(vss({ destination: { name: 'theirs', create: true, overwrite: true } }));
      await refusedAs(h, /destination\.overwrite would take it over/);
      foreign(h, { 'ferry.secrets.hashicorp.com/allow-sync': 'true' });
      await h.run('s');
      const taken = await secretOf(h, 'theirs');
      assert.equal(decoded(taken).password, 'one');
      assert.equal(taken?.metadata.ownerReferences?.[0]?.uid, 'uid-s');
    });
  });
});

describe('VaultDynamicSecret effects', () => {
  const vds = (spec: Partial<NonNullable<VaultDynamicSecret['spec']>> = {}): VaultDynamicSecret => ({
    apiVersion: API_VERSION,
    kind: 'VaultDynamicSecret',
    metadata: meta('d'),
    spec: {
      vaultAuthRef: 'default',
      mount: 'db',
      path: 'creds/app',
      destination: { name: 'creds', create: true, overwrite: false },
      ...spec,
    } as NonNullable<VaultDynamicSecret['spec']>,
  });
  const setup = () => {
    const h = harness<VaultDynamicSecret>(VaultDynamicSecrets, (h) =>
      vaultDynamicSecretReconciler(h.ctx, h.store, h.newDestinations()),
    );
    let n = 0;
    h.vault.answer = (c) => {
      if (c.path === 'db/creds/app') {
        n += 1;
        return {
          lease_id: `db/creds/app/l${n}`,
          lease_duration: 600,
          renewable: true,
          data: { username: `u${n}` },
        };
      }
      if (c.path === 'sys/leases/renew')
        return { lease_id: String(c.body?.lease_id), lease_duration: 600, renewable: true };
      return {};
    };
    return h;
  };

  it('issues credentials once, renews the lease at its horizon, and revokes it on deletion', async () => {
    const h = setup();
    h.apply(vds());
    const first = await h.run('d');
    assert.ok('requeueAfterMs' in first);
    assert.deepEqual(h.store.get('app', 'd')?.metadata.finalizers, [
      'vaultdynamicsecret.secrets.hashicorp.com/finalizer',
    ]);
    assert.equal(decoded(await secretOf(h, 'creds')).username, 'u1');
    assert.equal(h.store.get('app', 'd')?.status?.secretLease.id, 'db/creds/app/l1');
    assert.deepEqual(reasons(h.events), ['Normal:SecretSynced']);
    const expiry = () => expirySeries({ dynamic: h.store });
    const issuedAt = Math.floor(h.clock.now() / 1000);
    assert.deepEqual(await expiry(), [
      `ferry_secret_expiry_timestamp_seconds{kind="VaultDynamicSecret",namespace="app",name="d"} ${issuedAt + 600}`,
    ]);

    // Before the horizon nothing is asked of Vault.
    await h.run('d');
    assert.deepEqual(h.vault.paths(), ['db/creds/app']);

    h.clock.advance(first.requeueAfterMs);
    await h.run('d');
    assert.deepEqual(h.vault.paths(), ['db/creds/app', 'sys/leases/renew']);
    assert.equal(decoded(await secretOf(h, 'creds')).username, 'u1', 'a renewal keeps the credentials');
    assert.deepEqual(
      await expiry(),
      [
        `ferry_secret_expiry_timestamp_seconds{kind="VaultDynamicSecret",namespace="app",name="d"} ${Math.floor(h.clock.now() / 1000) + 600}`,
      ],
      'a renewal moves the expiry',
    );

    h.markDeleted('d');
    await h.run('d');
    assert.equal(h.vault.paths().at(-1), 'sys/leases/revoke');
    assert.equal(await h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), undefined, 'finalizer released');
    assert.deepEqual(await expiry(), [], 'the series goes with the object');
  });

  it('instantUpdates (reserved on this kind): a condition, and one Warning, never silence', async () => {
    const h = setup();
    h.apply(vds({ syncConfig: { instantUpdates: true } }));
    const first = await h.run('d');
    await h.run('d');
    assert.ok('requeueAfterMs' in first);
    h.clock.advance(first.requeueAfterMs);
    await h.run('d');
    const instant = h.store.get('app', 'd')?.status?.conditions?.find((c) => c.type === 'InstantUpdates');
    assert.equal(instant?.status, 'False');
    assert.equal(instant?.reason, 'InstantUpdatesUnavailable');
    assert.deepEqual(reasons(h.events), ['Warning:InstantUpdatesUnavailable', 'Normal:SecretSynced']);
  });

  it('instantUpdates turned off: the InstantUpdates condition goes', async () => {
    const h = setup();
    const on = h.apply(vds({ syncConfig: { instantUpdates: true } }));
    await h.run('d');
    const types = () => h.store.get('app', 'd')?.status?.conditions?.map((c) => c.type) ?? [];
    assert.ok(types().includes('InstantUpdates'));
    const spec = on.spec as NonNullable<VaultDynamicSecret['spec']>;
    h.apply({
      ...on,
      metadata: { ...on.metadata, generation: 2 },
      spec: { ...spec, syncConfig: { instantUpdates: false } },
    });
    await h.run('d');
    assert.ok(!types().includes('InstantUpdates'), types().join());
  });

  it('keeps a deleted object while revocation fails, then gives up with a Warning', async () => {
    const h = setup();
    h.apply(vds());
    await h.run('d');
    h.vault.answer = () => {
      throw new VaultError({ method: 'PUT', path: 'sys/leases/revoke', status: 500, message: 'down' });
    };
    h.markDeleted('d');
    await assert.rejects(h.run('d'));
    assert.ok(await h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), 'still held');
    h.clock.advance(5 * 60_000);
    await h.run('d');
    assert.equal(await h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), undefined);
    assert.match(h.events.at(-1)?.message ?? '', /gave up revoking lease/);
  });

  it('releases a deleted object at once, quietly, when its VaultAuth is gone (its token took the lease along)', async () => {
    const h = setup();
    h.apply(vds());
    await h.run('d');
    const before = h.events.length;
    h.failAccess(new FerryError(CODES.INVALID_REF, 'VaultAuth app/default not found'));
    h.markDeleted('d');
    await h.run('d');
    assert.equal(await h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), undefined);
    assert.equal(h.events.length, before, 'no Warning Event');
  });

  it('renews without reading the destination, and still replaces drifted credentials', async () => {
    const h = setup();
    h.apply(vds());
    const first = await h.run('d');
    const reads = () => h.kube.reads.filter((r) => r === 'secrets/app/creds').length;
    assert.equal(reads(), 1);
    assert.ok('requeueAfterMs' in first);
    await h.run('d');
    h.clock.advance(first.requeueAfterMs);
    await h.run('d');
    assert.deepEqual(h.vault.paths(), ['db/creds/app', 'sys/leases/renew']);
    assert.equal(reads(), 1, 'no read before the horizon nor for the renewal');

    const cur = await secretOf(h, 'creds');
    assert.ok(cur);
    await h.kube.replace(Secrets, { ...cur, data: { username: Buffer.from('edited').toString('base64') } });
    await h.run('d');
    assert.equal(reads(), 2);
    assert.equal(decoded(await secretOf(h, 'creds')).username, 'u2', 'drift brings new credentials');
    assert.ok(h.vault.paths().includes('sys/leases/revoke'), 'and the replaced lease is revoked');
  });

  it('revokes the credentials just issued when shaping them fails, and writes nothing', async () => {
    const h = setup();
    h.apply(
      vds({
        destination: {
          name: 'creds',
          create: true,
          overwrite: false,
          transformation: { templates: { broken: { text: '{{ fail "no" }}' } } },
        },
      }),
    );
    await assert.rejects(h.run('d'));
    assert.deepEqual(h.vault.paths(), ['db/creds/app', 'sys/leases/revoke']);
    assert.equal(h.vault.calls.at(-1)?.body?.lease_id, 'db/creds/app/l1');
    assert.equal(await secretOf(h, 'creds'), undefined);
    assert.equal(h.store.get('app', 'd')?.status?.secretLease?.id ?? '', '', 'no lease recorded');
  });

  it('forgets the lease period of a deleted object, also with revoke: false (issue 14)', async () => {
    for (const revoke of [false, true]) {
      const leaseStarts = new Map<string, number>();
      const h = harness<VaultDynamicSecret>(VaultDynamicSecrets, (h) =>
        vaultDynamicSecretReconciler(h.ctx, h.store, h.newDestinations(), { leaseStarts }),
      );
      h.vault.answer = (c) =>
        c.path === 'db/creds/app'
          ? { lease_id: 'db/creds/app/l1', lease_duration: 600, renewable: true, data: { username: 'u' } }
          : {};
      h.apply(vds({ revoke }));
      await h.run('d');
      assert.equal(leaseStarts.size, 1);
      h.markDeleted('d');
      await h.run('d');
      assert.equal(await h.kube.getIfExists(VaultDynamicSecrets, 'd', 'app'), undefined);
      assert.equal(h.vault.paths().includes('sys/leases/revoke'), revoke);
      assert.equal(leaseStarts.size, 0, `revoke: ${revoke}`);
    }
  });

  it('polls for a missing create: false destination without asking Vault for credentials', async () => {
    const h = setup();
    h.apply(vds({ destination: { name: 'absent', create: false, overwrite: false } }));
    await pollsForMissingDestination(h, 'd');
  });
});

describe('VaultPKISecret effects', () => {
  const vps = (spec: Partial<NonNullable<VaultPKISecret['spec']>> = {}): VaultPKISecret => ({
    apiVersion: API_VERSION,
    kind: 'VaultPKISecret',
    metadata: meta('p'),
    spec: {
      vaultAuthRef: 'default',
      mount: 'pki',
      role: 'web',
      commonName: 'web.app',
      revoke: true,
      destination: { name: 'tls', create: true, overwrite: false, type: 'kubernetes.io/tls' },
      ...spec,
    } as NonNullable<VaultPKISecret['spec']>,
  });
  const setup = () => {
    const h = harness<VaultPKISecret>(VaultPKISecrets, (h) =>
      vaultPKISecretReconciler(h.ctx, h.store, h.newDestinations()),
    );
    let serial = 0;
    h.vault.answer = (c) => {
      if (c.path === 'pki/issue/web') {
        serial += 1;
        const expiration = Math.floor(h.clock.now() / 1000) + 3600;
        return {
          data: {
            serial_number: `0${serial}`,
            expiration,
            certificate: CERT,
            private_key: 'KEY',
            issuing_ca: CERT,
          },
        };
      }
      return {};
    };
    return h;
  };

  it('issues a certificate into a TLS Secret, re-issues in the renewal window, and revokes on deletion', async () => {
    const h = setup();
    h.apply(vps());
    const first = await h.run('p');
    assert.ok('requeueAfterMs' in first);
    const tls = decoded(await secretOf(h, 'tls'));
    assert.equal(tls['tls.key'], 'KEY');
    assert.equal(h.store.get('app', 'p')?.status?.serialNumber, '01');
    assert.deepEqual(reasons(h.events), ['Normal:SecretSynced']);
    const expiry = () => expirySeries({ pki: h.store });
    const expiryLine = () =>
      `ferry_secret_expiry_timestamp_seconds{kind="VaultPKISecret",namespace="app",name="p"} ${h.store.get('app', 'p')?.status?.expiration}`;
    assert.deepEqual(await expiry(), [expiryLine()]);
    assert.equal(h.store.get('app', 'p')?.status?.expiration, Math.floor(h.clock.now() / 1000) + 3600);

    // Follow the returned horizons (the last ones are short, near the end of the lifetime).
    let next: Action = first;
    for (let i = 0; i < 10 && h.store.get('app', 'p')?.status?.serialNumber === '01'; i++) {
      assert.ok('requeueAfterMs' in next);
      h.clock.advance(next.requeueAfterMs);
      next = await h.run('p');
    }
    assert.equal(h.store.get('app', 'p')?.status?.serialNumber, '02');
    assert.ok(h.clock.now() - Date.parse('2026-01-01T00:00:00Z') <= 3_600_000, 'before expiry');
    assert.deepEqual(await expiry(), [expiryLine()], "the new certificate's expiry");
    assert.deepEqual(
      h.vault.calls.filter((c) => c.path === 'pki/revoke').map((c) => c.body?.serial_number),
      ['01'],
    );

    h.markDeleted('p');
    await h.run('p');
    assert.deepEqual(
      h.vault.calls.filter((c) => c.path === 'pki/revoke').map((c) => c.body?.serial_number),
      ['01', '02'],
    );
    assert.equal(await h.kube.getIfExists(VaultPKISecrets, 'p', 'app'), undefined);
    assert.deepEqual(await expiry(), [], 'the series goes with the object');
  });

  it('releases a deleted object at once when its VaultAuth is gone', async () => {
    const h = setup();
    h.apply(vps());
    await h.run('p');
    h.failAccess(new FerryError(CODES.INVALID_REF, 'VaultAuth app/default not found'));
    h.markDeleted('p');
    await h.run('p');
    assert.equal(await h.kube.getIfExists(VaultPKISecrets, 'p', 'app'), undefined);
    assert.match(h.events.at(-1)?.message ?? '', /giving up cleanup/);
  });

  it('polls for a missing create: false destination without issuing', async () => {
    const h = setup();
    h.apply(vps({ destination: { name: 'absent', create: false, overwrite: false } }));
    await pollsForMissingDestination(h, 'p');
  });
});

describe('no secret value in status, Events or the thrown error (canary), for every secret kind', () => {
  const CANARY = 'canary-4f9d-value';
  // The template engine never quotes data in its errors, but whatever rejects the destination write
  // may: an admission webhook or a ValidatingAdmissionPolicy's messageExpression can quote the data.
  const leakyApiserver = (kube: FakeKube) => {
    kube.create = async <T extends KubeObject>(_rt: ResourceType, obj: T): Promise<T> => {
      const data = Object.values((obj as unknown as Secret).data ?? {}).map((v) =>
        Buffer.from(v, 'base64').toString('utf8'),
      );
      throw new K8sApiError(
        422,
        'Invalid',
        `admission webhook "check" denied the request: ${data.join(', ')}`,
      );
    };
  };
  const noCanary = async (
    h: { run(name: string): Promise<Action>; events: RecordedEvent[]; kube: FakeKube },
    name: string,
    status: () => unknown,
  ) => {
    leakyApiserver(h.kube);
    const err = await h.run(name).then(
      () => assert.fail('the reconcile must fail'),
      (e: unknown) => e,
    );
    const seen = JSON.stringify([String(err), (err as Error).cause ?? null, h.events, status()]);
    assert.ok(seen.includes('<redacted>'), seen);
    assert.ok(!seen.includes(CANARY), seen);
  };

  /** The case of one kind: its reconciler, the Vault answer that carries the canary, and its spec. */
  const canaryCase = <T extends KubeObject & { status?: unknown }>(
    kind: string,
    rt: ResourceType,
    reconciler: (h: Harness<T>) => Reconciler,
    answer: (h: Harness<T>) => ScriptedVault['answer'],
    spec: Record<string, unknown>,
  ) =>
    it(kind, async () => {
      const h = harness<T>(rt, reconciler);
      h.vault.answer = answer(h);
      const destination = { create: true, overwrite: false, ...(spec.destination as object) };
      h.apply({
        apiVersion: API_VERSION,
        kind,
        metadata: meta('x'),
        spec: { vaultAuthRef: 'default', ...spec, destination },
      } as unknown as T);
      await noCanary(h, 'x', () => h.store.get('app', 'x')?.status);
    });

  canaryCase<VaultStaticSecret>(
    'VaultStaticSecret',
    VaultStaticSecrets,
    (h) => vaultStaticSecretReconciler(h.ctx, h.store, h.newDestinations()),
    () => () => ({ data: { data: { password: CANARY }, metadata: { version: 1 } } }),
    { mount: 'kv', path: 'app', type: 'kv-v2', destination: { name: 'out' } },
  );
  canaryCase<VaultDynamicSecret>(
    'VaultDynamicSecret',
    VaultDynamicSecrets,
    (h) => vaultDynamicSecretReconciler(h.ctx, h.store, h.newDestinations()),
    () => (c) =>
      c.path === 'db/creds/app'
        ? { lease_id: 'db/creds/app/l1', lease_duration: 3600, renewable: true, data: { password: CANARY } }
        : {},
    { mount: 'db', path: 'creds/app', destination: { name: 'creds' } },
  );
  canaryCase<VaultPKISecret>(
    'VaultPKISecret',
    VaultPKISecrets,
    (h) => vaultPKISecretReconciler(h.ctx, h.store, h.newDestinations()),
    (h) => (c) =>
      c.path === 'pki/issue/web'
        ? {
            data: {
              serial_number: '01',
              expiration: Math.floor(h.clock.now() / 1000) + 3600,
              certificate: CERT,
              private_key: CANARY,
              issuing_ca: CERT,
            },
          }
        : {},
    { mount: 'pki', role: 'web', commonName: 'web.app', destination: { name: 'tls', type: 'Opaque' } },
  );
});
