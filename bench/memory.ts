// The operator's memory at scale, against the running stack (`npm run stack -- up --operator none`):
// N VaultStaticSecrets (kv-v2, refreshAfter 30s, create: true) over 10 namespaces, each namespace
// with its own ServiceAccount, VaultConnection and VaultAuth (issue 12's workload). The operator is
// started from this checkout after the resources exist, as the operator's ServiceAccount; every
// 0.5 s the bench reads its VmRSS from /proc and its process.memoryUsage() (written by a preloaded
// sampler), and counts destination Secrets with the right data.
//   node bench/memory.ts [--n 1000,5000] [--no-compile-cache] [--hold 40] [--alloc-profile]
//                        [--node-flag=--max-semi-space-size=4 ...]
//                        [--operator-arg=--max-concurrent-reconciles=20 ...] [--snapshot-at synced]
// --hold: seconds to keep sampling after every Secret is synced (covers a refresh round).
// --alloc-profile: samples allocations, collected ones included, into alloc-<N>.heapprofile (open it
// in Chrome DevTools' Memory tab), from start until the end of --hold.
// --snapshot-at synced|<seconds>: also writes a heap snapshot (--heapsnapshot-signal) once synced, or
// that many seconds after the operator started.
// Process mode runs the operator in a memory cgroup of its own (bench/lib/cgroup.ts) and also reports
// its working set and cgroup peak; --memory-limit 128Mi limits that cgroup.
// --chart [--memory-limit 128Mi]: instead of a process, the chart's operator pod on the stack's node
// (`npm run stack -- up`, chart mode), with the chart's default resources and log level (the stack's
// own are larger), or another memory limit; the pod is started after the workload exists. Read from
// the container's cgroup as the kubelet reads it: peak, working set, OOM kills and restarts.
// Prints, per N: time to synced, operator CPU seconds, peak RSS (VmHWM), end RSS, the heap at the
// peak and at the end, RSS by mapping; writes
// bench/results/memory-<UTC time>.json. Each run uses fresh namespaces and deletes them afterwards.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VaultStaticSecrets } from '../src/api/resources.ts';
import type { KubeClient } from '../src/k8s/client.ts';
import { Namespaces, Secrets } from '../src/k8s/resources.ts';
import type { Secret } from '../src/k8s/types.ts';
import { operatorPods, scaleOperator, upgradeOperatorValues } from '../stack/lib/chart.ts';
import { adminClient, tenant, VaultAdmin, vss } from '../stack/lib/fixtures.ts';
import { alive, freePort, httpOk, start, waitFor } from '../stack/lib/proc.ts';
import { loadStackEnv } from '../stack/lib/stack.ts';
import { MemoryCgroup, memoryRoot } from './lib/cgroup.ts';
import { compileCacheEnv, IMAGE_NODE_FLAGS, operatorArgs } from './lib/ferry-process.ts';
import { procSample } from './lib/probes.ts';

const { values } = parseArgs({
  allowNegative: true,
  options: {
    n: { type: 'string', default: '1000,5000' },
    namespaces: { type: 'string', default: '10' },
    hold: { type: 'string', default: '40' },
    // The image's NODE_OPTIONS (Dockerfile); `--node-flag=` for none.
    'node-flag': { type: 'string', multiple: true, default: IMAGE_NODE_FLAGS },
    'operator-arg': { type: 'string', multiple: true, default: [] },
    'snapshot-at': { type: 'string' },
    'sync-timeout': { type: 'string', default: '600' },
    'alloc-profile': { type: 'boolean', default: false },
    'compile-cache': { type: 'boolean', default: true },
    chart: { type: 'boolean', default: false },
    'memory-limit': { type: 'string' },
  },
});
const ROOT = join(import.meta.dirname, '..');
const nodeFlags = (values['node-flag'] ?? []).filter((f) => f !== '');
const SAMPLE_MS = 500;
const MB = 1024 * 1024;

const env = loadStackEnv();
const kube = adminClient(env);
const vault = new VaultAdmin(env);

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

interface Workload {
  namespaces: string[];
  /** namespace → destination name → expected `password` */
  expected: Map<string, Map<string, string>>;
}

/** Namespaces of earlier runs may still be terminating (thousands of objects to collect): their
 * objects would be reconciled by the next operator and distort its figures. */
