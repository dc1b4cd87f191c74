// The benchmark's scenarios, each on a fresh private stack (`stack up --operator none --no-node`) with
// the operator's own CRDs, the operator started as a local process after its resources exist:
//   sync:    initial sync, change propagation, a quiet period, RSS throughout;
//   restart: N static + dynamic secrets synced, then the operator restarted.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import { adminClient, apply, readManifests, VaultAdmin } from '../../stack/lib/fixtures.ts';
import { freePort, type Log, start, stopAll } from '../../stack/lib/proc.ts';
import { type StackEnv, stackDown, stackUp } from '../../stack/lib/stack.ts';
import { MemoryCgroup } from './cgroup.ts';
import { cpuLimitMillis, memoryLimitMb, OPERATORS, type OperatorName, type Scenario } from './peers.ts';
import { apiserverCounts, procSample, RssSampler, VaultProxy } from './probes.ts';
import { percentile, type Row, refreshIntervals, type Series } from './stats.ts';
import {
  createDynamic,
  createResources,
  DB_MOUNT,
  NAMESPACES,
  nsOf,
  plantValues,
  refreshSeconds,
  tenants,
} from './workload.ts';

export interface RunSpec {
  op: OperatorName;
  scenario: Scenario;
  n: number;
  run: number;
  log: Log;
}
export interface RunOutput {
  rows: Row[];
  series: Series[];
}

interface Running {
  pid: number;
  secs(): number;
  rss: RssSampler;
  /** The process's own memory cgroup, limited in a `cgroup-<limit>` scenario. */
  cgroup: MemoryCgroup;
  scenario: Scenario;
  /** Highest working set seen (sampled with RSS). */
  workingSetPeakMb(): number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

interface Bench {
  env: StackEnv;
  kube: KubeClient;
  vault: VaultAdmin;
  proxy: VaultProxy;
  proxyAddr: string;
  /** Starts the operator (again); it is stopped when the stack goes down. */
  start(): Promise<Running>;
}

const stackLog: Log = (m) => process.stderr.write(`[stack] ${m}\n`);

async function onFreshStack<T>(r: RunSpec, dynamic: boolean, fn: (b: Bench) => Promise<T>): Promise<T> {
  const spec = OPERATORS[r.op];
  const crds = spec.crds(r.log);
  r.log(`${r.op}/${r.scenario} N=${r.n} run ${r.run}: fresh stack`);
  const env = await stackUp({ flavor: 'openbao', operator: 'none', node: false, log: stackLog });
  const kube = adminClient(env);
  const vault = new VaultAdmin(env);
  const proxy = new VaultProxy(env.vaultAddr);
  const running: Running[] = [];
  try {
    const proxyAddr = await proxy.start();
    for (const file of crds) {
      for (const m of readManifests(file)) if (m.kind === 'CustomResourceDefinition') await apply(kube, m);
    }
    if (crds.length) await sleep(3000); // a replaced CRD's storage re-initialises for a moment
    await tenants(kube, vault, dynamic);
    const startOperator = async (): Promise<Running> => {
      const ports = [await freePort(), await freePort()] as [number, number];
      const l = spec.launch(env, r.scenario, proxyAddr, r.n, ports, r.log);
      // Every process in a cgroup of its own, limited or not, so every column has the same figures.
      const cgroup = MemoryCgroup.create(
        `${r.op}-${r.scenario}-${r.n}-${r.run}-${running.length}`,
        memoryLimitMb(r.scenario),
        cpuLimitMillis(r.scenario),
      );
      const w = cgroup.wrap(l.cmd, l.args);
      const t0 = performance.now();
      const p = start(env.dir, `bench-${r.op}-${running.length}`, w.cmd, w.args, { env: l.env });
      // Recorded in the stack so `npm run stack -- down` stops it should this process die first.
      const file = process.env.FERRY_STACK_ENV as string;
      const recorded = JSON.parse(readFileSync(file, 'utf8')) as StackEnv;
      recorded.processes.push(p);
      writeFileSync(file, JSON.stringify(recorded, null, 2));
      let wsPeak = 0;
      const rss = new RssSampler(p.pid, t0, 500, () => {
        wsPeak = Math.max(wsPeak, cgroup.sample().workingSetMb);
      });
      const run: Running = {
        pid: p.pid,
        rss,
        cgroup,
        scenario: r.scenario,
        workingSetPeakMb: () => wsPeak,
        secs: () => (performance.now() - t0) / 1000,
        stop: async (signal = 'SIGTERM') => {
          rss.stop();
          await stopAll([{ name: r.op, pid: p.pid, signal }], r.log, { timeoutMs: 15_000 });
        },
      };
      running.push(run);
      return run;
    };
    return await fn({ env, kube, vault, proxy, proxyAddr, start: startOperator });
  } finally {
    for (const p of running) {
      await p.stop();
      p.cgroup.remove();
    }
    await proxy.close();
    await vault.close();
    await kube.close();
    await stackDown(stackLog);
  }
}

/** Which of the N static Secrets hold their expected value now. */
async function observe(kube: KubeClient, expected: Map<string, string>): Promise<Set<string>> {
  const list = await kube.list<Secret>(Secrets, {});
  const ok = new Set<string>();
  for (const s of list.items) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    const want = expected.get(key);
    if (want === undefined) continue;
    const got = s.data?.value ? Buffer.from(s.data.value, 'base64').toString('utf8') : undefined;
    if (got === want) ok.add(key);
  }
  return ok;
}

