// Bad input and faults (issue 3): an unknown mount, a role without permission, the database down, a
// lease revoked behind Ferry's back, Vault restarted. Each ends in a clear condition and Event, is
// retried with backoff, and recovers by itself once the cause is gone; a destination Secret is never
// touched (same resourceVersion, same data) while Vault or the database cannot serve it.
//
// How the faults are made, deterministically and without disturbing other test files on the stack:
// - unknown mount: the VaultDynamicSecret points at a mount that does not exist yet (Vault answers 404
//   "no handler for route"); the test mounts it later;
// - no permission: a VaultAuth whose Vault role's policy lacks the creds path (403); the test grants
//   it later (Vault resolves policies per request, so the existing token gains the path);
// - database down: this file's database mount reaches PostgreSQL through a TCP relay owned by the
//   test (stack/lib/fault-proxy.ts). Refusing at the relay (listener and live connections closed) is,
//   for Vault, a database that refuses connections; reopening it on the same port brings it back.
//   The stack's PostgreSQL itself keeps running for everyone else;
// - lease revoked: `sys/leases/revoke` with the root token;
// - Vault restarted: a private dev server, stopped and started again on the same port. A dev server
//   keeps nothing, so the test configures the new one again (Kubernetes auth, database, PKI), as an
//   operator of a real Vault would restore it.
// The cases are independent (own objects, own mounts) and run concurrently to keep the file short.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { VaultDynamicSecrets, VaultPKISecrets } from '../../src/api/resources.ts';
import type { VaultDynamicSecret } from '../../src/api/v1beta1/vaultdynamicsecret.ts';
import type { VaultPKISecret } from '../../src/api/v1beta1/vaultpkisecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Events, Secrets } from '../../src/k8s/resources.ts';
import type { CoreEvent, KubeObject, Secret } from '../../src/k8s/types.ts';
import { type DevVault, devVaultBinary, startDevVault } from '../../stack/lib/devvault.ts';
import { FaultProxy } from '../../stack/lib/fault-proxy.ts';
import {
  adminClient,
  apply,
  decodeData,
  eventually,
  kubernetesVaultAuth,
  type Manifest,
  pgConnection,
  pgLogin,
  pgRole,
  restartedAt,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import {
  logLines,
  operatorIncarnation,
  operatorLog,
  type StackEnv,
  uniqueName,
  useStack,
} from './harness.ts';

const API = 'secrets.hashicorp.com/v1beta1';
const DOMAIN = 'example.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Cond = { type: string; status: string; reason: string; message: string };
const condition = (o: { status?: { conditions?: Cond[] } } | undefined, type: string): Cond | undefined =>
  o?.status?.conditions?.find((c) => c.type === type);

function vds(ns: string, name: string, spec: Record<string, unknown>): Manifest {
  return {
    apiVersion: API,
    kind: 'VaultDynamicSecret',
    metadata: { name, namespace: ns },
    spec: { vaultAuthRef: 'auth', ...spec },
  } as Manifest;
}

const dbRole = (env: StackEnv, db: string, ttl: string) => pgRole(env, db, ttl, '1h');

// Short-lived pool connections, so a database that comes back is reached with fresh ones.
const dbConfig = (env: StackEnv, port: number) => ({
  ...pgConnection(env, port),
  max_connection_lifetime: '5s',
});

describe('faults: each ends in a clear condition and Event, and recovers by itself', {
  concurrency: true,
}, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  /** Database mount of the stack's Vault, reaching PostgreSQL directly. */
  let mount: string;
  /** Database mount reaching PostgreSQL through `relay` (the "database down" case). */
  let relayMount: string;
  /** Created only during the "unknown mount" case. */
  let lateMount: string;
  let relay: FaultProxy;
  const figures: Record<string, unknown> = {};
  const secrets = new Set<string>();
  const started = Date.now();

  const login = (user: string, password: string): Promise<string | Error> => pgLogin(env, user, password);

  const secret = (name: string): Promise<Secret | undefined> => kube.getIfExists<Secret>(Secrets, name, ns);
  const creds = async (name: string): Promise<Record<string, string> | undefined> => {
    const s = await secret(name);
    if (!s) return undefined;
    const d = decodeData(s.data);
    if (d.password) secrets.add(d.password);
    return d;
  };
  const getVDS = (name: string) => kube.get<VaultDynamicSecret>(VaultDynamicSecrets, name, ns);
  const getVPS = (name: string) => kube.get<VaultPKISecret>(VaultPKISecrets, name, ns);
  const events = async (name: string): Promise<CoreEvent[]> =>
    (await kube.list<CoreEvent>(Events, { namespace: ns, fieldSelector: `involvedObject.name=${name}` }))
      .items;
  /** Waits for an Event of this type and reason on the object; returns its message. */
  const eventFor = (name: string, type: 'Normal' | 'Warning', reason: string, match?: RegExp) =>
    eventually(`${type} Event ${reason} on ${name}`, async () => {
      const e = (await events(name)).find(
        (x) => x.type === type && x.reason === reason && (!match || match.test(x.message)),
      );
      return e?.message;
    });
  /** Waits until the object's SecretSynced condition has `status`; returns the condition. */
  const synced = (
    what: string,
    read: () => Promise<{ status?: { conditions?: Cond[] } }>,
    status: 'True' | 'False',
    timeoutMs = 30_000,
  ): Promise<Cond> =>
    eventually(
      `${what}: SecretSynced=${status}`,
      async () => {
        const c = condition(await read(), 'SecretSynced');
        return c?.status === status ? c : undefined;
      },
      timeoutMs,
      250,
    );
  /** Reconcile errors the operator logged for the object (one per failed attempt). */
  const failedAttempts = (controller: string, name: string): number[] => {
    if (!env.operator) return [];
    return logLines(operatorLog(env))
      .filter(
        (l) =>
          l.msg === 'reconciler error' &&
          l.controller === controller &&
          l.namespace === ns &&
          l.name === name,
      )
      .map((l) => l.time);
  };
  /** Samples the destination until `until` resolves: it must keep its resourceVersion and data. */
  const untouchedWhile = async <T>(name: string, until: Promise<T>): Promise<T> => {
    const first = await secret(name);
    assert.ok(first?.data && Object.keys(first.data).length > 0, `${name} holds data`);
    let done = false;
    const result = until.finally(() => {
      done = true;
    });
    let samples = 0;
    while (!done) {
      const now = await secret(name);
      samples++;
      assert.equal(now?.metadata.resourceVersion, first.metadata.resourceVersion, `${name} was rewritten`);
      assert.deepEqual(now?.data, first.data, `${name} lost its data`);
      await sleep(250);
    }
    assert.ok(samples > 3, `${name} was sampled (${samples})`);
    return result;
  };
  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('faults');
    mount = `db-${ns}`;
    relayMount = `dbr-${ns}`;
    lateMount = `dbl-${ns}`;
    await tenant(env, kube, vault, ns);
    await vault.policy(
      `t-${ns}`,
      [
        `path "${mount}/creds/*" { capabilities = ["read", "update"] }`,
        `path "${relayMount}/creds/*" { capabilities = ["read", "update"] }`,
        `path "${lateMount}/creds/*" { capabilities = ["read", "update"] }`,
        'path "sys/leases/renew" { capabilities = ["update"] }',
        'path "sys/leases/revoke" { capabilities = ["update"] }',
      ].join('\n'),
    );
    relay = new FaultProxy(env.postgres.port);
    await relay.set('pass');
    for (const [m, port] of [
      [mount, env.postgres.port],
      [relayMount, relay.port],
    ] as const) {
      await vault.call('POST', `sys/mounts/${m}`, { type: 'database' });
      await vault.call('POST', `${m}/config/pg`, dbConfig(env, port));
      await vault.call('POST', `${m}/roles/dyn`, dbRole(env, 'pg', m === relayMount ? '30s' : '10s'));
    }
    await apply(kube, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: ns },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'c', image: 'example.invalid/app:1' }] },
        },
      },
    } as Manifest);
  });

  after(async () => {
    process.stderr.write(
      `[faults e2e] ${((Date.now() - started) / 1000).toFixed(1)} s, figures ${JSON.stringify(figures)}\n`,
    );
    try {
      // Deleting the resources revokes their leases while the mounts (and the relay) still work.
      for (const rt of [VaultDynamicSecrets, VaultPKISecrets]) {
        const list = await kube.list<KubeObject>(rt, { namespace: ns });
        for (const o of list.items) await kube.delete(rt, o.metadata.name ?? '', ns).catch(() => {});
      }
      await eventually(
        'resources gone',
        async () => (await kube.list<KubeObject>(VaultDynamicSecrets, { namespace: ns })).items.length === 0,
        20_000,
      ).catch(() => {});
      for (const m of [mount, relayMount, lateMount])
        await vault.call('DELETE', `sys/mounts/${m}`).catch(() => {});
      if (env.operator) {
        const log = operatorLog(env);
        for (const s of secrets) assert.ok(!log.includes(s), 'a password reached the operator log');
      }
      const evs = await kube.list<CoreEvent>(Events, { namespace: ns });
      const statuses = await kube.list<VaultDynamicSecret>(VaultDynamicSecrets, { namespace: ns });
      const visible = JSON.stringify(evs.items) + JSON.stringify(statuses.items.map((o) => o.status));
      for (const s of secrets) assert.ok(!visible.includes(s), 'a password reached an Event or status');
    } finally {
      await relay?.close();
      await vault?.close();
      await kube?.close();
    }
  });

  it('unknown mount: SecretSynced False naming the path, a Warning Event, backoff, recovery once mounted', async () => {
    const path = `${lateMount}/creds/dyn`;
    await apply(
      kube,
      vds(ns, 'late', { mount: lateMount, path: 'creds/dyn', destination: { name: 'late', create: true } }),
    );
    const failed = await synced('late', () => getVDS('late'), 'False');
    assert.equal(failed.reason, 'Synced');
    assert.ok(failed.message.includes(path), `the condition names the path: ${failed.message}`);
    assert.match(failed.message, /404|no handler/);
    const ready = condition(await getVDS('late'), 'Ready');
    assert.equal(ready?.status, 'False');
    const event = await eventFor('late', 'Warning', 'VaultClientError');
    assert.ok(event.includes(path), `the Event names the path: ${event}`);
    assert.equal(await secret('late'), undefined, 'nothing written');

    // Retries back off (5 s × 1.5 per failure, jittered ±50 %): a handful of attempts in 20 s, never
    // closer than the first interval's lower bound (2.5 s), not a storm.
    await sleep(20_000);
    const attempts = failedAttempts('vaultdynamicsecret', 'late');
    if (env.operator) {
      const t0 = attempts[0] ?? 0;
      const inWindow = attempts.filter((t) => t - t0 <= 20_000);
      const gaps = inWindow.slice(1).map((t, i) => t - (inWindow[i] ?? 0));
      figures.unknownMount = { attemptsIn20s: inWindow.length, gapsMs: gaps };
      assert.ok(inWindow.length >= 2, `retried (${inWindow.length} attempts)`);
      assert.ok(inWindow.length <= 6, `backs off (${inWindow.length} attempts in 20 s)`);
      for (const g of gaps) assert.ok(g >= 2_400, `attempts at least 2.5 s apart (${gaps.join(', ')} ms)`);
    }

    await vault.call('POST', `sys/mounts/${lateMount}`, { type: 'database' });
    await vault.call('POST', `${lateMount}/config/pg`, dbConfig(env, env.postgres.port));
    await vault.call('POST', `${lateMount}/roles/dyn`, dbRole(env, 'pg', '1m'));
    const fixedAt = Date.now();
    const d = await eventually('credentials once the mount exists', () => creds('late'), 45_000, 250);
    figures.unknownMountRecoveryS = (Date.now() - fixedAt) / 1000;
    assert.equal(await login(d.username ?? '', d.password ?? ''), d.username, 'the credentials log in');
    const ok = await synced('late', () => getVDS('late'), 'True');
    assert.equal(ok.reason, 'Synced');
    await eventFor('late', 'Normal', 'SecretSynced');
  });

  it('role without permission: a 403 condition and Event, recovery once the policy grants the path', async () => {
    // A second identity whose policy lacks the creds path.
    const role = `d-${ns}`;
    await vault.policy(role, 'path "sys/leases/renew" { capabilities = ["update"] }\n');
    await vault.kubernetesRole(role, { serviceAccount: 'app', namespace: ns, policies: [role] });
    await apply(kube, kubernetesVaultAuth(env, ns, 'denied', { role }));
    await apply(
      kube,
      vds(ns, 'denied', {
        vaultAuthRef: 'denied',
        mount,
        path: 'creds/dyn',
        destination: { name: 'denied', create: true },
      }),
    );
    const failed = await synced('denied', () => getVDS('denied'), 'False');
    assert.equal(failed.reason, 'Synced');
    assert.match(failed.message, /403/);
    assert.match(failed.message, /permission denied/);
    assert.ok(failed.message.includes(`${mount}/creds/dyn`), failed.message);
    const event = await eventFor('denied', 'Warning', 'VaultClientError');
    assert.match(event, /403/);
    assert.equal(await secret('denied'), undefined, 'nothing written');

    await sleep(3_000);
    await vault.policy(
      role,
      [
        `path "${mount}/creds/*" { capabilities = ["read"] }`,
        'path "sys/leases/*" { capabilities = ["update"] }',
      ].join('\n'),
    );
    const fixedAt = Date.now();
    const d = await eventually('credentials once permitted', () => creds('denied'), 45_000, 250);
    figures.permissionRecoveryS = (Date.now() - fixedAt) / 1000;
    assert.equal(await login(d.username ?? '', d.password ?? ''), d.username);
    assert.equal((await synced('denied', () => getVDS('denied'), 'True')).reason, 'Synced');
    figures.permissionAttempts = failedAttempts('vaultdynamicsecret', 'denied').length;
  });

  it('database down: the renewal fails with a clear condition, the Secret is untouched, the same lease is renewed when it returns', async () => {
    await apply(
      kube,
      vds(ns, 'db', {
        mount: relayMount,
        path: 'creds/dyn',
        // 30 s lease renewed at 30–40 %: the renewal fails while the database is down and its retries
        // (2.5–7.5 s, then 3.75–11.25 s) still fall well inside the lease.
        renewalPercent: 30,
        destination: { name: 'db', create: true },
      }),
    );
    const first = await eventually('first credentials', () => creds('db'));
    const synced0 = await eventually('status with the lease', async () => {
      const o = await getVDS('db');
      return o.status?.secretLease?.id ? o : undefined;
    });
    const lease = synced0.status?.secretLease.id;
    assert.equal(synced0.status?.secretLease.duration, 30);
    assert.equal(await login(first.username ?? '', first.password ?? ''), first.username);

    await relay.set('refuse');
    const downAt = Date.now();
    // The renewal needs the database (ALTER ROLE … VALID UNTIL): Vault answers 400 "failed to renew
    // entry". That is a failed renewal to retry, not a lease gone, so no new credentials are asked for.
    const failed = await untouchedWhile(
      'db',
      synced('db', () => getVDS('db'), 'False', 20_000),
    );
    figures.databaseDownDetectedS = (Date.now() - downAt) / 1000;
    assert.equal(failed.reason, 'Synced');
    assert.match(failed.message, /sys\/leases\/renew .*400.*failed to renew entry/s);
    assert.match(failed.message, /connect|refused/i);
    const o = await getVDS('db');
    assert.equal(condition(o, 'Ready')?.status, 'False');
    assert.equal(condition(o, 'LeaseRenewal')?.status, 'False');
    assert.equal(condition(o, 'LeaseRenewal')?.reason, 'SecretLeaseRenewalError');
    assert.equal(o.status?.secretLease.id, lease, 'the status keeps the lease');
    assert.match(await eventFor('db', 'Warning', 'SecretLeaseRenewalError'), /failed to renew entry/);

    await relay.set('pass');
    const backAt = Date.now();
    const ok = await untouchedWhile(
      'db',
      eventually(
        'lease renewed after the database returned',
        async () => {
          const v = await getVDS('db');
          const c = condition(v, 'SecretSynced');
          return c?.status === 'True' && v.status?.secretLease.id === lease ? v : undefined;
        },
        30_000,
        250,
      ),
    );
    figures.databaseRecoveryS = (Date.now() - backAt) / 1000;
    figures.databaseAttempts = failedAttempts('vaultdynamicsecret', 'db').length;
    assert.equal(condition(ok, 'SecretSynced')?.reason, 'Synced');
    assert.equal(condition(ok, 'LeaseRenewal')?.status, 'True');
    assert.match(condition(ok, 'LeaseRenewal')?.message ?? '', /lease renewed/);
    const reasons = (await events('db')).map((e) => e.reason);
    assert.ok(!reasons.includes('SecretRotated'), `no new credentials (${reasons.join(', ')})`);
    assert.ok(
      !reasons.includes('VaultClientError'),
      `never asked for new credentials (${reasons.join(', ')})`,
    );
    assert.equal(await login(first.username ?? '', first.password ?? ''), first.username, 'still logs in');
  });
  it('lease revoked behind Ferry’s back: renewal refused, new credentials, Secret updated, rollout restart', async () => {
    await apply(
      kube,
      vds(ns, 'revoked', {
        mount,
        path: 'creds/dyn',
        destination: { name: 'revoked', create: true },
        rolloutRestartTargets: [{ kind: 'Deployment', name: 'web' }],
      }),
    );
    const first = await eventually('first credentials', () => creds('revoked'));
    const lease = await eventually(
      'status with the lease',
      async () => (await getVDS('revoked')).status?.secretLease?.id,
    );
    assert.equal(await restartedAt(kube, Deployments, 'web', ns), undefined, 'no restart on the first sync');

    await vault.call('PUT', 'sys/leases/revoke', { lease_id: lease });
    const revokedAt = Date.now();
    assert.ok(
      (await login(first.username ?? '', first.password ?? '')) instanceof Error,
      'revoked user is gone',
    );

    const second = await eventually(
      'new credentials',
      async () => {
        const d = await creds('revoked');
        return d && d.username !== first.username ? d : undefined;
      },
      30_000,
      250,
    );
    figures.revokedReplacedAfterS = (Date.now() - revokedAt) / 1000;
    assert.equal(await login(second.username ?? '', second.password ?? ''), second.username);
    const o = await eventually('status with a new lease', async () => {
      const v = await getVDS('revoked');
      return v.status?.secretLease.id !== lease && condition(v, 'SecretSynced')?.status === 'True'
        ? v
        : undefined;
    });
    const renewal = condition(o, 'LeaseRenewal');
    assert.equal(renewal?.status, 'True');
    assert.equal(renewal?.reason, 'SecretLeaseRenewal');
    assert.match(renewal?.message ?? '', /LeaseRenewalRefused/);
    assert.match(
      await eventFor('revoked', 'Normal', 'SecretLeaseRenewal', /can no longer be renewed/),
      /lease not found|400/,
    );
    await eventFor('revoked', 'Normal', 'SecretRotated');
    const at = await eventually('Deployment restarted', () => restartedAt(kube, Deployments, 'web', ns));
    assert.ok(Date.parse(at) > 0);
  });

  describe('Vault restarted (a private dev server)', () => {
    let dev: DevVault;
    let bin: string;
    const PKI_ROLE = 'web';

    /** What a restarted dev server lost: Kubernetes auth, the policy and role, database and PKI. */
    const configure = async (d: DevVault): Promise<void> => {
      const admin = new VaultAdmin(env, d);
      try {
        await admin.setup();
        await admin.policy(
          'app',
          [
            'path "db/creds/*" { capabilities = ["read"] }',
            'path "sys/leases/*" { capabilities = ["update"] }',
            `path "pki/issue/${PKI_ROLE}" { capabilities = ["update"] }`,
            'path "pki/revoke" { capabilities = ["update"] }',
          ].join('\n'),
        );
        await admin.kubernetesRole('app', { serviceAccount: 'app', namespace: ns, policies: ['app'] });
        await admin.call('POST', 'sys/mounts/db', { type: 'database' });
        await admin.call('POST', 'db/config/pg', dbConfig(env, env.postgres.port));
        await admin.call('POST', 'db/roles/dyn', dbRole(env, 'pg', '10s'));
        await admin.call('POST', 'sys/mounts/pki', { type: 'pki' });
        await admin.call('POST', 'sys/mounts/pki/tune', { max_lease_ttl: '24h' });
        await admin.call('POST', 'pki/root/generate/internal', {
          common_name: `Ferry faults root ${ns}`,
          key_type: 'ec',
          ttl: '24h',
        });
        await admin.call('POST', `pki/roles/${PKI_ROLE}`, {
          allowed_domains: [DOMAIN],
          allow_subdomains: true,
          key_type: 'ec',
          max_ttl: '1h',
        });
      } finally {
        await admin.close();
      }
    };
    const stopDev = async (): Promise<void> => {
      const exited = dev.proc.exitCode === null ? once(dev.proc, 'exit') : Promise.resolve();
      dev.stop();
      await exited;
    };

    before(async () => {
      const b = devVaultBinary(env.flavor);
      assert.ok(b, `no ${env.flavor} binary`);
      bin = b;
      dev = await startDevVault(bin);
      await configure(dev);
      await apply(kube, {
        apiVersion: API,
        kind: 'VaultConnection',
        metadata: { name: 'dev', namespace: ns },
        spec: { address: dev.addr, skipTLSVerify: false },
      } as Manifest);
      await apply(
        kube,
        kubernetesVaultAuth(env, ns, 'dev', {
          role: 'app',
          connection: 'dev',
          mount: 'kubernetes',
          audiences: null,
        }),
      );
    });
    after(async () => {
      // Let the deletions in the outer `after` revoke against a live server, then stop it.
      for (const [rt, name] of [
        [VaultDynamicSecrets, 'restart'],
        [VaultPKISecrets, 'cert'],
      ] as const)
        await kube.delete(rt, name, ns).catch(() => {});
      await eventually(
        'private-Vault resources gone',
        async () =>
          !(await kube.getIfExists(VaultDynamicSecrets, 'restart', ns)) &&
          !(await kube.getIfExists(VaultPKISecrets, 'cert', ns)),
        20_000,
      ).catch(() => {});
      if (dev) await stopDev();
    });

    it('VaultDynamicSecret and VaultPKISecret: destinations untouched while Vault is down, sync resumes after it is back', async () => {
      await apply(
        kube,
        vds(ns, 'restart', {
          vaultAuthRef: 'dev',
          mount: 'db',
          path: 'creds/dyn',
          destination: { name: 'restart', create: true },
        }),
      );
      await apply(kube, {
        apiVersion: API,
        kind: 'VaultPKISecret',
        metadata: { name: 'cert', namespace: ns },
        spec: {
          vaultAuthRef: 'dev',
          mount: 'pki',
          role: PKI_ROLE,
          commonName: `cert.${DOMAIN}`,
          ttl: '40s',
          // Renewal window opens ~10 s after issue, so the outage below hits a renewal.
          expiryOffset: '30s',
          destination: { name: 'cert', create: true, type: 'kubernetes.io/tls' },
        },
      } as Manifest);
      const first = await eventually('first credentials', () => creds('restart'));
      await eventually(
        'status with the lease',
        async () => (await getVDS('restart')).status?.secretLease?.id,
      );
      const cert0 = await eventually('first certificate', async () => {
        const o = await getVPS('cert');
        return o.status?.valid && o.status.serialNumber ? o.status.serialNumber : undefined;
      });
      const operatorPid = await operatorIncarnation(env);

      await stopDev();
      const downAt = Date.now();
      const [vdsDown, vpsDown] = await Promise.all([
        untouchedWhile(
          'restart',
          synced('restart', () => getVDS('restart'), 'False', 20_000),
        ),
        untouchedWhile(
          'cert',
          synced('cert', () => getVPS('cert'), 'False', 30_000),
        ),
      ]);
      figures.vaultDownDetectedS = (Date.now() - downAt) / 1000;
      for (const c of [vdsDown, vpsDown]) {
        assert.equal(c.reason, 'Synced');
        assert.match(c.message, /ECONNREFUSED|connect|refused/i, c.message);
      }
      const vdsWarnings = (await events('restart')).filter((e) => e.type === 'Warning').map((e) => e.reason);
      assert.ok(
        vdsWarnings.includes('SecretLeaseRenewalError') || vdsWarnings.includes('VaultClientError'),
        `VDS Warning Event (${vdsWarnings.join(', ')})`,
      );
      assert.match(await eventFor('cert', 'Warning', 'VaultClientError'), /ECONNREFUSED|connect|refused/i);
      const vpsStatus = (await getVPS('cert')).status;
      assert.equal(vpsStatus?.valid, false);
      assert.match(vpsStatus?.error ?? '', /ECONNREFUSED|connect|refused/i);
      assert.equal(vpsStatus?.serialNumber, cert0, 'the status still names the certificate in the Secret');
      // Still untouched a few seconds later (further failed attempts).
      await Promise.all([untouchedWhile('restart', sleep(3_000)), untouchedWhile('cert', sleep(3_000))]);

      dev = await startDevVault(bin, { port: Number(new URL(dev.addr).port) });
      await configure(dev);
      const backAt = Date.now();
      const d = await eventually(
        'new credentials from the restarted Vault',
        async () => {
          const c = await creds('restart');
          return c && c.username !== first.username ? c : undefined;
        },
        60_000,
        250,
      );
      figures.vaultRestartRecoveryS = { vds: (Date.now() - backAt) / 1000 };
      assert.equal(await login(d.username ?? '', d.password ?? ''), d.username);
      assert.equal((await synced('restart', () => getVDS('restart'), 'True')).reason, 'Synced');
      const cert1 = await eventually(
        'a certificate from the restarted Vault',
        async () => {
          const o = await getVPS('cert');
          const s = o.status;
          return s?.valid && s.serialNumber && s.serialNumber !== cert0 ? o : undefined;
        },
        60_000,
        250,
      );
      (figures.vaultRestartRecoveryS as Record<string, number>).vps = (Date.now() - backAt) / 1000;
      assert.equal(condition(cert1, 'SecretSynced')?.status, 'True');
      const tls = decodeData((await secret('cert'))?.data);
      assert.equal(tls.serial_number, cert1.status?.serialNumber);
      assert.ok(tls['tls.crt']?.includes('BEGIN CERTIFICATE') && tls['tls.key']);
      assert.equal(await operatorIncarnation(env), operatorPid, 'no operator restart');
      figures.vaultRestartFailedAttempts = {
        vds: failedAttempts('vaultdynamicsecret', 'restart').length,
        vps: failedAttempts('vaultpkisecret', 'cert').length,
      };
    });
  });
});