async function waitForLeftovers(): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const left = (await kube.list(Namespaces)).items.filter((x) => x.metadata.name?.startsWith('mem-'));
    if (left.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`namespaces of an earlier run are still there: ${left.length}`);
    process.stderr.write(`[memory] waiting for ${left.length} namespaces of an earlier run to go\n`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

async function createWorkload(n: number, nsCount: number): Promise<Workload> {
  await waitForLeftovers();
  const run = randomBytes(3).toString('hex');
  const namespaces = Array.from({ length: nsCount }, (_, i) => `mem-${run}-${i}`);
  const expected = new Map<string, Map<string, string>>();
  for (const ns of namespaces) {
    expected.set(ns, new Map());
    await tenant(env, kube, vault, ns, { connection: { name: 'default', address: env.vaultAddr } });
  }
  const items = Array.from({ length: n }, (_, i) => {
    const ns = namespaces[i % nsCount] as string;
    return { ns, name: `s${i}`, password: randomBytes(12).toString('hex') };
  });
  await pool(items, 16, async ({ ns, name, password }) => {
    await vault.kvPut('kvv2', `${ns}/${name}`, { username: name, password });
    await kube.create(
      VaultStaticSecrets,
      vss(ns, name, {
        type: 'kv-v2',
        mount: 'kvv2',
        path: `${ns}/${name}`,
        refreshAfter: '30s',
        destination: { name, create: true },
      }),
    );
    expected.get(ns)?.set(name, password);
  });
  return { namespaces, expected };
}

async function countSynced(w: Workload): Promise<number> {
  let synced = 0;
  for (const ns of w.namespaces) {
    const want = w.expected.get(ns) ?? new Map<string, string>();
    const list = await kube.list<Secret>(Secrets, { namespace: ns });
    for (const s of list.items) {
      const pw = s.data?.password;
      if (pw !== undefined && want.get(s.metadata.name ?? '') === Buffer.from(pw, 'base64').toString())
        synced++;
    }
  }
  return synced;
}

async function deleteWorkload(client: KubeClient, w: Workload): Promise<void> {
  for (const ns of w.namespaces) await client.delete(Namespaces, ns).catch(() => undefined);
}

// Preloaded into the operator: appends process.memoryUsage() as a JSON line every 500 ms.
const SAMPLER = `
import { appendFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
const file = process.env.FERRY_BENCH_MEMORY_FILE;
const sample = () => {
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
  appendFileSync(file, JSON.stringify({ t: Date.now(), ...process.memoryUsage(), spaces }) + '\\n');
};
setInterval(sample, ${SAMPLE_MS}).unref();
const profile = process.env.FERRY_BENCH_ALLOC_PROFILE;
if (profile) {
  // Allocation sampling that keeps what the GC already collected: where the garbage comes from.
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
  });
  // The bench asks for the profile by creating <profile>.stop, before it tears the workload down.
  const { existsSync } = await import('node:fs');
  const poll = setInterval(() => {
    if (!existsSync(profile + '.stop')) return;
    clearInterval(poll);
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) writeFileSync(profile, JSON.stringify(r.profile));
    });
  }, 200);
  poll.unref();
}
`;

/** RSS by mapping: the node binary, other files, and anonymous memory by region size (the V8 heap
 * lives in 256 KB pages, malloc arenas in 64 MB reservations). */
function rssByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '';
  let size = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      size = parseInt(m[2] as string, 16) - parseInt(m[1] as string, 16);
      const file = m[3] ?? '';
      name = file.endsWith('/node') ? 'node binary' : file.startsWith('/') ? 'other files' : file || 'anon';
      if (name === 'anon') name = size >= 32 * MB ? 'anon >= 32 MB regions' : 'anon < 32 MB regions';
      continue;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (r) out[name] = (out[name] ?? 0) + Number(r[1]) * 1024;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Math.round(v / MB)]));
}

