// Chaos (issue 14): a mixed workload on the real stack — VaultStaticSecrets whose values change all
// the time, VaultDynamicSecrets on PostgreSQL, a VaultPKISecret, and a pod on the real node with a
// Ferry CSI volume — while faults are injected one after another, in an order drawn from a seeded
// PRNG (FERRY_CHAOS_SEED, printed; set it to replay an order). Faults:
// - Vault refused, reset, black-holed, slow: the tenant's VaultConnection points at a TCP fault
//   proxy in this test (the fault injector; operator and CSI driver run with hostNetwork and reach it
//   on loopback). Refused closes the listener; reset answers each connection with a RST; black hole
//   accepts and never answers (connections open during it stay dead); slow delays every chunk.
//   The connection's timeout is 5 s so a black hole ends in a timeout within the test's bounds.
// - PostgreSQL down: Vault's database mount reaches PostgreSQL through a second proxy, refused.
// - operator killed: its pod deleted with no grace period (SIGKILL) right after a burst of changes.
// - leader lease lost: the Lease is taken over by a phantom holder that never renews; the operator
//   must notice within its renew deadline and exit (as controller-runtime), its successor container
//   waits out the phantom's lease and takes over.
// - API server and etcd restarted: the stack's kube-apiserver (SIGKILL) or etcd (SIGTERM) process
//   stopped and started again with the same port and data (restartStackProcess).
// Invariants, checked during and after each fault: no destination Secret is ever deleted or blanked
// (a watch records every event of the namespace's Secrets for the whole test, resumed across the API
// server restart), the CSI volume's file never disappears or empties (read on the node every 500 ms),
// a condition and a Warning Event name the fault while it lasts (Vault and database faults),
// everything converges after it clears (each VaultStaticSecret holds the latest value, dynamic
// credentials log in to PostgreSQL, the certificate is valid, every resource SecretSynced for its
// generation), the operator's pod did not restart unless the fault was killing it, no canary value
// reached the operator's or the CSI driver's log, an Event or a status, and no database lease is left
// once the VaultDynamicSecrets are deleted. Serial: it kills the operator and
// restarts the API server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { VaultDynamicSecrets, VaultPKISecrets, VaultStaticSecrets } from '../../../src/api/resources.ts';
import { LEADER_ELECTION_ID } from '../../../src/consts/labels.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Events, Leases, Namespaces, Pods, Secrets } from '../../../src/k8s/resources.ts';
import type { CoreEvent, KubeObject, Secret } from '../../../src/k8s/types.ts';
import { seededRandom } from '../../../src/vault/leases.ts';
import { CSI_AUDIENCE, csiSecretsManifest } from '../../../stack/lib/csi.ts';
import { FaultProxy } from '../../../stack/lib/fault-proxy.ts';
import {
  adminClient,
  apply,
  assertNotIn,
  canary,
  condition,
  decodeData,
  ensureNamespace,
  eventually,
  kubernetesVaultAuth,
  type Manifest,
  pgConnection,
  pgLogin,
  pgRole,
  synced,
  VaultAdmin,
  vds,
  vps,
  vss,
} from '../../../stack/lib/fixtures.ts';
import { csiTargetPath, type NodeEnv, podLogs } from '../../../stack/lib/node.ts';
import { logLines, OperatorLogs } from '../../../stack/lib/operator-log.ts';
import { httpOk } from '../../../stack/lib/proc.ts';
import { apiServerReady, restartOperator, restartStackProcess } from '../../../stack/lib/stack.ts';
import { type ChartStackEnv, operatorIncarnation, uniqueName, useChartStack } from '../harness.ts';

