// The restart test of issue 3 ("Client cache and restarts"), against the real stack: N
// VaultDynamicSecrets (database engine, PostgreSQL) synced by an operator that persists its Vault
// tokens (`--client-cache-persistence-model=direct-encrypted`, Transit key and encryption VaultAuth
// set up here). Then
//   1. the operator is killed with SIGKILL and started again;
//   2. a second replica joins, and the leader is stopped with SIGTERM so leadership moves;
// and each time: zero new credentials (same users, same lease ids, same Vault token), zero rollout
// restarts, every lease renewed after the restart before it expired, no lease orphaned (exactly N
// leases under the role), and the token restored rather than a new login.
//
// The tenant's Vault token has a 90 s period; each phase also checks in Vault that the new process
// renewed the very token the old one logged in with (its last_renewal_time moves past the restart),
// which is what keeps the leases it created alive.
//
// N comes from FERRY_RESTART_N (default 200). The stack's operator is restarted with the
// persistence flag for the test and restored to its default flags afterwards.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { VaultAuths, VaultDynamicSecrets } from '../../../src/api/resources.ts';
import type { VaultDynamicSecret } from '../../../src/api/v1beta1/vaultdynamicsecret.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import {
  Deployments,
  Namespaces,
  ReplicaSets,
  Secrets,
  ServiceAccounts,
} from '../../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../../src/k8s/types.ts';
import { storageSecretName } from '../../../src/vault/persistence.ts';
import {
  adminClient,
  apply,
  decodeData,
  eventually,
  kubernetesVaultAuth,
  type Manifest,
  tenant,
  VaultAdmin,
} from '../../../stack/lib/fixtures.ts';
import { logLines, operatorLog } from '../../../stack/lib/operator-log.ts';
import {
  loadStackEnv,
  restartOperator,
  restoreOperator,
  startOperatorReplica,
  stopOperatorProcess,
} from '../../../stack/lib/stack.ts';
import { type StackEnv, uniqueName, useStack } from '../harness.ts';

