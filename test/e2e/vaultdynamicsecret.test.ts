// VaultDynamicSecret end to end against the real database secrets engine and the real PostgreSQL of
// the stack: every credential Ferry writes is used to log in to PostgreSQL; renewal keeps the same
// user; truncation by max_ttl brings a new user and the old lease is revoked (its password stops
// working); static credentials change only when Vault rotated them; deleting the resources leaves no
// lease under the role; a Deployment restarts on rotation but not on the first sync.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { VaultDynamicSecrets } from '../../src/api/resources.ts';
import type { VaultDynamicSecret } from '../../src/api/v1beta1/vaultdynamicsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  condition,
  decodeData,
  deployment,
  eventually,
  pgLogin,
  restartedAt,
  tamper,
  tenant,
  VaultAdmin,
  vds,
} from '../../stack/lib/fixtures.ts';
import { logLines, operatorLog, type StackEnv, uniqueName, useStack } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('VaultDynamicSecret (database engine, PostgreSQL)', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let mount: string;
  let staticUser: string;
  /** Every password Ferry wrote: none may show up in logs, Events or status. */
  const secrets = new Set<string>();
  const figures: Record<string, unknown> = {};

  const login = (user: string, password: string): Promise<string | Error> => pgLogin(env, user, password);

  const creds = async (name: string): Promise<Record<string, string> | undefined> => {
    const s = await kube.getIfExists<Secret>(Secrets, name, ns);
    if (!s) return undefined;
    const d = decodeData(s.data);
    if (d.password) secrets.add(d.password);
    return d;
  };
  const get = (name: string) => kube.get<VaultDynamicSecret>(VaultDynamicSecrets, name, ns);
  /** Lease IDs under the dynamic role (LIST sys/leases/lookup/<mount>/creds/dyn). */
  const leases = async (): Promise<string[]> => {
    const res = await vault.call('GET', `sys/leases/lookup/${mount}/creds/dyn?list=true`);
    return ((res?.data as { keys?: string[] } | undefined)?.keys ?? []).map((k) => `${mount}/creds/dyn/${k}`);
  };
  const leaseAlive = async (id: string): Promise<boolean> => {
    try {
      await vault.call('PUT', 'sys/leases/lookup', { lease_id: id });
      return true;
    } catch {
      return false;
    }
  };

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('vds');
    mount = `db-${ns}`;
    staticUser = `st_${ns.replace(/-/g, '_')}`;
    await tenant(env, kube, vault, ns);
    await vault.policy(
      `t-${ns}`,
      [
        `path "${mount}/creds/*" { capabilities = ["read", "update"] }`,
        `path "${mount}/static-creds/*" { capabilities = ["read"] }`,
        'path "sys/leases/renew" { capabilities = ["update"] }',
        'path "sys/leases/revoke" { capabilities = ["update"] }',
      ].join('\n'),
    );
    await vault.postgresEngine(mount, { defaultTtl: '10s', maxTtl: '30s' });
    const admin = await (async () => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: env.postgres.port,
        user: env.postgres.user,
        password: env.postgres.password,
        database: env.postgres.database,
      });
      await c.connect();
      return c;
    })();
    await admin.query(`CREATE ROLE "${staticUser}" WITH LOGIN PASSWORD 'initial-not-used'`);
    await admin.end();
    await vault.call('POST', `${mount}/static-roles/st`, {
      db_name: 'pg',
      username: staticUser,
      rotation_period: '5s',
    });
    await apply(kube, deployment(ns, 'web', 0));
  });

  after(async () => {
    process.stderr.write(`[vds e2e] figures ${JSON.stringify(figures)}\n`);
    await assertNoLeak(env, kube, ns, VaultDynamicSecrets, secrets, 'a password');
    await vault.call('DELETE', `sys/mounts/${mount}`).catch(() => {});
    await vault.close();
    await kube.close();
  });

  it('issues working credentials, renews the lease, replaces truncated credentials and revokes the old lease', async () => {
    await apply(
      kube,
      vds(ns, 'dyn', {
        mount,
        path: 'creds/dyn',
        destination: { name: 'dyn-creds', create: true },
        rolloutRestartTargets: [{ kind: 'Deployment', name: 'web' }],
      }),
    );
    const first = await eventually('first credentials', () => creds('dyn-creds'));
    assert.ok(first.username && first.password, 'username and password keys');
    assert.ok(first._raw, '_raw key');
    assert.equal(await login(first.username, first.password), first.username, 'first credentials log in');
    const synced = await eventually('status with the lease', async () => {
      const o = await get('dyn');
      return o.status?.secretLease?.id && o.status.lastGeneration === o.metadata.generation ? o : undefined;
    });
    const lease1 = synced.status?.secretLease;
    assert.equal(lease1?.duration, 10);
    assert.equal(lease1?.renewable, true);
    assert.ok(lease1?.id.startsWith(`${mount}/creds/dyn/`));
    assert.ok(synced.metadata.finalizers?.includes('vaultdynamicsecret.secrets.hashicorp.com/finalizer'));
    const renewedAt0 = synced.status?.lastRenewalTime ?? 0;

    // Renewal: same lease, same user, lastRenewalTime moves.
    const renewed = await eventually(
      'a lease renewal',
      async () => {
        const o = await get('dyn');
        return o.status?.secretLease.id === lease1?.id && (o.status?.lastRenewalTime ?? 0) > renewedAt0
          ? o
          : undefined;
      },
      15_000,
    );
    assert.equal((await creds('dyn-creds'))?.username, first.username, 'renewal keeps the user');
    assert.equal(await login(first.username, first.password), first.username, 'still logs in after renewal');
    assert.equal(condition(renewed, 'LeaseRenewal')?.status, 'True');
    // Not restarted on the first sync nor on a renewal.
    assert.equal(await restartedAt(kube, Deployments, 'web', ns), undefined, 'no restart on first sync');

    // Truncation near max_ttl (30 s): new credentials, old lease revoked.
    const second = await eventually(
      'credentials replaced at max_ttl',
      async () => {
        const d = await creds('dyn-creds');
        return d && d.username !== first.username ? d : undefined;
      },
      40_000,
      250,
    );
    assert.equal(
      await login(second.username ?? '', second.password ?? ''),
      second.username,
      'new credentials log in',
    );
    await eventually('old lease revoked', async () => !(await leaseAlive(lease1?.id ?? '')), 10_000);
    const old = await login(first.username, first.password);
    assert.ok(old instanceof Error, 'the replaced password no longer logs in');
    const rotated = await eventually('status with the new lease', async () => {
      const o = await get('dyn');
      return o.status?.secretLease.id !== lease1?.id ? o : undefined;
    });
    assert.ok(rotated.status?.secretLease.id);
    // Rotation restarts the Deployment.
    const restarted = await eventually('Deployment restarted after rotation', () =>
      restartedAt(kube, Deployments, 'web', ns),
    );
    assert.ok(Date.parse(restarted) > 0);

    // Renewal timing as the operator logged it (planned horizon vs actual renewal).
    if (env.operator) {
      const late = logLines(operatorLog(env))
        .filter((l) => l.msg === 'lease renewed' && l.namespace === ns)
        .map((l) => Number(l.lateMs));
      assert.ok(late.length > 0, 'renewals logged');
      figures.renewalLateMs = { count: late.length, max: Math.max(...late), min: Math.min(...late) };
      assert.ok(
        Math.max(...late) < 2_000,
        `renewals happen within 2 s of their horizon (${late.join(', ')} ms)`,
      );
    }

    // Someone edits the destination (renewals did not read it: the watch showed it untouched): the
    // edit is seen, and working credentials are written again.
    await tamper(kube, ns, 'dyn-creds', 'password');
    const healed = await eventually(
      'drift replaced with working credentials',
      async () => {
        const d = await creds('dyn-creds');
        return d?.password && d.password !== 'tampered' ? d : undefined;
      },
      15_000,
    );
    assert.equal(await login(healed.username ?? '', healed.password ?? ''), healed.username);
  });

  it('static credentials: the Secret changes only when Vault rotated the password', async () => {
    await apply(
      kube,
      vds(ns, 'static', {
        mount,
        path: 'static-creds/st',
        allowStaticCreds: true,
        destination: { name: 'static-creds', create: true },
      }),
    );
    const first = await eventually('static credentials', () => creds('static-creds'));
    assert.equal(first.username, staticUser);
    assert.ok(first.last_vault_rotation && first.rotation_period === '5' && first.ttl !== undefined);
    // Vault rotates every 5 s, so the password read a moment ago may already be replaced: log in with
    // what the Secret holds now.
    await eventually(
      'static credentials log in',
      async () => {
        const d = await creds('static-creds');
        return d && (await login(staticUser, d.password ?? '')) === staticUser;
      },
      10_000,
    );
    const o = await eventually('static status', async () => {
      const v = await get('static');
      return v.status?.staticCredsMetaData ? v : undefined;
    });
    assert.equal(o.status?.secretLease.id, '');
    assert.equal(o.status?.staticCredsMetaData?.rotationPeriod, 5);

    // Sample the Secret for ~13 s: every write carries a new rotation and a new password.
    const seen: { rv: string; password: string; rotation: string }[] = [];
    const until = Date.now() + 13_000;
    while (Date.now() < until) {
      const s = await kube.get<Secret>(Secrets, 'static-creds', ns);
      const d = decodeData(s.data);
      if (d.password) secrets.add(d.password);
      if (seen.at(-1)?.rv !== s.metadata.resourceVersion)
        seen.push({
          rv: s.metadata.resourceVersion ?? '',
          password: d.password ?? '',
          rotation: d.last_vault_rotation ?? '',
        });
      await sleep(200);
    }
    assert.ok(seen.length >= 2, `the Secret followed at least one rotation (${seen.length} versions)`);
    for (let i = 1; i < seen.length; i++) {
      assert.notEqual(seen[i]?.rotation, seen[i - 1]?.rotation, 'a Secret write without a Vault rotation');
      assert.notEqual(seen[i]?.password, seen[i - 1]?.password, 'a Secret write without a new password');
    }
    figures.staticSecretVersions = seen.length;
    const latest = await eventually(
      'latest static password works',
      async () => {
        const d = await creds('static-creds');
        return d && (await login(staticUser, d.password ?? '')) === staticUser ? d : undefined;
      },
      10_000,
    );
    assert.ok(latest.password);
  });

  it('deleting the resources revokes every lease they hold', async () => {
    await apply(
      kube,
      vds(ns, 'dyn2', { mount, path: 'creds/dyn', destination: { name: 'dyn2-creds', create: true } }),
    );
    await eventually('second resource synced', async () => (await get('dyn2')).status?.secretLease?.id);
    const before = await leases();
    assert.ok(before.length >= 2, `leases held before deletion (${before.length})`);
    for (const name of ['dyn', 'dyn2', 'static']) await kube.delete(VaultDynamicSecrets, name, ns);
    await eventually(
      'resources gone (finalizers released)',
      async () =>
        (await kube.list<VaultDynamicSecret>(VaultDynamicSecrets, { namespace: ns })).items.length === 0,
      20_000,
    );
    const afterDeletion = await leases();
    figures.leases = { before: before.length, after: afterDeletion.length };
    assert.deepEqual(afterDeletion, [], 'no lease left under the role');
  });
});