const SEED = Number(process.env.FERRY_CHAOS_SEED ?? Date.now() % 2 ** 31);
const STATIC = ['s0', 's1', 's2', 's3'];
const DYNAMIC = ['d0', 'd1'];
const PKI_NAME = 'p0';
const CSI_FILE = 'static_secret_0_password';
const log = (m: string) => process.stderr.write(`[chaos e2e] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Fault {
  name: string;
  /** The operator may restart (its pod or container) because of this fault. */
  restarts?: boolean;
  /** Decided once the fault is over, when `restarts` depends on how it went. */
  mayRestart?: () => boolean;
  inject(): Promise<void>;
  /** While the fault lasts: waits for its evidence (a condition, an Event, a log line); returns it. */
  during(since: number): Promise<string>;
  clear(): Promise<void>;
}

describe(`chaos: faults under a mixed workload (seed ${SEED})`, { timeout: 480_000 }, () => {
  let env: ChartStackEnv;
  let node: NodeEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let db: string;
  let pki: string;
  let vaultProxy: FaultProxy;
  let pgProxy: FaultProxy;
  let csiTarget = '';
  const canaries: string[] = [];
  const latest = new Map<string, string>();
  const destinations = new Set([...STATIC, ...DYNAMIC, PKI_NAME]);
  const violations: string[] = [];
  const secretEvents: string[] = [];
  const figures: Record<string, unknown> = { seed: SEED };
  const watchStop = new AbortController();
  let watching: Promise<void> | undefined;
  let csiSampler: ReturnType<typeof setInterval> | undefined;
  let churnTimer: ReturnType<typeof setInterval> | undefined;
  let churnPaused = false;
  /** The operator's log, pods that a fault deleted included. */
  let operatorLogs: OperatorLogs;
  let peerDownMs = 0;
  let apiDownMs = 0;
  const t0 = Date.now();

  /** Every Secret event of the namespace, for the whole test; resumes after the stream ends. */
  async function watchSecrets(): Promise<void> {
    let rv = (await kube.list<Secret>(Secrets, { namespace: ns })).metadata?.resourceVersion;
    while (!watchStop.signal.aborted) {
      try {
        for await (const ev of kube.watch<Secret>(
          Secrets,
          {
            namespace: ns,
            ...(rv ? { resourceVersion: rv } : {}),
            allowWatchBookmarks: true,
            timeoutSeconds: 30,
          },
          watchStop.signal,
        )) {
          if (ev.type === 'ERROR') {
            rv = undefined; // expired: a relist below compares what is there
            break;
          }
          const o = ev.object;
          rv = o.metadata?.resourceVersion ?? rv;
          if (ev.type === 'BOOKMARK') continue;
          const name = o.metadata.name ?? '';
          const keys = Object.keys(o.data ?? {}).length;
          secretEvents.push(`${Date.now() - t0}ms ${ev.type} ${name} keys=${keys}`);
          if (!destinations.has(name)) continue;
          if (ev.type === 'DELETED') violations.push(`destination ${name} DELETED`);
          else if (keys === 0) violations.push(`destination ${name} ${ev.type} with no data`);
        }
      } catch (err) {
        if (watchStop.signal.aborted) return;
        log(`secret watch ended (${String(err).slice(0, 120)}); resuming`);
        await sleep(500);
      }
      if (rv === undefined && !watchStop.signal.aborted) {
        const list = await kube.list<Secret>(Secrets, { namespace: ns }).catch(() => undefined);
        if (!list) continue;
        rv = list.metadata?.resourceVersion;
        const there = new Set(list.items.map((s) => s.metadata.name));
        for (const d of destinations)
          if (!there.has(d)) violations.push(`destination ${d} missing after a watch gap`);
      }
    }
  }

  const list = async <T extends KubeObject>(rt: Parameters<KubeClient['list']>[0]) =>
    (await kube.list<T>(rt, { namespace: ns })).items;
  type Status = { status?: { conditions?: { type: string; status: string; message: string }[] } };

  /** A condition of any resource in the namespace whose message matches `re`. */
  async function conditionMatching(
    re: RegExp,
    types = ['SecretSynced', 'LeaseRenewal'],
  ): Promise<string | undefined> {
    for (const rt of [VaultStaticSecrets, VaultDynamicSecrets, VaultPKISecrets]) {
      for (const o of await list<KubeObject & Status>(rt)) {
        for (const t of types) {
          const c = condition(o, t);
          if (c?.status === 'False' && re.test(c.message)) return `${o.metadata.name} ${t}: ${c.message}`;
        }
      }
    }
    return undefined;
  }
  async function warningSince(since: number, re: RegExp): Promise<string | undefined> {
    const evs = (await kube.list<CoreEvent>(Events, { namespace: ns })).items;
    const e = evs.find(
      (x) =>
        x.type === 'Warning' &&
        re.test(x.message ?? '') &&
        Date.parse(x.lastTimestamp ?? x.eventTime ?? x.metadata.creationTimestamp ?? '') >= since - 1000,
    );
    return e ? `${e.reason}: ${e.message}` : undefined;
  }
  /** The fault is named by a False condition and a Warning Event, both matching `re`. */
  const named =
    (re: RegExp, timeoutMs = 30_000, types?: string[]) =>
    async (since: number) => {
      const c = await eventually(
        `a condition matching ${re}`,
        () => conditionMatching(re, types),
        timeoutMs,
        250,
      );
      const e = await eventually(
        `a Warning Event matching ${re}`,
        () => warningSince(since, re),
        15_000,
        250,
      );
      return `${c} | ${e}`;
    };

  async function changeValue(name: string): Promise<void> {
    const v = canary(`chaos-${name}`, canaries);
    latest.set(name, v);
    await vault.kvPut('kvv2', `${ns}/${name}`, { password: v });
  }

  /** Everything converged: each resource synced for its generation, static values current,
   * credentials that log in, a valid certificate, the CSI file present. */
  async function converged(what: string, timeoutMs = 90_000): Promise<number> {
    const start = Date.now();
    await eventually(
      `${what}: converged`,
      async () => {
        for (const rt of [VaultStaticSecrets, VaultDynamicSecrets, VaultPKISecrets]) {
          const items = await list<KubeObject & Status>(rt);
          const bad = items.filter((o) => !synced(o as Parameters<typeof synced>[0]));
          if (bad.length > 0) throw new Error(`${bad.map((o) => o.metadata.name).join(',')} not synced`);
        }
        const secrets = new Map(
          (await list<Secret>(Secrets)).map((s) => [s.metadata.name ?? '', decodeData(s.data)]),
        );
        for (const s of STATIC) {
          if (secrets.get(s)?.password !== latest.get(s)) throw new Error(`${s} not current`);
        }
        const cert = secrets.get(PKI_NAME);
        if (!cert?.['tls.crt']?.includes('BEGIN CERTIFICATE')) throw new Error('no certificate');
        for (const d of DYNAMIC) {
          const c = secrets.get(d);
          if (!c?.password) throw new Error(`${d} has no password`);
          canaries.push(c.password);
        }
        return true;
      },
      timeoutMs,
      500,
    );
    // The credentials in the Secrets log in (after a database or Vault fault they may be new ones).
    const secrets = new Map(
      (await list<Secret>(Secrets)).map((s) => [s.metadata.name ?? '', decodeData(s.data)]),
    );
    for (const d of DYNAMIC) {
      const c = secrets.get(d) ?? {};
      await eventually(
        `${what}: ${d} logs in`,
        async () => (await pgLogin(env, c.username ?? '', c.password ?? '')) === c.username,
        20_000,
        500,
      );
    }
    return Date.now() - start;
  }

  const apiReady = () => apiServerReady(env);

  /** Restarts a process of the stack (restartStackProcess); apiDownMs: until the API is ready again. */
  async function restartPeer(name: string, signal: NodeJS.Signals, ready: () => Promise<boolean>) {
    operatorLogs.keep();
    const stoppedAt = Date.now();
    peerDownMs = await restartStackProcess(name, ready, log, signal);
    await eventually('the API server ready', () => apiReady().catch(() => false), 60_000, 100);
    apiDownMs = Date.now() - stoppedAt;
  }
  /** The leader renews every 2 s and gives up 10 s into a failed renewal: only an API outage of
   * about 10 s or more ends its leadership (and the process, as controller-runtime's). Below 8 s
   * (2 s left for how the outage is measured) it must ride it out. */
  const outageMayRestart = () => apiDownMs >= 8_000;

  const leaseThief: Fault = {
    name: 'leader lease lost',
    restarts: true,
    async inject() {
      const lease = await kube.get<KubeObject & { spec?: Record<string, unknown> }>(
        Leases,
        LEADER_ELECTION_ID,
        env.operatorNamespace,
      );
      const now = new Date().toISOString().replace('Z', '000Z');
      await kube.replace(Leases, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: 'chaos-phantom', renewTime: now, leaseDurationSeconds: 15 },
      });
    },
    async during(since) {
      // Only this fault's: an earlier container of the same pod may have logged it before.
      return eventually(
        'the operator noticed the lost lease',
        async () => {
          const line = logLines(operatorLogs.text(), since).find((l) => /leadership lost/.test(l.msg ?? ''));
          return line ? `log: ${line.msg} after ${Date.now() - since} ms` : undefined;
        },
        30_000,
        500,
      );
    },
    async clear() {
      // The phantom never renews: the operator's successor takes over once its lease expires.
      await eventually(
        'a new leader',
        async () => {
          const l = await kube.get<KubeObject & { spec?: { holderIdentity?: string } }>(
            Leases,
            LEADER_ELECTION_ID,
            env.operatorNamespace,
          );
          const h = l.spec?.holderIdentity ?? '';
          return h !== '' && h !== 'chaos-phantom';
        },
        90_000,
        500,
      );
    },
  };

  const faults: Fault[] = [
    {
      name: 'Vault unreachable (connection refused)',
      inject: () => vaultProxy.set('refuse'),
      during: named(/ECONNREFUSED|connection refused/i),
      clear: () => vaultProxy.set('pass'),
    },
    {
      name: 'Vault resets connections',
      inject: () => vaultProxy.set('reset'),
      during: named(/ECONNRESET|socket hang up|other side closed|reset/i),
      clear: () => vaultProxy.set('pass'),
    },
    {
      name: 'Vault black-holed (accepts, never answers)',
      inject: () => vaultProxy.set('blackhole'),
      during: named(/time(d)?[ -]?out/i, 40_000),
      clear: () => vaultProxy.set('pass'),
    },
    {
      name: 'Vault slow (1.5 s per chunk each way)',
      inject: () => vaultProxy.set('slow'),
      async during() {
        // Slow, not broken: a new value still arrives while it lasts.
        const name = STATIC[0] as string;
        await changeValue(name);
        const started = Date.now();
        await eventually(
          'a value delivered through the slow link',
          async () =>
            decodeData((await kube.get<Secret>(Secrets, name, ns)).data).password === latest.get(name),
          45_000,
          250,
        );
        return `value delivered in ${Date.now() - started} ms while slow`;
      },
      clear: () => vaultProxy.set('pass'),
    },
    {
      name: 'PostgreSQL down',
      inject: () => pgProxy.set('refuse'),
      during: named(/connect|refused|failed to renew|database/i, 40_000),
      clear: () => pgProxy.set('pass'),
    },
    {
      name: 'operator killed (SIGKILL) mid-sync',
      restarts: true,
      async inject() {
        // A burst of work in flight when the pod dies.
        await Promise.all(STATIC.map(changeValue));
        await sleep(300);
        operatorLogs.keep();
        await restartOperator(log, 'SIGKILL');
      },
      during: async () => 'operator pod deleted with no grace period and replaced',
      clear: async () => {},
    },
    leaseThief,
    {
      name: 'API server killed (SIGKILL) and restarted',
      // See outageMayRestart: a short outage the operator must ride out.
      inject: () => restartPeer('kube-apiserver', 'SIGKILL', apiReady),
      during: async () => `${peerDownMs} ms to restart, API unavailable ${apiDownMs} ms`,
      clear: async () => {},
      mayRestart: outageMayRestart,
    },
    {
      name: 'etcd restarted',
      // The API server answers errors while etcd is away, and some more until it reconnects.
      inject: () => restartPeer('etcd', 'SIGTERM', () => httpOk(`${env.etcd}/health`)),
      during: async () => `${peerDownMs} ms to restart, API unavailable ${apiDownMs} ms`,
      clear: async () => {},
      mayRestart: outageMayRestart,
    },
  ];

  before(async () => {
    env = await useChartStack('the chaos suite');
    node = env.node;
    operatorLogs = new OperatorLogs(env);
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('chaos');
    db = `db-${ns}`;
    pki = `pki-${ns}`;
    log(`seed ${SEED} (FERRY_CHAOS_SEED=${SEED} replays this order)`);
    await ensureNamespace(kube, ns, ['app', 'web']);
    watching = watchSecrets();
    vaultProxy = new FaultProxy(Number(new URL(env.vaultAddr).port));
    await vaultProxy.set('pass');
    pgProxy = new FaultProxy(env.postgres.port);
    await pgProxy.set('pass');
    await vault.policy(
      `t-${ns}`,
      [
        `path "kvv2/data/${ns}/*" { capabilities = ["read"] }`,
        `path "${db}/creds/dyn" { capabilities = ["read"] }`,
        `path "${pki}/issue/web" { capabilities = ["update"] }`,
        'path "sys/leases/*" { capabilities = ["update"] }',
      ].join('\n'),
    );
    await vault.kubernetesRole(`t-${ns}`, { serviceAccount: 'app', namespace: ns, policies: [`t-${ns}`] });
    await vault.kubernetesRole(`w-${ns}`, { serviceAccount: 'web', namespace: ns, policies: [`t-${ns}`] });
    await vault.call('POST', `sys/mounts/${db}`, { type: 'database' });
    await vault.call('POST', `${db}/config/pg`, {
      ...pgConnection(env, pgProxy.port),
      max_connection_lifetime: '5s',
    });
    await vault.call('POST', `${db}/roles/dyn`, pgRole(env, 'pg', '20s', '1h'));
    await vault.pkiEngine(pki, { allowed_domains: ['chaos.test'], allow_subdomains: true, max_ttl: '1h' });
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'chaos', namespace: ns },
      spec: { address: `http://127.0.0.1:${vaultProxy.port}`, timeout: '5s' },
    } as Manifest);
    await apply(kube, kubernetesVaultAuth(env, ns, 'auth', { role: `t-${ns}`, connection: 'chaos' }));
    await apply(
      kube,
      kubernetesVaultAuth(env, ns, 'web', { role: `w-${ns}`, connection: 'chaos', serviceAccount: 'web' }),
    );
    for (const s of [...STATIC, 'csi']) await changeValue(s);
    for (const s of STATIC)
      await apply(
        kube,
        vss(ns, s, {
          type: 'kv-v2',
          mount: 'kvv2',
          path: `${ns}/${s}`,
          refreshAfter: '2s',
          destination: { name: s, create: true },
        }),
      );
    for (const d of DYNAMIC)
      await apply(kube, vds(ns, d, { mount: db, path: 'creds/dyn', destination: { name: d, create: true } }));
    await apply(
      kube,
      vps(ns, PKI_NAME, {
        mount: pki,
        role: 'web',
        commonName: `${PKI_NAME}.chaos.test`,
        ttl: '60s',
        expiryOffset: '45s',
        destination: { name: PKI_NAME, create: true, type: 'kubernetes.io/tls' },
      }),
    );
    await apply(
      kube,
      csiSecretsManifest(ns, 'files', {
        vaultAuthRef: { name: 'web' },
        accessControl: { serviceAccountPattern: '^web$', namespacePatterns: [ns] },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/csi`, type: 'kv-v2' }] },
      }),
    );
    const pod = (await apply(kube, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: ns },
      spec: {
        serviceAccountName: 'web',
        terminationGracePeriodSeconds: 1,
        securityContext: { runAsUser: 65532, runAsGroup: 65532, fsGroup: 2000 },
        containers: [
          {
            name: 'web',
            image: node.images.test,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', 'sleep 3600'],
            volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }],
          },
        ],
        volumes: [
          {
            name: 'secrets',
            csi: { driver: CSI_AUDIENCE, readOnly: true, volumeAttributes: { csiSecretsName: 'files' } },
          },
        ],
      },
    } as Manifest)) as KubeObject;
    csiTarget = csiTargetPath(node, pod.metadata.uid ?? '', 'secrets');
    const csiValue = latest.get('csi') ?? '';
    await eventually(
      'the CSI file on the node',
      async () => {
        try {
          return readFileSync(`${csiTarget}/${CSI_FILE}`, 'utf8') === csiValue;
        } catch {
          return false;
        }
      },
      90_000,
      500,
    );
    csiSampler = setInterval(() => {
      try {
        if (readFileSync(`${csiTarget}/${CSI_FILE}`, 'utf8') !== csiValue)
          violations.push('the CSI file changed or emptied');
      } catch (err) {
        violations.push(`the CSI file is gone: ${String(err).slice(0, 80)}`);
      }
    }, 500);
    figures.setupToFirstConvergenceMs = await converged('initial sync');
    // Values keep changing all through the faults.
    let k = 0;
    churnTimer = setInterval(() => {
      if (churnPaused) return;
      void changeValue(STATIC[k++ % STATIC.length] as string).catch(() => {});
    }, 1500);
    log(`set up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    clearInterval(churnTimer);
    clearInterval(csiSampler);
    watchStop.abort();
    await watching?.catch(() => {});
    figures.totalMs = Date.now() - t0;
    log(`figures ${JSON.stringify(figures)}`);
    if (violations.length) log(`secret events:\n${secretEvents.join('\n')}`);
    await vaultProxy?.set('pass').catch(() => {});
    await pgProxy?.set('pass').catch(() => {});
    await kube?.delete(Pods, 'web', ns, { gracePeriodSeconds: 0 }).catch(() => {});
    await kube?.delete(Namespaces, ns).catch(() => {});
    await eventually(
      'the chaos namespace gone (leases revoked while the proxies run)',
      async () => !(await kube.getIfExists(Namespaces, ns)),
      60_000,
      1000,
    ).catch((err: unknown) => log(String(err)));
    await vaultProxy?.close();
    await pgProxy?.close();
    for (const m of [db, pki]) await vault?.call('DELETE', `sys/mounts/${m}`).catch(() => {});
    await vault?.close();
    await kube?.close();
  });

  it('every fault, in a seeded random order: destinations never deleted or blanked, the fault named while it lasts, convergence after', async () => {
    const random = seededRandom(String(SEED)); // replayable with FERRY_CHAOS_SEED
    const order = faults
      .map((f) => ({ f, r: random() }))
      .sort((a, b) => a.r - b.r)
      .map((x) => x.f);
    log(`order: ${order.map((f) => f.name).join(' → ')}`);
    const results: Record<string, unknown>[] = [];
    for (const f of order) {
      const before = await operatorIncarnation(env);
      const since = Date.now();
      log(`inject: ${f.name}`);
      await f.inject();
      const evidence = await f.during(since);
      const heldMs = Date.now() - since;
      log(`  evidence after ${heldMs} ms: ${evidence.slice(0, 300)}`);
      await f.clear();
      churnPaused = true;
      const convergeMs = await converged(f.name);
      churnPaused = false;
      const afterInc = await operatorIncarnation(env);
      const restarted = afterInc !== before;
      results.push({ fault: f.name, heldMs, convergeMs, restarted, evidence: evidence.slice(0, 200) });
      log(`  converged ${convergeMs} ms after clearing; operator restarted: ${restarted}`);
      assert.deepEqual(violations, [], `after "${f.name}": destinations deleted or blanked`);
      if (!(f.mayRestart?.() ?? f.restarts))
        assert.equal(afterInc, before, `"${f.name}" restarted the operator`);
    }
    figures.faults = results;

    // No canary value in the operator's log (every pod's, killed ones included), Events or status.
    const logs = operatorLogs.text();
    assert.ok(logs.length > 0, 'the operator log was read');
    assertNotIn(canaries, logs, 'the operator log');
    assertNotIn(
      canaries,
      podLogs(node.podLogsDir, env.operatorNamespace, 'ferry-csi-node-', 'driver'),
      'the CSI driver log',
    );
    const events = (await kube.list<CoreEvent>(Events, { namespace: ns })).items;
    const statuses = await Promise.all(
      [VaultStaticSecrets, VaultDynamicSecrets, VaultPKISecrets].map((rt) => list<KubeObject & Status>(rt)),
    );
    assertNotIn(
      canaries,
      JSON.stringify(events) + JSON.stringify(statuses.flat().map((o) => o.status)),
      'an Event or status',
    );
    assert.deepEqual(violations, []);

    // No lease orphaned: deleting the VaultDynamicSecrets revokes every lease under the role, the
    // ones issued across kills and outages included.
    for (const d of DYNAMIC) {
      destinations.delete(d); // deleted with its owner from here on
      await kube.delete(VaultDynamicSecrets, d, ns);
    }
    const leases = async () =>
      ((await vault.call('GET', `sys/leases/lookup/${db}/creds/dyn?list=true`))?.data as { keys?: string[] })
        ?.keys ?? [];
    await eventually('every database lease revoked', async () => (await leases()).length === 0, 30_000, 500);
  });
});