const N = Number(process.env.FERRY_RESTART_N ?? 200);
const TARGETS = Math.min(5, N);
const LEASE_TTL_S = 40;
// Long enough that, after a SIGKILL, the token outlives the Lease takeover (15 s) plus the restart:
// at the kill it has at least 1/3 of its period left.
const TOKEN_PERIOD_S = 90;
const PERSIST_FLAG = '--client-cache-persistence-model=direct-encrypted';
const RESTARTED_AT = 'vso.secrets.hashicorp.com/restartedAt';
const log = (m: string) => process.stderr.write(`[restart e2e] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Snapshot {
  at: number;
  byName: Map<
    string,
    {
      user: string;
      /** resourceVersion of the destination Secret: it changes only when something writes it. */
      secretVersion: string;
      leaseId: string;
      clientId: string;
      renewedAt: number;
      duration: number;
    }
  >;
  replicaSets: number;
  restartedAt: (string | undefined)[];
  leases: number;
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) {
        const item = items[i++] as T;
        await fn(item);
      }
    }),
  );
}

describe(`operator restart with a persisted client cache (N=${N})`, { timeout: 600_000 }, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let mount: string;
  let transit: string;
  let encAuth: string;
  let cacheKey = '';
  const names = Array.from({ length: N }, (_, i) => `vds-${i}`);
  const figures: Record<string, unknown> = { N };
  const t0 = Date.now();

  const leases = async (): Promise<number> => {
    const res = await vault.call('GET', `sys/leases/lookup/${mount}/creds/dyn?list=true`);
    return ((res?.data as { keys?: string[] } | undefined)?.keys ?? []).length;
  };
  /** The Vault token whose accessor hashes to `clientId` (status.vaultClientMeta.id). */
  const tokenByClientId = async (clientId: string): Promise<{ lastRenewal: number } | undefined> => {
    const res = await vault.call('GET', 'auth/token/accessors?list=true');
    for (const acc of (res?.data as { keys?: string[] } | undefined)?.keys ?? []) {
      if (createHash('sha256').update(acc).digest('hex') !== clientId) continue;
      const info = await vault.call('POST', 'auth/token/lookup-accessor', { accessor: acc });
      const d = (info?.data ?? {}) as { last_renewal_time?: number; issue_time?: string };
      return { lastRenewal: d.last_renewal_time ?? 0 };
    }
    return undefined;
  };
  const listVds = async (): Promise<VaultDynamicSecret[]> =>
    (await kube.list<VaultDynamicSecret>(VaultDynamicSecrets, { namespace: ns })).items;

  async function snapshot(): Promise<Snapshot> {
    const [vdss, secrets, rs, deps, leaseCount] = await Promise.all([
      listVds(),
      kube.list<Secret>(Secrets, { namespace: ns }),
      kube.list<KubeObject>(ReplicaSets, { namespace: ns }),
      kube.list<
        KubeObject & { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } }
      >(Deployments, { namespace: ns }),
      leases(),
    ]);
    const secretsByName = new Map(secrets.items.map((s) => [s.metadata.name ?? '', s]));
    const secretOf = (v: VaultDynamicSecret) => secretsByName.get(`creds-${v.metadata.name}`);
    const byName: Snapshot['byName'] = new Map();
    for (const v of vdss) {
      const st = v.status;
      byName.set(v.metadata.name ?? '', {
        user: decodeData(secretOf(v)?.data).username ?? '',
        secretVersion: secretOf(v)?.metadata.resourceVersion ?? '',
        leaseId: st?.secretLease?.id ?? '',
        clientId: st?.vaultClientMeta?.id ?? '',
        renewedAt: st?.lastRenewalTime ?? 0,
        duration: st?.secretLease?.duration ?? 0,
      });
    }
    return {
      at: Date.now(),
      byName,
      replicaSets: rs.items.length,
      restartedAt: deps.items
        .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))
        .map((d) => d.spec?.template?.metadata?.annotations?.[RESTARTED_AT]),
      leases: leaseCount,
    };
  }

  /** Waits for every VDS to renew after `since`, then past the old token's expiry, and checks that
   * nothing was re-issued, restarted or orphaned. Returns the phase figures. */
  async function verifyAfter(
    phase: string,
    before: Snapshot,
    since: number,
    logText: () => string,
    maxLateMs = 2_000,
  ): Promise<Record<string, unknown>> {
    // Converged: every lease renewed by the new process (strictly after `since`). A lease renewed in
    // the second after `since` (status has whole seconds) is renewed again before that shows, so
    // each lease's first renewal after the snapshot is kept on the way.
    let converged = 0;
    const firstRenewal = new Map<string, number>();
    const renewedAfter = await eventually(
      `${phase}: every lease renewed after the restart`,
      async () => {
        const vdss = await listVds();
        for (const v of vdss) {
          const name = v.metadata.name ?? '';
          const t = v.status?.lastRenewalTime ?? 0;
          if (!firstRenewal.has(name) && t > (before.byName.get(name)?.renewedAt ?? t))
            firstRenewal.set(name, t);
        }
        const done = vdss.filter((v) => (v.status?.lastRenewalTime ?? 0) * 1000 >= since + 1000);
        if (done.length < N) return undefined;
        converged = Date.now() - since;
        return vdss;
      },
      (LEASE_TTL_S + 20) * 1000,
      1000,
    );
    // Each first renewal after the restart came before the lease expired (status seconds).
    const lateVsExpiry: number[] = [];
    for (const v of renewedAfter) {
      const b = before.byName.get(v.metadata.name ?? '');
      assert.ok(b, `${v.metadata.name} existed before`);
      const renewedAt = firstRenewal.get(v.metadata.name ?? '') ?? v.status?.lastRenewalTime ?? 0;
      lateVsExpiry.push(renewedAt - (b.renewedAt + b.duration));
    }
    // The token of the old process is renewed by the new one (Vault's view, via its accessor).
    const clientId = [...before.byName.values()][0]?.clientId ?? '';
    const tokenRenewedAt = await eventually(
      `${phase}: the restored token renewed by the new process`,
      async () => {
        const t = await tokenByClientId(clientId);
        return t && t.lastRenewal * 1000 >= since ? t.lastRenewal : undefined;
      },
      TOKEN_PERIOD_S * 1000,
      1000,
    );
    const afterSnap = await snapshot();

    let newCredentials = 0;
    let newLeases = 0;
    let newTokens = 0;
    let secretWrites = 0;
    for (const [name, b] of before.byName) {
      const a = afterSnap.byName.get(name);
      assert.ok(a, `${name} still there`);
      if (a.user !== b.user) newCredentials += 1;
      if (a.leaseId !== b.leaseId) newLeases += 1;
      if (a.clientId !== b.clientId) newTokens += 1;
      if (a.secretVersion !== b.secretVersion) secretWrites += 1;
    }
    // The renewal log of the new process: planned horizon vs actual renewal.
    const lines = logLines(logText(), since);
    const late = lines
      .filter((l) => l.msg === 'lease renewed' && l.namespace === ns)
      .map((l) => Number(l.lateMs));
    const count = (field: string, value: string) => lines.filter((l) => l[field] === value).length;
    // The tenant under test's own entry: the stack's other tenants (left by earlier tests) have
    // sessions of their own, restored, logged in and stored by the same process.
    const own = (field: string, value: string) =>
      lines.filter((l) => l[field] === value && l.cacheKey === cacheKey).length;
    const fig = {
      convergeMs: converged,
      tokenRenewedAfterS: tokenRenewedAt - Math.floor(since / 1000),
      newCredentials,
      newLeases,
      newTokens,
      secretWrites,
      leasesBefore: before.leases,
      leasesAfter: afterSnap.leases,
      replicaSetsBefore: before.replicaSets,
      replicaSetsAfter: afterSnap.replicaSets,
      restored: own('clientCachePersistence', 'restored'),
      storedAfterRestart: own('clientCachePersistence', 'stored'),
      restoredAllTenants: count('clientCachePersistence', 'restored'),
      storedAllTenants: count('clientCachePersistence', 'stored'),
      vaultLogins: count('vaultSession', 'login'),
      warmUpMs: lines.filter((l) => l.warmUp === 'clientcache').map((l) => Number(l.ms)),
      renewalsLogged: late.length,
      renewalLateMs: late.length ? { min: Math.min(...late), max: Math.max(...late) } : undefined,
      renewedBeforeExpiryMarginS: { worst: Math.max(...lateVsExpiry) },
    };
    log(`${phase}: ${JSON.stringify(fig)}`);
    assert.equal(newCredentials, 0, `${phase}: no new credentials`);
    assert.equal(newLeases, 0, `${phase}: no new leases`);
    assert.equal(newTokens, 0, `${phase}: the same Vault token (restored, not a new login)`);
    assert.equal(secretWrites, 0, `${phase}: no destination Secret written`);
    assert.equal(afterSnap.leases, N, `${phase}: exactly N leases under the role (none orphaned)`);
    assert.equal(afterSnap.replicaSets, before.replicaSets, `${phase}: no rollout restart`);
    assert.deepEqual(afterSnap.restartedAt, before.restartedAt, `${phase}: no restartedAt change`);
    assert.equal(fig.restored, 1, `${phase}: the tenant token was restored, once`);
    assert.equal(fig.storedAfterRestart, 0, `${phase}: no new token had to be stored`);
    assert.ok(Math.max(...lateVsExpiry) < 0, `${phase}: every lease renewed before it expired`);
    assert.ok(late.length >= N, `${phase}: renewals logged by the new process`);
    assert.ok(Math.max(...late) < maxLateMs, `${phase}: renewals within ${maxLateMs} ms of their horizon`);
    return fig;
  }

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('restart');
    mount = `db-${ns}`;
    transit = `transit-${ns}`;
    encAuth = `cc-${ns}`.slice(0, 60);
    await tenant(env, kube, vault, ns);
    await vault.policy(
      `t-${ns}`,
      [
        `path "${mount}/creds/*" { capabilities = ["read", "update"] }`,
        'path "sys/leases/renew" { capabilities = ["update"] }',
        'path "sys/leases/revoke" { capabilities = ["update"] }',
      ].join('\n'),
    );
    // A short token period: a token that is not restored dies (with its leases) within each phase.
    await vault.kubernetesRole(`t-${ns}`, {
      serviceAccount: 'app',
      namespace: ns,
      policies: [`t-${ns}`],
      period: `${TOKEN_PERIOD_S}s`,
    });
    await vault.postgresEngine(mount, { defaultTtl: `${LEASE_TTL_S}s`, maxTtl: '1h' });
    // Transit key and the encryption VaultAuth (operator namespace, cacheStorageEncryption=true).
    await vault.call('POST', `sys/mounts/${transit}`, { type: 'transit' });
    await vault.call('POST', `${transit}/keys/cc`, {});
    await vault.policy(
      `cc-${ns}`,
      `path "${transit}/encrypt/cc" { capabilities = ["update"] }\npath "${transit}/decrypt/cc" { capabilities = ["update"] }\n`,
    );
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'cache-encryption', namespace: env.operatorNamespace },
    });
    await vault.kubernetesRole(`cc-${ns}`, {
      serviceAccount: 'cache-encryption',
      namespace: env.operatorNamespace,
      policies: [`cc-${ns}`],
    });
    await apply(
      kube,
      kubernetesVaultAuth(env, env.operatorNamespace, encAuth, {
        role: `cc-${ns}`,
        serviceAccount: 'cache-encryption',
        connection: 'default',
        labels: { cacheStorageEncryption: 'true' },
        spec: { storageEncryption: { mount: transit, keyName: 'cc' } },
      }),
    );
    // The operator under test persists its client cache.
    await restartOperator(log, 'SIGTERM', [PERSIST_FLAG]);

    for (let i = 0; i < TARGETS; i++) {
      await apply(kube, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: `web-${i}`, namespace: ns },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: `web-${i}` } },
          template: {
            metadata: { labels: { app: `web-${i}` } },
            spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] },
          },
        },
      } as Manifest);
    }
    const tCreate = Date.now();
    await pool(names, 16, (name) => {
      const i = Number(name.slice(4));
      return apply(kube, {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultDynamicSecret',
        metadata: { name, namespace: ns },
        spec: {
          vaultAuthRef: 'auth',
          mount,
          path: 'creds/dyn',
          destination: { name: `creds-${name}`, create: true },
          ...(i < TARGETS ? { rolloutRestartTargets: [{ kind: 'Deployment', name: `web-${i}` }] } : {}),
        },
      } as Manifest);
    });
    await eventually(
      `all ${N} VaultDynamicSecrets synced`,
      async () => {
        const vdss = await listVds();
        return (
          vdss.filter((v) => v.status?.secretLease?.id && v.status.lastGeneration === v.metadata.generation)
            .length === N
        );
      },
      120_000,
      1000,
    );
    figures.initialSyncMs = Date.now() - tCreate;
    const one = await kube.get<VaultDynamicSecret>(VaultDynamicSecrets, names[0] ?? '', ns);
    cacheKey = one.status?.vaultClientMeta?.cacheKey ?? '';
    assert.ok(cacheKey, 'status.vaultClientMeta.cacheKey');
    log(`setup done in ${Date.now() - t0} ms; initial sync of ${N} took ${figures.initialSyncMs} ms`);
  });

  after(async () => {
    figures.totalMs = Date.now() - t0;
    log(`figures ${JSON.stringify(figures)}`);
    // Back to the stack's default operator (persistence none purges the stored entries).
    await stopOperatorProcess('ferry-b', 'SIGTERM').catch(() => {});
    await restoreOperator(log);
    await kube.delete(Namespaces, ns).catch(() => {});
    await kube.delete(VaultAuths, encAuth, env.operatorNamespace).catch(() => {});
    await kube.delete(ServiceAccounts, 'cache-encryption', env.operatorNamespace).catch(() => {});
    await vault.call('DELETE', `sys/mounts/${mount}`).catch(() => {});
    await vault.call('DELETE', `sys/mounts/${transit}`).catch(() => {});
    await vault.close();
    await kube.close();
  });

  it('stores the token encrypted in vso-cc-<cacheKey> with VSO labels and a MAC', async () => {
    const s = await eventually('the storage Secret', () =>
      kube.get<Secret>(Secrets, storageSecretName(cacheKey), env.operatorNamespace),
    );
    assert.equal(s.immutable, true);
    const l = s.metadata.labels ?? {};
    assert.equal(l['app.kubernetes.io/component'], 'client-cache-storage');
    assert.equal(l.cacheKey, cacheKey);
    assert.equal(l.encrypted, 'true');
    assert.equal(l.vaultTransitRef, encAuth);
    assert.equal(l['provider/namespace'], ns);
    const payload = Buffer.from(s.data?.secret ?? '', 'base64').toString('utf8');
    assert.match(payload, /^vault:v\d+:/, 'Transit ciphertext');
    assert.ok(s.data?.messageMAC, 'messageMAC');
  });

  /** Waits, up to one and a half lease periods, for a moment every lease has at least `minLeftS` to
   * live, as right after a renewal round. A SIGKILLed leader keeps the Lease for 15 s, so a lease
   * whose renewal fell due at the kill (a third of its TTL left) could expire before any successor
   * may act: where in the renewal cycle the kill falls must not decide the outcome. */
  async function untilLeasesFresh(minLeftS: number): Promise<void> {
    const deadline = Date.now() + LEASE_TTL_S * 1500;
    let left = 0;
    while (Date.now() < deadline) {
      const now = Date.now() / 1000;
      left = Math.min(
        ...(await listVds()).map(
          (v) => (v.status?.lastRenewalTime ?? 0) + (v.status?.secretLease?.duration ?? 0) - now,
        ),
      );
      if (left >= minLeftS) return;
      await sleep(500);
    }
    log(`no moment with every lease ${minLeftS} s from expiry (last: ${left.toFixed(1)} s); killing anyway`);
  }

  it('SIGKILL and restart: no new credentials, no restarts, every lease renewed, none orphaned', async () => {
    await untilLeasesFresh(LEASE_TTL_S - 10);
    const before = await snapshot();
    assert.equal(before.leases, N);
    const tKill = Date.now();
    await restartOperator(log, 'SIGKILL', [PERSIST_FLAG]);
    figures.restartMs = Date.now() - tKill;
    figures.sigkill = await verifyAfter('SIGKILL restart', before, tKill, () => operatorLog(loadStackEnv()));
  });

  it('leadership moves to a second replica: it picks up renewals with no new credentials', async () => {
    const replica = await startOperatorReplica(log, 'ferry-b', [PERSIST_FLAG]);
    // The replica follows; give it a moment to observe the Lease.
    await sleep(2_000);
    const before = await snapshot();
    const tStop = Date.now();
    await stopOperatorProcess('operator', 'SIGTERM');
    figures.leaderStopMs = Date.now() - tStop;
    // A lease due while leadership moves waits for the successor: it sees the released Lease within
    // one acquire retry (2 s plus up to 1.2 × 2 s of jitter), then renews what is due.
    figures.failover = await verifyAfter('failover', before, tStop, replica.log, 2_000 + 4_400);
  });
});