const rowsOf = (r: RunSpec) => {
  const rows: Row[] = [];
  const row = (figure: string, value: number): void => {
    rows.push({ operator: r.op, scenario: r.scenario, n: r.n, run: r.run, figure, value });
    const v = Number.isFinite(value) ? Math.round(value * 100) / 100 : value;
    r.log(`${r.op}/${r.scenario} N=${r.n} run ${r.run}: ${figure} = ${v}`);
  };
  return { rows, row };
};

const exited = (r: RunSpec, b: Bench, p: Running): Error => {
  const cg = p.cgroup.sample();
  const oom = cg.oomKills ? `, OOM-killed in its cgroup (peak ${Math.round(cg.peakMb)} MB)` : '';
  return new Error(`${r.op} exited${oom} (log: ${join(b.env.dir, `bench-${r.op}-*.log`)})`);
};

/** The memory figures of one process: RSS from /proc, and its cgroup's as the kubelet reads them. */
function memoryRows(p: Running, row: (figure: string, value: number) => void, prefix = ''): void {
  p.rss.stop();
  const cg = p.cgroup.sample();
  row(`${prefix}rss_peak_mb`, p.rss.peak);
  if (!prefix) row('rss_end_mb', p.rss.points[p.rss.points.length - 1]?.[1] ?? Number.NaN);
  row(`${prefix}cg_peak_mb`, cg.peakMb);
  row(`${prefix}ws_peak_mb`, Math.max(p.workingSetPeakMb(), cg.workingSetMb));
  if (!prefix) row('ws_end_mb', cg.workingSetMb);
  row(`${prefix}oom_kills`, cg.oomKills);
  if (cpuLimitMillis(p.scenario) !== undefined) row(`${prefix}cpu_throttled_s`, cg.cpuThrottledS);
}

/** How long the initial sync is waited for: until all N are synced, `capS` has passed, or the
 * count has not grown for `stallS` (VSO at N = 5,000 stops progressing; issue 12). */
export interface SyncWait {
  capS: number;
  stallS: number;
}

