// Observability end to end: the operator's probes, Prometheus metrics and leader Lease on the real
// stack; secret values never leaking to metrics, Events, status or the log; and VSO's destination
// ownership rules (a foreign Secret is refused unless `overwrite: true`) reported where users look.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Leases, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Lease, Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNotIn,
  canary,
  condition,
  decodeData,
  eventsOf,
  eventually,
  kvSecret,
  type Manifest,
  synced,
  tamper,
  tenant,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { operatorLog, type StackEnv, uniqueName, useStack } from './harness.ts';

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

describe('operator observability', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let operator: NonNullable<StackEnv['operator']>;

  const metrics = async (): Promise<string> => {
    const r = await get(`${operator.metrics}/metrics`);
    assert.equal(r.status, 200);
    return r.body;
  };
  const events = (name?: string) => eventsOf(kube, ns, name);

  before(async () => {
    env = await useStack();
    assert.ok(env.operator, 'the stack runs the operator (not `up --no-operator`)');
    operator = env.operator;
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('obs');
    await tenant(env, kube, vault, ns);
  });
  after(async () => {
    await kube.close();
  });

  it('answers /healthz and /readyz with 200', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const r = await get(`${operator.health}${path}`);
      assert.equal(r.status, 200, `${path}: ${r.body}`);
    }
  });

  it('exposes controller-runtime reconcile and workqueue metrics', async () => {
    // At least one VaultStaticSecret reconcile, so the counter has a series for that controller.
    await vault.kvPut('kvv2', `${ns}/plain`, { hello: 'world' });
    await apply(kube, kvSecret(ns, 'plain'));
    await eventually('plain synced', async () =>
      synced(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'plain', ns)),
    );
    const body = await eventually('reconcile_total for vaultstaticsecret', async () => {
      const b = await metrics();
      return /^controller_runtime_reconcile_total\{[^}]*controller="vaultstaticsecret"[^}]*\} \d+/m.test(b)
        ? b
        : undefined;
    });
    assert.match(body, /^# TYPE controller_runtime_reconcile_total counter$/m);
    assert.match(
      body,
      /^controller_runtime_reconcile_total\{controller="vaultstaticsecret",result="(success|requeue_after)"\} [1-9]\d*$/m,
    );
    assert.match(body, /^# TYPE workqueue_depth gauge$/m);
    assert.match(body, /^workqueue_depth\{name="vaultstaticsecret"\} \d+$/m);
  });

  it('exposes ferry_build_info', async () => {
    const body = await metrics();
    assert.ok(/^ferry_build_info\{[^}]*version="[^"]+"[^}]*\} 1$/m.test(body), 'no ferry_build_info series');
  });

  it("exports VSO's vso_* families and Ferry's Vault request metrics, with VSO's types and labels", async () => {
    // The VaultStaticSecret synced above logged in and read through the default VaultConnection.
    const body = await eventually('Vault client metrics', async () => {
      const b = await metrics();
      return /^vso_client_operations_total\{operation="read",[^}]*\} [1-9]/m.test(b) ? b : undefined;
    });
    const type = (name: string) => new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(body)?.[1];
    const labelSets = (series: string) =>
      [...body.matchAll(new RegExp(`^${series}\\{([^}]*)\\} `, 'gm'))].map((m) =>
        [...m[1]!.matchAll(/(\w+)="/g)].map((l) => l[1]!).sort(),
      );
    const want: [string, string, string[]][] = [
      ['ferry_vault_requests_total', 'counter', ['operation', 'result']],
      ['ferry_vault_request_duration_seconds', 'histogram', ['operation']],
      ['vso_client_operations_total', 'counter', ['operation', 'vault_connection']],
      ['vso_client_operations_time_seconds', 'histogram', ['operation', 'vault_connection']],
      ['vso_client_factory_requests_total', 'counter', ['operation']],
      ['vso_client_factory_operations_time_seconds', 'histogram', ['component', 'operation']],
      ['vso_client_cache_size', 'gauge', []],
      ['vso_client_cache_length', 'gauge', []],
      ['vso_client_cache_misses', 'counter', []],
      ['vso_client_cache_hits', 'counter', []],
      ['vso_client_cache_evictions', 'gauge', []],
      [
        'vso_build_info',
        'gauge',
        [
          'build_date',
          'compiler',
          'git_commit',
          'git_tree_state',
          'git_version',
          'go_version',
          'major',
          'minor',
          'platform',
        ],
      ],
      [
        'vso_runtime_config',
        'gauge',
        [
          'backoffInitialInterval',
          'backoffMaxElapsedTime',
          'backoffMaxInterval',
          'backoffMultiplier',
          'backoffRandomizationFactor',
          'clientCachePersistenceModel',
          'clientCacheSize',
          'globalTransformationOptions',
          'globalVaultAuthOptions',
          'maxConcurrentReconciles',
        ],
      ],
    ];
    for (const [name, kind, labels] of want) {
      assert.equal(type(name), kind, `# TYPE ${name}`);
      const series = kind === 'histogram' ? `${name}_count` : name;
      if (labels.length === 0) {
        assert.match(body, new RegExp(`^${series} \\d`, 'm'), `${name} sample`);
        continue;
      }
      const sets = labelSets(series);
      assert.ok(sets.length > 0, `${name} has samples`);
      for (const s of sets) assert.deepEqual(s, [...labels].sort(), `${name} labels`);
    }
    // The login and the read of the sync, by VaultConnection as VSO labels them.
    assert.match(
      body,
      /^vso_client_operations_total\{operation="login",vault_connection="[^"/]+\/[^"]+"\} [1-9]/m,
    );
    assert.match(body, /^ferry_vault_requests_total\{operation="read",result="success"\} [1-9]/m);
    assert.match(body, /^vso_client_factory_requests_total\{operation="get"\} [1-9]/m);
    assert.match(body, /^vso_client_cache_size 10000$/m);
    assert.match(body, /^vso_runtime_config\{[^}]*backoffInitialInterval="5s"[^}]*\} 1$/m);
    // VSO's per-object validity, for the tenant's VaultAuth "auth".
    assert.equal(type('controller_resource_status'), 'gauge');
    assert.match(
      body,
      new RegExp(
        `^controller_resource_status\\{controller="vaultauth",name="auth",namespace="${ns}"\\} 1$`,
        'm',
      ),
    );
  });

  /** Fails if any of `canaries` appears in metrics, an Event in the namespace, the status of any Ferry
   * object in the cluster, or the operator log. */
  const assertNoLeak = async (canaries: string[]): Promise<void> => {
    // Let the operator flush its log.
    await new Promise((r) => setTimeout(r, 300));
    const leaks = (where: string, text: string): void => assertNotIn(canaries, text, where);
    leaks('/metrics', await metrics());
    leaks('an Event in the namespace', JSON.stringify(await events()));
    for (const kind of ALL_KINDS) {
      const list = await kube.list<KubeObject & { status?: unknown }>(kind.resource, {});
      leaks(`the status of a ${kind.resource.kind}`, JSON.stringify(list.items.map((o) => o.status)));
    }
    leaks('the operator log', operatorLog(env));
  };

  it('never lets a secret value reach metrics, Events, status or the operator log', async () => {
    const first = canary('obs1');
    const second = canary('obs2');
    await vault.kvPut('kvv2', `${ns}/canary`, { password: first });
    await apply(
      kube,
      kvSecret(ns, 'canary', {
        refreshAfter: '1s',
      }),
    );
    await eventually(
      'canary synced',
      async () =>
        decodeData((await kube.getIfExists<Secret>(Secrets, 'canary', ns))?.data).password === first,
    );
    // Rotation, drift and its healing: more Events and status writes that could carry the value.
    await vault.kvPut('kvv2', `${ns}/canary`, { password: second });
    await eventually(
      'rotated',
      async () => decodeData((await kube.get<Secret>(Secrets, 'canary', ns)).data).password === second,
      15_000,
    );
    await tamper(kube, ns, 'canary', 'password');
    await eventually(
      'drift healed',
      async () => decodeData((await kube.get<Secret>(Secrets, 'canary', ns)).data).password === second,
      10_000,
    );
    await eventually('SecretRotated and SecretDataDrift Events', async () => {
      const reasons = new Set((await events('canary')).map((e) => e.reason));
      return reasons.has('SecretRotated') && reasons.has('SecretDataDrift');
    });
    await eventually('synced status', async () =>
      synced(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'canary', ns)),
    );
    await assertNoLeak([first, second]);
  });

  it('never lets a secret value reach an error message of a failing template', async () => {
    // Not a valid regular expression: Go's regexp error quotes the pattern.
    const value = canary('obs3');
    await vault.kvPut('kvv2', `${ns}/leaky`, { pattern: `${value}(` });
    await apply(
      kube,
      kvSecret(ns, 'leaky', {
        destination: {
          name: 'leaky',
          create: true,
          transformation: { templates: { m: { text: '{{ mustRegexMatch .Secrets.pattern "x" }}' } } },
        },
      }),
    );
    await eventually('template failure reported', async () => {
      const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'leaky', ns);
      return (
        condition(o, 'SecretSynced')?.status === 'False' &&
        (await events('leaky')).some((e) => e.type === 'Warning' && e.reason === 'SecretDataBuilderError')
      );
    });
    await assertNoLeak([value]);
  });

  it('holds the leader-election Lease', async () => {
    const lease = await kube.get<Lease>(Leases, 'ferry.secrets.hashicorp.com', env.operatorNamespace);
    assert.ok(lease.spec?.holderIdentity, 'the Lease names a holder');
    assert.ok((lease.spec?.leaseDurationSeconds ?? 0) > 0);
    // The holder keeps renewing.
    const renewed = await eventually(
      'Lease renewed',
      async () => {
        const l = await kube.get<Lease>(Leases, 'ferry.secrets.hashicorp.com', env.operatorNamespace);
        return l.metadata.resourceVersion !== lease.metadata.resourceVersion ? l : undefined;
      },
      20_000,
      500,
    );
    assert.equal(renewed.spec?.holderIdentity, lease.spec?.holderIdentity);
  });

  it('refuses a foreign destination Secret without overwrite and takes it over with overwrite: true', async () => {
    const value = canary('owner');
    await vault.kvPut('kvv2', `${ns}/owner`, { value });
    const foreign = (await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'foreign', namespace: ns, labels: { mine: 'yes' } },
      type: 'Opaque',
      data: { old: Buffer.from('keep').toString('base64') },
    } as Manifest)) as Secret;
    const spec = (overwrite: boolean) => ({
      mount: 'kvv2',
      type: 'kv-v2',
      path: `${ns}/owner`,
      destination: { name: 'foreign', create: true, overwrite },
    });
    await apply(kube, vss(ns, 'taker', spec(false)));
    const refused = await eventually('not-owner error in status', async () => {
      const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'taker', ns);
      return condition(o, 'SecretSynced')?.status === 'False' ? o : undefined;
    });
    assert.match(condition(refused, 'SecretSynced')?.message ?? '', /is not owned by this resource/);
    const warning = await eventually('Warning Event for the refusal', async () =>
      (await events('taker')).find((e) => e.type === 'Warning' && /not owned/.test(e.message)),
    );
    assert.equal(warning.reason, 'SecretSyncError');
    const untouched = await kube.get<Secret>(Secrets, 'foreign', ns);
    assert.equal(
      untouched.metadata.resourceVersion,
      foreign.metadata.resourceVersion,
      'Secret left untouched',
    );
    assert.deepEqual(decodeData(untouched.data), { old: 'keep' });
    assert.equal(untouched.metadata.ownerReferences, undefined);

    await apply(kube, vss(ns, 'taker', spec(true)));
    const owner = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'taker', ns);
    const taken = await eventually(
      'taken over',
      async () => {
        const x = await kube.get<Secret>(Secrets, 'foreign', ns);
        return x.metadata.ownerReferences?.length ? x : undefined;
      },
      20_000,
    );
    assert.deepEqual(taken.metadata.ownerReferences, [
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultStaticSecret',
        name: 'taker',
        uid: owner.metadata.uid,
      },
    ]);
    assert.equal(taken.metadata.labels?.['app.kubernetes.io/managed-by'], 'hashicorp-vso');
    assert.equal(taken.metadata.labels?.['app.kubernetes.io/name'], 'vault-secrets-operator');
    assert.equal(taken.metadata.labels?.['secrets.hashicorp.com/vso-ownerRefUID'], owner.metadata.uid);
    assert.equal(decodeData(taken.data).value, value);
    await eventually('synced after take-over', async () =>
      synced(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'taker', ns)),
    );
  });
});