interface Usage {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

async function runOnce(n: number, run: number, dir: string): Promise<Record<string, number | string>> {
  // Files of this run: `--n 1000,1000` runs the same N twice.
  const tag = `${n}-${run}`;
  const t0 = Date.now();
  const w = await createWorkload(n, Number(values.namespaces));
  process.stderr.write(`[memory] N=${n}: workload created in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const usageFile = join(dir, `usage-${tag}.jsonl`);
  const [health, metrics] = (await Promise.all([freePort(), freePort()])) as [number, number];
  const flags = [
    ...nodeFlags,
    `--import=data:text/javascript,${encodeURIComponent(SAMPLER)}`,
    ...(values['snapshot-at'] ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] : []),
  ];
  // In a memory cgroup of its own from its first instruction, as a container: the working set
  // (usage − inactive file pages) is the figure the kubelet reads and the one comparable with Go peers.
  const cgroup = MemoryCgroup.create(`memory-${tag}-${process.pid}`, processLimitMb);
  const cmd = cgroup.wrap(process.execPath, [
    ...flags,
    ...operatorArgs(env, { metrics, health }),
    '--log-level=info',
    ...(values['operator-arg'] ?? []),
  ]);
  const started = Date.now();
  const op = start(dir, `operator-${tag}`, cmd.cmd, cmd.args, {
    env: {
      ...process.env,
      FERRY_BENCH_MEMORY_FILE: usageFile,
      ...COMPILE_CACHE_ENV,
      ...(values['alloc-profile']
        ? { FERRY_BENCH_ALLOC_PROFILE: join(dir, `alloc-${tag}.heapprofile`) }
        : {}),
    },
  });
  const rssSamples: { t: number; rss: number }[] = [];
  let syncedAt: number | undefined;
  let holdUntil = Number.POSITIVE_INFINITY;
  const deadline = started + Number(values['sync-timeout']) * 1000;
  let lastCount = 0;
  let hwm = 0;
  let workingSetPeak = 0;
  let syncCpu = 0;
  const snapAt = Number(values['snapshot-at']);
  let snapped = false;
  try {
    while (Date.now() < holdUntil) {
      if (!alive(op.pid)) throw new Error(`operator exited (see ${join(dir, `operator-${tag}.log`)})`);
      const st = procSample(op.pid);
      if (st) {
        rssSamples.push({ t: Date.now() - started, rss: st.rssMb * MB });
        hwm = Math.max(hwm, (st.hwmMb ?? 0) * MB);
        workingSetPeak = Math.max(workingSetPeak, cgroup.sample().workingSetMb);
      }
      if (!snapped && Number.isFinite(snapAt) && Date.now() - started >= snapAt * 1000) {
        snapped = true;
        process.kill(op.pid, 'SIGUSR2');
      }
      if (syncedAt === undefined) {
        lastCount = await countSynced(w);
        if (lastCount === n) {
          syncedAt = Date.now();
          syncCpu = procSample(op.pid)?.cpuS ?? 0;
          holdUntil = syncedAt + Number(values.hold) * 1000;
          process.stderr.write(`[memory] N=${n}: synced in ${((syncedAt - started) / 1000).toFixed(1)} s\n`);
          if (values['snapshot-at'] === 'synced') process.kill(op.pid, 'SIGUSR2');
        } else if (Date.now() > deadline) {
          throw new Error(`only ${lastCount}/${n} synced after ${values['sync-timeout']} s`);
        }
      }
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
    // The operator is still ours to measure: one last reading.
    const end = procSample(op.pid);
    const cg = cgroup.sample();
    const mappings = rssByMapping(op.pid);
    const usage = readFileSync(usageFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Usage);
    const peak = usage.reduce((a, b) => (b.rss > a.rss ? b : a));
    const last = usage.at(-1) as Usage;
    writeFileSync(join(dir, `rss-${tag}.json`), JSON.stringify(rssSamples));
    if (values['alloc-profile']) {
      const profile = join(dir, `alloc-${tag}.heapprofile`);
      writeFileSync(`${profile}.stop`, '');
      for (let i = 0; i < 100 && !existsSync(profile); i++) await new Promise((r) => setTimeout(r, 200));
    }
    return {
      n,
      syncSeconds: Number((((syncedAt ?? 0) - started) / 1000).toFixed(1)),
      cpuSecondsToSynced: syncCpu,
      cpuSecondsTotal: end?.cpuS ?? 0,
      peakRssMB: Math.round(Math.max(hwm / MB, end?.hwmMb ?? 0)),
      endRssMB: Math.round(end?.rssMb ?? 0),
      memoryLimit: values['memory-limit'] ?? 'none',
      workingSetPeakMB: Math.round(Math.max(workingSetPeak, cg.workingSetMb)),
      workingSetEndMB: Math.round(cg.workingSetMb),
      cgroupPeakMB: Math.round(cg.peakMb),
      oomKills: cg.oomKills,
      atPeak: `heapUsed ${Math.round(peak.heapUsed / MB)} heapTotal ${Math.round(peak.heapTotal / MB)} external ${Math.round(peak.external / MB)} arrayBuffers ${Math.round(peak.arrayBuffers / MB)}`,
      endHeapUsedMB: Math.round(last.heapUsed / MB),
      endHeapTotalMB: Math.round(last.heapTotal / MB),
      endExternalMB: Math.round(last.external / MB),
      endRssByMappingMB: JSON.stringify(mappings),
    };
  } finally {
    // Thousands of objects take minutes to collect; the next run also waits for them (waitForLeftovers).
    await deleteWorkload(kube, w);
    await waitFor(
      'namespace deletion',
      join(dir, `operator-${tag}.log`),
      op.pid,
      async () => {
        const left = (await kube.list(Namespaces)).items.filter((x) =>
          w.namespaces.includes(x.metadata.name ?? ''),
        );
        return left.length === 0;
      },
      600_000,
    ).catch((err: unknown) => process.stderr.write(`[memory] ${String(err)}\n`));
    process.kill(op.pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(op.pid); i++) await new Promise((r) => setTimeout(r, 200));
    if (alive(op.pid)) process.kill(op.pid, 'SIGKILL');
    cgroup.remove();
  }
}

/** The operator pod's container: its cgroup (as the kubelet made it), restarts and the last reason. */
async function operatorContainer(): Promise<
  { cgroup: MemoryCgroup; pid: number; restarts: number; lastReason: string } | undefined
> {
  const pod = (await operatorPods(kube, env.operatorNamespace)).find((p) => !p.metadata.deletionTimestamp);
  const status = pod?.status?.containerStatuses?.find((c) => c.name === 'manager');
  const id = status?.containerID?.replace(/^[a-z]+:\/\//, '');
  if (!pod || !status || !id || !env.node) return undefined;
  const kubepods = join(memoryRoot(), env.node.cgroupRoot, 'kubepods');
  for (const qos of ['', 'burstable', 'besteffort']) {
    const d = join(kubepods, qos, `pod${pod.metadata.uid}`, id);
    if (!existsSync(d)) continue;
    const cgroup = MemoryCgroup.at(d);
    const pid = cgroup.pids()[0];
    if (pid === undefined) return undefined;
    return {
      cgroup,
      pid,
      restarts: status.restartCount ?? 0,
      lastReason: lastTerminated(status.lastState?.terminated),
    };
  }
  return undefined;
}

/** "OOMKilled" (the kernel, at the cgroup limit), or "Error (exit 134)" and the like. */
const lastTerminated = (t: { reason?: string; exitCode?: number } | undefined): string =>
  t
    ? `${t.reason ?? ''}${t.exitCode !== undefined && t.reason !== 'OOMKilled' ? ` (exit ${t.exitCode})` : ''}`
    : '';

/** N secrets synced by the chart's operator pod (`--chart`). */
async function runChart(n: number): Promise<Record<string, number | string>> {
  if (!env.chart || !env.node) throw new Error('--chart needs a stack in chart mode (`npm run stack -- up`)');
  await scaleOperator(kube, env.operatorNamespace, 0);
  const t0 = Date.now();
  const w = await createWorkload(n, Number(values.namespaces));
  process.stderr.write(`[memory] N=${n}: workload created in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const limit = values['memory-limit'];
  // The chart's defaults: its resources (or only another memory limit) and log level.
  upgradeOperatorValues(env.chart, (m) => {
    delete m.logging;
    delete m.resources;
    if (limit !== undefined)
      m.resources = {
        limits: { cpu: '500m', memory: limit },
        requests: { cpu: '10m', memory: '64Mi' },
      };
  });
  // helm restores the chart's replica count; its hooks have run when it returns. Timed from here.
  const started = Date.now();
  const deadline = started + Number(values['sync-timeout']) * 1000;
  let syncedAt: number | undefined;
  let holdUntil = Number.POSITIVE_INFINITY;
  const peak = { cgroup: 0, workingSet: 0, rss: 0 };
  let last: Awaited<ReturnType<typeof operatorContainer>>;
  let oomKilled = 0;
  let lastRestarts = 0;
  const restartReasons: string[] = [];
  let syncCpu = 0;
  let end = { workingSet: 0, rss: 0 };
  try {
    while (Date.now() < holdUntil) {
      const c = await operatorContainer().catch(() => undefined);
      if (c) {
        if (c.restarts > lastRestarts) {
          if (c.lastReason === 'OOMKilled') oomKilled += c.restarts - lastRestarts;
          restartReasons.push(`${c.lastReason} at ${((Date.now() - started) / 1000).toFixed(0)} s`);
          lastRestarts = c.restarts;
        }
        const s = c.cgroup.sample();
        const p = procSample(c.pid);
        peak.cgroup = Math.max(peak.cgroup, s.peakMb);
        peak.workingSet = Math.max(peak.workingSet, s.workingSetMb);
        peak.rss = Math.max(peak.rss, p?.hwmMb ?? 0);
        end = { workingSet: s.workingSetMb, rss: p?.rssMb ?? 0 };
        last = c;
      }
      if (syncedAt === undefined) {
        const count = await countSynced(w);
        if (count === n) {
          syncedAt = Date.now();
          syncCpu = (last && procSample(last.pid)?.cpuS) ?? 0;
          holdUntil = syncedAt + Number(values.hold) * 1000;
          process.stderr.write(`[memory] N=${n}: synced in ${((syncedAt - started) / 1000).toFixed(1)} s\n`);
        } else if (Date.now() > deadline) {
          throw new Error(`only ${count}/${n} synced after ${values['sync-timeout']} s`);
        }
      }
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
    return {
      n,
      mode: `chart pod, memory limit ${limit ?? 'the chart default'}`,
      syncSeconds: Number((((syncedAt ?? 0) - started) / 1000).toFixed(1)),
      cpuSecondsToSynced: syncCpu,
      cpuSecondsTotal: (last && procSample(last.pid)?.cpuS) ?? 0,
      restarts: lastRestarts,
      restartReasons: restartReasons.join('; '),
      oomKilled,
      cgroupPeakMB: Math.round(peak.cgroup),
      workingSetPeakMB: Math.round(peak.workingSet),
      workingSetEndMB: Math.round(end.workingSet),
      peakRssMB: Math.round(peak.rss),
      endRssMB: Math.round(end.rss),
    };
  } finally {
    await deleteWorkload(kube, w);
  }
}

/** `--memory-limit` in process mode: the operator's cgroup limit (128Mi, 1Gi); none without it. */
const processLimitMb = ((): number | undefined => {
  const m = /^(\d+)(Mi|Gi)$/.exec(values['memory-limit'] ?? '');
  if (!values['memory-limit']) return undefined;
  if (!m) throw new Error(`--memory-limit: ${values['memory-limit']} (want e.g. 128Mi or 1Gi)`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
})();

const dir = mkdtempSync(join(tmpdir(), 'ferry-memory-bench-'));
// As in the image: a compile cache filled before the operator starts (src/cli/compile-cache.ts).
const COMPILE_CACHE_ENV = values['compile-cache'] ? compileCacheEnv(dir, nodeFlags) : {};
const results: Record<string, number | string>[] = [];
try {
  if (values.chart) {
    for (const n of values.n.split(',').map(Number)) {
      const r = await runChart(n);
      results.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  } else {
    if (env.operator?.pid !== undefined && alive(env.operator.pid)) {
      throw new Error('the stack runs an operator already: start it with `--operator none`');
    }
    if (
      env.operator &&
      !env.operator.pid &&
      (await httpOk(`${env.operator.health}/readyz`).catch(() => false))
    ) {
      throw new Error('the stack runs the chart operator: start it with `--operator none` (or use --chart)');
    }
    for (const n of values.n.split(',').map(Number)) {
      const r = await runOnce(n, results.length, dir);
      results.push({
        ...r,
        nodeFlags: nodeFlags.join(' '),
        operatorArgs: (values['operator-arg'] ?? []).join(' '),
      });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  }
  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `memory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ flavor: env.flavor, results }, null, 2));
  process.stderr.write(`[memory] wrote ${file}; logs and samples in ${dir}\n`);
  const snaps = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
  if (snaps.length)
    process.stderr.write(`[memory] heap snapshots: ${snaps.map((f) => join(dir, f)).join(' ')}\n`);
} finally {
  await vault.close();
  await kube.close();
}