/** Initial sync, change propagation and a quiet period of `quietS` seconds. */
export function syncScenario(r: RunSpec, quietS: number, wait: SyncWait): Promise<RunOutput> {
  const { rows, row } = rowsOf(r);
  const n = r.n;
  return onFreshStack(r, false, async (b) => {
    const expected = await plantValues(b.vault, n);
    await createResources(b.kube, OPERATORS[r.op].flavour, n, b.proxyAddr, refreshSeconds(r.scenario));
    r.log(`${r.op}/${r.scenario} N=${n}: ${n} secrets over ${NAMESPACES} namespaces created; starting it`);
    const p = await b.start();

    // Initial sync.
    const curve: [number, number][] = [[0, 0]];
    const point = (count: number): void => {
      curve.push([Math.round(p.secs() * 10) / 10, count]);
    };
    let syncS = Number.NaN;
    let syncedCount = 0;
    let grewAt = 0;
    while (p.secs() < wait.capS && p.secs() - grewAt < wait.stallS) {
      const ok = await observe(b.kube, expected).catch(() => new Set<string>());
      if (ok.size > syncedCount) grewAt = p.secs();
      syncedCount = ok.size;
      point(ok.size);
      if (ok.size === n) {
        syncS = p.secs();
        break;
      }
      if (procSample(p.pid) === undefined) throw exited(r, b, p);
      await sleep(500);
    }
    row('sync_s', syncS);
    row('synced_count', syncedCount);
    row('sync_wait_s', p.secs());
    const atSync = b.proxy.snapshot();
    row('vault_requests_sync', atSync.requests);
    row('vault_logins_sync', atSync.logins);
    row('cpu_sync_s', procSample(p.pid)?.cpuS ?? Number.NaN);

    // Change propagation: 10 % of the values change, spread over every namespace.
    const ids = Array.from({ length: n }, (_, i) => i).filter((i) => Math.floor(i / NAMESPACES) % 10 === 0);
    const changed = await plantValues(b.vault, n, 1, ids);
    const tc = performance.now();
    for (const [k, v] of changed) expected.set(k, v);
    const seen = new Map<string, number>();
    while (seen.size < changed.size && (performance.now() - tc) / 1000 < 120) {
      const ok = await observe(b.kube, expected).catch(() => new Set<string>());
      const t = (performance.now() - tc) / 1000;
      for (const k of changed.keys()) if (ok.has(k) && !seen.has(k)) seen.set(k, t);
      point(ok.size);
      await sleep(500);
    }
    const lat = [...seen.values()];
    row('change_p50_s', seen.size === changed.size ? percentile(lat, 50) : Number.NaN);
    row('change_p99_s', seen.size === changed.size ? percentile(lat, 99) : Number.NaN);
    row('change_missed', changed.size - seen.size);

    // Quiet period: nothing changes and nothing is polled.
    const ca = readFileSync(b.env.caFile, 'utf8');
    const c0 = procSample(p.pid)?.cpuS ?? Number.NaN;
    const v0 = b.proxy.snapshot();
    const a0 = await apiserverCounts(b.env.apiServer, b.env.adminToken, ca);
    b.proxy.recordReads();
    await sleep(quietS * 1000);
    const reads = b.proxy.takeReads();
    const a1 = await apiserverCounts(b.env.apiServer, b.env.adminToken, ca);
    const v1 = b.proxy.snapshot();
    const c1 = procSample(p.pid)?.cpuS ?? Number.NaN;
    row('quiet_s', quietS);
    row('quiet_cpu_s', c1 - c0);
    row('quiet_vault_requests', v1.requests - v0.requests);
    row('quiet_vault_reads', v1.kvReads - v0.kvReads);
    // Whether the refresh keeps up: the time between two reads of the same secret, and secrets unread.
    const gaps = refreshIntervals(reads, n);
    row('quiet_read_interval_p50_s', gaps.p50);
    row('quiet_read_interval_p99_s', gaps.p99);
    row('quiet_read_interval_max_s', gaps.max);
    row('quiet_read_unread', gaps.unread);
    row('quiet_vault_logins', v1.logins - v0.logins);
    row('quiet_api_requests', a1.total - a0.total - 1); // less the benchmark's own /metrics request
    row('quiet_api_writes', a1.writes - a0.writes);
    memoryRows(p, row);
    const key = { operator: r.op, scenario: r.scenario, n, run: r.run };
    return {
      rows,
      series: [
        { ...key, kind: 'synced', points: curve },
        { ...key, kind: 'rss_mb', points: p.rss.points },
      ],
    };
  });
}

