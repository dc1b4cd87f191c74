// VaultStaticSecret end to end: the operator (running as its own ServiceAccount) logs in to the real
// Vault/OpenBao with the Kubernetes auth method and syncs KV secrets into real Secrets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Namespaces, ReplicaSets, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  admissionPolicy,
  apply,
  assertNoLeak,
  canary,
  condition,
  decodeData,
  deployment,
  ensureNamespace,
  eventsOf,
  eventually,
  kvSecret,
  type Manifest,
  restartedAt,
  synced,
  tamper,
  tenant,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { logLines, operatorLog, type StackEnv, uniqueName, useStack } from './harness.ts';

describe('VaultStaticSecret', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  const canaries: string[] = [];

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('vss');
    await tenant(env, kube, vault, ns);
  });
  after(async () => {
    // No canary value may reach the operator's log, Events or status of any object in the namespace.
    await assertNoLeak(env, kube, ns, VaultStaticSecrets, canaries);
    await kube.close();
  });

  it('syncs kv-v2 into an owned Secret with VSO labels, ownerReference, _raw and status', async () => {
    const password = canary('v2', canaries);
    await vault.kvPut('kvv2', `${ns}/db`, { username: 'app', password, port: 5432 });
    await apply(
      kube,
      kvSecret(ns, 'db', {
        destination: { name: 'db-creds', create: true, labels: { team: 'a' }, annotations: { note: 'x' } },
      }),
    );
    const secret = await eventually('destination Secret', () =>
      kube.getIfExists<Secret>(Secrets, 'db-creds', ns),
    );
    const data = decodeData(secret.data);
    assert.equal(data.username, 'app');
    assert.equal(data.password, password);
    assert.equal(data.port, '5432');
    const raw = JSON.parse(data._raw ?? '{}') as {
      data: Record<string, unknown>;
      metadata: { version: number };
    };
    assert.deepEqual(raw.data, { password, port: 5432, username: 'app' });
    assert.equal(raw.metadata.version, 1);
    assert.equal(secret.type, 'Opaque');
    assert.equal(secret.metadata.labels?.team, 'a');
    assert.equal(secret.metadata.labels?.['app.kubernetes.io/managed-by'], 'hashicorp-vso');
    assert.equal(secret.metadata.annotations?.note, 'x');
    const owner = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'db', ns);
    assert.deepEqual(secret.metadata.ownerReferences, [
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultStaticSecret',
        name: 'db',
        uid: owner.metadata.uid,
      },
    ]);
    assert.equal(secret.metadata.labels?.['secrets.hashicorp.com/vso-ownerRefUID'], owner.metadata.uid);
    const done = await eventually('status', async () => {
      const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'db', ns);
      return synced(o) ? o : undefined;
    });
    assert.match(done.status?.secretMAC ?? '', /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(done.status?.lastGeneration, done.metadata.generation);
    assert.match(done.status?.vaultClientMeta?.cacheKey ?? '', /^kubernetes-[0-9a-f]{22}$/);
  });

  it('syncs kv-v1 and pins a kv-v2 version', async () => {
    const v1 = canary('v1', canaries);
    await vault.kvPut('kvv1', `${ns}/legacy`, { token: v1 }, 1);
    await vault.kvPut('kvv2', `${ns}/pinned`, { value: 'one' });
    await vault.kvPut('kvv2', `${ns}/pinned`, { value: 'two' });
    await apply(
      kube,
      vss(ns, 'legacy', {
        mount: 'kvv1',
        type: 'kv-v1',
        path: `${ns}/legacy`,
        destination: { name: 'legacy', create: true },
      }),
    );
    await apply(
      kube,
      kvSecret(ns, 'pinned', {
        version: 1,
      }),
    );
    const legacy = await eventually('kv-v1 Secret', () => kube.getIfExists<Secret>(Secrets, 'legacy', ns));
    assert.equal(decodeData(legacy.data).token, v1);
    assert.deepEqual(JSON.parse(decodeData(legacy.data)._raw ?? ''), { token: v1 });
    const pinned = await eventually('pinned Secret', () => kube.getIfExists<Secret>(Secrets, 'pinned', ns));
    assert.equal(decodeData(pinned.data).value, 'one');
  });

  it('propagates rotation, restarts the Deployment (never on first sync), and heals drift', async () => {
    await apply(kube, deployment(ns, 'web'));
    const replicaSets = async (): Promise<KubeObject[]> =>
      (await kube.list<KubeObject>(ReplicaSets, { namespace: ns, labelSelector: 'app=web' })).items;
    await eventually('first ReplicaSet', async () => (await replicaSets()).length === 1);

    const first = canary('rot1', canaries);
    const second = canary('rot2', canaries);
    await vault.kvPut('kvv2', `${ns}/rotating`, { key: first });
    await apply(
      kube,
      kvSecret(ns, 'rotating', {
        refreshAfter: '2s',
        rolloutRestartTargets: [{ kind: 'Deployment', name: 'web' }],
      }),
    );
    await eventually(
      'initial sync',
      async () => decodeData((await kube.getIfExists<Secret>(Secrets, 'rotating', ns))?.data).key === first,
    );
    await eventually('status after first sync', async () =>
      synced(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'rotating', ns)),
    );
    // A few refresh periods: no restart and no write while nothing changes.
    const rv = (await kube.get<Secret>(Secrets, 'rotating', ns)).metadata.resourceVersion;
    const statusRv = (await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'rotating', ns)).metadata
      .resourceVersion;
    await new Promise((r) => setTimeout(r, 6_000));
    assert.equal(
      (await kube.get<Secret>(Secrets, 'rotating', ns)).metadata.resourceVersion,
      rv,
      'no Secret write without change',
    );
    assert.equal(
      (await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'rotating', ns)).metadata.resourceVersion,
      statusRv,
      'no status write without change',
    );
    assert.equal(await restartedAt(kube, Deployments, 'web', ns), undefined, 'no restart on first sync');

    await vault.kvPut('kvv2', `${ns}/rotating`, { key: second });
    await eventually(
      'rotated value',
      async () => decodeData((await kube.getIfExists<Secret>(Secrets, 'rotating', ns))?.data).key === second,
      20_000,
    );
    await eventually(
      'a new ReplicaSet from the rollout restart',
      async () => (await replicaSets()).length === 2,
      30_000,
    );

    // Someone edits the destination: the watch sees it and the operator restores it at once.
    await tamper(kube, ns, 'rotating', 'key');
    await eventually(
      'drift healed',
      async () => decodeData((await kube.get<Secret>(Secrets, 'rotating', ns)).data).key === second,
      10_000,
    );
    // Someone deletes it: recreated.
    await kube.delete(Secrets, 'rotating', ns);
    await eventually(
      'destination recreated',
      async () => decodeData((await kube.getIfExists<Secret>(Secrets, 'rotating', ns))?.data).key === second,
      10_000,
    );
    // After quiet refreshes (which read nothing: the watch shows the Secret as Ferry left it), an
    // edit is still healed.
    await new Promise((r) => setTimeout(r, 4_000));
    await tamper(kube, ns, 'rotating', 'key');
    await eventually(
      'drift healed after quiet refreshes',
      async () => decodeData((await kube.get<Secret>(Secrets, 'rotating', ns)).data).key === second,
      10_000,
    );
  });

  it('with create: false replaces only the data of an existing Secret and never writes when unchanged', async () => {
    const value = canary('existing', canaries);
    await vault.kvPut('kvv2', `${ns}/existing`, { value });
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'preexisting', namespace: ns, labels: { keep: 'me' } },
      type: 'Opaque',
      data: { old: Buffer.from('x').toString('base64') },
    } as Manifest);
    await apply(
      kube,
      kvSecret(ns, 'existing', {
        refreshAfter: '1s',
        destination: { name: 'preexisting', create: false },
      }),
    );
    const s = await eventually('data replaced', async () => {
      const x = await kube.get<Secret>(Secrets, 'preexisting', ns);
      return decodeData(x.data).value === value ? x : undefined;
    });
    assert.equal(s.metadata.labels?.keep, 'me');
    assert.equal(s.metadata.ownerReferences, undefined);
    assert.equal(decodeData(s.data).old, undefined);
    await new Promise((r) => setTimeout(r, 4_000));
    assert.equal(
      (await kube.get<Secret>(Secrets, 'preexisting', ns)).metadata.resourceVersion,
      s.metadata.resourceVersion,
    );
  });

  it('reports a missing VaultAuth and a missing destination in status and Warning Events', async () => {
    await apply(
      kube,
      vss(ns, 'no-auth', {
        vaultAuthRef: 'missing',
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/db`,
        destination: { name: 'no-auth', create: true },
      }),
    );
    await apply(
      kube,
      kvSecret(ns, 'no-dest', {
        path: `${ns}/db`,
        destination: { name: 'does-not-exist', create: false },
      }),
    );
    for (const [name, pattern, reason] of [
      ['no-auth', /VaultAuth .*\/missing not found/, 'VaultClientConfigError'],
      ['no-dest', /does not exist and create is false/, 'InexistentDestination'],
    ] as const) {
      const o = await eventually(`failure status of ${name}`, async () => {
        const x = await kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns);
        return condition(x, 'SecretSynced')?.status === 'False' ? x : undefined;
      });
      assert.match(condition(o, 'SecretSynced')?.message ?? '', pattern);
      await eventually(`Warning Event for ${name}`, async () =>
        (await eventsOf(kube, ns, name)).some((e) => e.type === 'Warning' && e.reason === reason),
      );
    }
    assert.equal(await kube.getIfExists(Secrets, 'no-auth', ns), undefined);
  });

  it('refuses a VaultAuth in another namespace unless allowedNamespaces lets the consumer in', async () => {
    const other = uniqueName('vss-shared');
    await tenant(env, kube, vault, other);
    await vault.kvPut('kvv2', `${ns}/db2`, { a: 'b' });
    // The role of `other` binds its own ServiceAccount; the VaultAuth refers to `app` in the consumer's namespace.
    await vault.kubernetesRole(`t-${other}`, { serviceAccount: 'app', namespace: ns, policies: [`t-${ns}`] });
    await apply(
      kube,
      vss(ns, 'cross', {
        vaultAuthRef: `${other}/auth`,
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/db2`,
        destination: { name: 'cross', create: true },
      }),
    );
    await eventually('denied', async () => {
      const x = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'cross', ns);
      return /does not allow namespace/.test(condition(x, 'SecretSynced')?.message ?? '');
    });
    await kube.patch(VaultStaticSecrets, 'cross', ns, {}, 'merge'); // no-op: nothing changes
    const auth = await kube.get<KubeObject & { spec: Record<string, unknown> }>(
      {
        group: 'secrets.hashicorp.com',
        version: 'v1beta1',
        kind: 'VaultAuth',
        plural: 'vaultauths',
        namespaced: true,
      },
      'auth',
      other,
    );
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultAuth',
      metadata: { name: 'auth', namespace: other },
      spec: { ...auth.spec, allowedNamespaces: [ns] },
    } as Manifest);
    const secret = await eventually(
      'allowed after allowedNamespaces',
      () => kube.getIfExists<Secret>(Secrets, 'cross', ns),
      30_000,
    );
    assert.equal(decodeData(secret.data).a, 'b');
  });

  it('deletes the old Secret when the destination is renamed', async () => {
    await vault.kvPut('kvv2', `${ns}/moving`, { a: 'b' });
    await apply(kube, kvSecret(ns, 'moving', { destination: { name: 'move-a', create: true } }));
    await eventually('first destination', () => kube.getIfExists<Secret>(Secrets, 'move-a', ns), 30_000);
    await apply(kube, kvSecret(ns, 'moving', { destination: { name: 'move-b', create: true } }));
    await eventually('renamed destination', () => kube.getIfExists<Secret>(Secrets, 'move-b', ns), 30_000);
    await eventually(
      'old destination pruned',
      async () => (await kube.getIfExists(Secrets, 'move-a', ns)) === undefined,
      30_000,
    );
  });

  /** A tenant namespace whose VaultStaticSecret `held` is synced, for a test that deletes it. */
  async function heldTenant(prefix: string): Promise<string> {
    const doomed = uniqueName(prefix);
    await tenant(env, kube, vault, doomed);
    await vault.kvPut('kvv2', `${doomed}/db`, { a: 'b' });
    await apply(kube, kvSecret(doomed, 'held', { path: `${doomed}/db` }));
    await eventually('synced', () => kube.getIfExists<Secret>(Secrets, 'held', doomed), 30_000);
    return doomed;
  }
  const namespaceGone = (doomed: string) =>
    eventually('the namespace gone', async () => !(await kube.getIfExists(Namespaces, doomed)), 60_000, 500);

  /** Refuses the deletion of Ferry's `resources` (and what `more` matches) in namespace `doomed`, so
   * the namespace controller leaves them while the namespace terminates; returns its removal. */
  async function holdDeletion(
    doomed: string,
    resources: string[],
    more: Record<string, unknown>[] = [],
  ): Promise<() => Promise<void>> {
    const remove = await admissionPolicy(kube, `ferry-e2e-hold-${doomed}`, doomed, {
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: ['secrets.hashicorp.com'],
            apiVersions: ['*'],
            operations: ['CREATE', 'DELETE'],
            resources,
          },
          ...more,
        ],
      },
      matchConditions: [
        { name: 'held', expression: "request.operation == 'DELETE' || object.metadata.name == 'probe'" },
      ],
      validations: [{ expression: 'false', message: 'held by the test' }],
    });
    await eventually('the policy in effect', () =>
      kube.create(VaultStaticSecrets, kvSecret(doomed, 'probe'), { dryRun: true }).then(
        () => false,
        (e: unknown) => /held by the test/.test(String(e)),
      ),
    ).catch(async (err: unknown) => {
      await remove();
      throw err;
    });
    return remove;
  }

  it('in a namespace being deleted: no retry, no error logged, no Event tried again, and the namespace goes', async () => {
    const doomed = await heldTenant('vss-doomed');
    // The namespace controller may not delete the VaultStaticSecret, nor what it logs in with, yet:
    // it stays, not deleted, while its destination goes, and the operator writes that again into the
    // terminating namespace.
    const removePolicy = await holdDeletion(
      doomed,
      ['vaultstaticsecrets', 'vaultauths'],
      [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['serviceaccounts'] }],
    );
    try {
      const since = operatorLog(env).length;
      await kube.delete(Namespaces, doomed);
      const o = await eventually('the refusal in status', async () => {
        const x = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'held', doomed);
        return /being terminated/.test(condition(x, 'SecretSynced')?.message ?? '') ? x : undefined;
      });
      assert.equal(o.metadata.deletionTimestamp, undefined, 'the VaultStaticSecret itself is not deleted');
      await new Promise((r) => setTimeout(r, 2_000)); // time for retries, if there were any
      if (env.operator) {
        const lines = operatorLog(env)
          .slice(since)
          .split('\n')
          .filter((l) => l.startsWith('{') && l.includes(doomed))
          .map((l) => JSON.parse(l) as { level: number; msg: string });
        assert.deepEqual(
          lines.filter((l) => l.level >= 40),
          [],
          'nothing about the terminating namespace is logged as a warning or an error',
        );
        const stops = lines.filter(
          (l) => l.msg === 'the object or its namespace is being deleted; not retrying',
        );
        assert.equal(stops.length, 1, 'the refused write is not retried');
      }
    } finally {
      await removePolicy();
    }
    // Ferry's finalizer never holds the namespace up once it may delete the VaultStaticSecret.
    await namespaceGone(doomed);
  });

  it('its VaultAuth deleted first in a namespace being deleted: quiet; the namespace created again gets its Events at once', async () => {
    const doomed = await heldTenant('vss-noauth');
    // The namespace controller may not delete the VaultStaticSecret yet: its VaultAuth goes first.
    const since = Date.now();
    const removePolicy = await holdDeletion(doomed, ['vaultstaticsecrets']);
    try {
      await kube.delete(Namespaces, doomed);
      await eventually('the VaultAuth named missing in status', async () => {
        const x = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'held', doomed);
        return /not found/.test(condition(x, 'SecretSynced')?.message ?? '');
      });
      await new Promise((r) => setTimeout(r, 2_000)); // time for retries, if there were any
      const lines = logLines(operatorLog(env), since).filter((l) => l.namespace === doomed);
      assert.deepEqual(
        lines.filter((l) => Number(l.level) >= 40).map((l) => l.msg),
        [],
        'nothing about the missing VaultAuth is logged as a warning or an error',
      );
    } finally {
      await removePolicy();
    }
    await namespaceGone(doomed);
    // Created again under the same name, within the minute Events into the old one are held.
    await ensureNamespace(kube, doomed);
    await apply(kube, kvSecret(doomed, 'again', { vaultAuthRef: 'missing', path: `${doomed}/db` }));
    await eventually(
      'the Warning Event in the namespace created again',
      async () => (await eventsOf(kube, doomed, 'again')).some((e) => e.type === 'Warning'),
      15_000,
    );
    await kube.delete(Namespaces, doomed);
  });

  it('garbage-collects the destination when the VaultStaticSecret is deleted', async () => {
    await kube.delete(VaultStaticSecrets, 'legacy', ns);
    await eventually(
      'destination gone',
      async () => (await kube.getIfExists(Secrets, 'legacy', ns)) === undefined,
      30_000,
    );
  });
});