/** Usernames of the dynamic Secrets that exist. */
async function dynamicCreds(kube: KubeClient): Promise<Map<string, string>> {
  const list = await kube.list<Secret>(Secrets, {});
  const out = new Map<string, string>();
  for (const s of list.items) {
    if (!s.metadata.namespace?.startsWith('bench-') || !/^d\d+$/.test(s.metadata.name ?? '')) continue;
    const u = s.data?.username;
    if (u) out.set(`${s.metadata.namespace}/${s.metadata.name}`, Buffer.from(u, 'base64').toString('utf8'));
  }
  return out;
}

/** Pod-template generations of the rollout-restart target Deployments (a restart bumps one). */
async function deploymentGenerations(kube: KubeClient): Promise<number> {
  let sum = 0;
  for (let k = 0; k < NAMESPACES; k++) {
    const list = await kube.list<KubeObject>(Deployments, { namespace: nsOf(k) });
    for (const d of list.items) sum += d.metadata.generation ?? 0;
  }
  return sum;
}

/**
 * N static and `dynamic` database-credential secrets synced, then the operator restarted (SIGTERM and
 * a new process): how long until it has re-read every static secret, and what it did in the first
 * `windowS` seconds (logins, Vault requests, credentials issued, rollout restarts, API writes).
 */
export function restartScenario(r: RunSpec, dynamic: number, windowS: number): Promise<RunOutput> {
  const { rows, row } = rowsOf(r);
  const n = r.n;
  return onFreshStack(r, true, async (b) => {
    await b.vault.postgresEngine(DB_MOUNT, { defaultTtl: '1h', maxTtl: '24h' });
    const expected = await plantValues(b.vault, n);
    await createResources(b.kube, OPERATORS[r.op].flavour, n, b.proxyAddr);
    await createDynamic(b.kube, dynamic);
    r.log(`${r.op} restart N=${n}: ${n} static and ${dynamic} dynamic secrets created; starting it`);
    const first = await b.start();
    let ready = false;
    while (!ready && first.secs() < 60 + (n + dynamic) * 0.4) {
      await sleep(1000);
      if (procSample(first.pid) === undefined) throw exited(r, b, first);
      ready = (await observe(b.kube, expected)).size === n && (await dynamicCreds(b.kube)).size === dynamic;
    }
    row('restart_first_sync_s', ready ? first.secs() : Number.NaN);
    if (!ready) return { rows, series: [] };
    await sleep(10_000); // first deliveries' rollout restarts and status writes settle
    const creds0 = await dynamicCreds(b.kube);
    const gens0 = await deploymentGenerations(b.kube);
    await first.stop('SIGTERM');
    const ca = readFileSync(b.env.caFile, 'utf8');
    const v0 = b.proxy.snapshot();
    const a0 = await apiserverCounts(b.env.apiServer, b.env.adminToken, ca);
    const second = await b.start();
    let converged = Number.NaN;
    while (second.secs() < windowS) {
      if (Number.isNaN(converged) && b.proxy.counts.kvReads - v0.kvReads >= n) converged = second.secs();
      await sleep(250);
    }
    const v1 = b.proxy.snapshot();
    const a1 = await apiserverCounts(b.env.apiServer, b.env.adminToken, ca);
    const creds1 = await dynamicCreds(b.kube);
    row('restart_window_s', windowS);
    row('restart_converge_s', converged);
    row('restart_logins', v1.logins - v0.logins);
    row('restart_vault_requests', v1.requests - v0.requests);
    row('restart_creds_issued', v1.creds - v0.creds);
    row('restart_creds_changed', [...creds0].filter(([k, u]) => creds1.get(k) !== u).length);
    row('restart_rollouts', (await deploymentGenerations(b.kube)) - gens0);
    row('restart_api_writes', a1.writes - a0.writes);
    memoryRows(second, row, 'restart_');
    return { rows, series: [] };
  });
}
