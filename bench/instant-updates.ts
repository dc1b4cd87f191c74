// Change propagation with syncConfig.instantUpdates (the Vault socket audit device → the operator's
// listener), against the running stack (`npm run stack -- up`, which sets the audit stream up):
//   instant: --secrets VaultStaticSecrets with refreshAfter 1h and instantUpdates; --changes of
//            their values are written one after another; for each, the time from the Vault write
//            returning to the destination Secret holding the new value (polled every 10 ms), and
//            the VaultStaticSecret reconciles (each is one KV read) per change.
//   idle:    reconciles over --idle seconds with nothing changing (steady-state Vault reads).
//   down:    Vault write latency with the operator's listener up and with the operator stopped
//            (the socket device fails, the other device logs), and the time from the operator's
//            restart until --down-changes values written while it was down are delivered.
//   polling: --poll-secrets resources without instantUpdates, refreshAfter --poll-refresh; the same
//            write→Secret latency, and the Vault reads per minute it costs, for comparison (what
//            tuning refreshAfter down buys, and costs).
//   node bench/instant-updates.ts [--secrets 1000] [--changes 100] [--poll-secrets 20]
//        [--poll-refresh 30s] [--idle 30]
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Namespaces, Secrets } from '../src/k8s/resources.ts';
import type { Secret } from '../src/k8s/types.ts';
import {
  adminClient,
  apply,
  decodeData,
  eventually,
  reconcileTotal,
  tenant,
  VaultAdmin,
  vss,
} from '../stack/lib/fixtures.ts';
import { loadStackEnv, restartOperator, stopOperatorProcess } from '../stack/lib/stack.ts';
import { benchArgs } from './lib/args.ts';

const values = benchArgs({
  secrets: 1000,
  changes: 100,
  'poll-secrets': 20,
  'poll-refresh': '30s',
  idle: 30,
  'down-changes': 10,
  writes: 100,
});
const N = values.secrets;
const CHANGES = Math.min(values.changes, N);
const POLL = values['poll-secrets'];
const IDLE_S = values.idle;

const env = loadStackEnv();
if (!env.operator || !env.auditStreamPort) throw new Error('the stack runs no operator with an audit stream');
/** The operator's metrics; its address changes when the operator restarts. */
let metricsUrl = `${env.operator.metrics}/metrics`;
const kube = adminClient(env);
const vault = new VaultAdmin(env);
const ns = `instant-bench-${randomBytes(3).toString('hex')}`;

const progress = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}
const round = (x: number): number => Math.round(x * 10) / 10;

const reconciles = (): Promise<number> => reconcileTotal(metricsUrl, 'vaultstaticsecret');

async function settle(): Promise<void> {
  await eventually(
    'reconciles settle',
    async () => {
      const a = await reconciles();
      await new Promise((r) => setTimeout(r, 2_000));
      return a === (await reconciles());
    },
    600_000,
  );
}

/** Resolves with the time destination `name` was first seen holding `value` (polled every 10 ms). */
async function arrival(name: string, value: string): Promise<number> {
  for (;;) {
    const s = await kube.getIfExists<Secret>(Secrets, name, ns);
    if (decodeData(s?.data).value === value) return performance.now();
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function create(prefix: string, count: number, spec: Record<string, unknown>): Promise<void> {
  const one = async (i: number): Promise<void> => {
    await vault.kvPut('kvv2', `${ns}/${prefix}${i}`, { value: `initial-${i}` });
    await apply(
      kube,
      vss(ns, `${prefix}${i}`, {
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/${prefix}${i}`,
        destination: { name: `${prefix}${i}`, create: true },
        ...spec,
      }),
    );
  };
  for (let i = 0; i < count; i += 20)
    await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, j) => one(i + j)));
  for (let i = 0; i < count; i++)
    await eventually(
      `${prefix}${i} synced`,
      async () => (await kube.getIfExists<Secret>(Secrets, `${prefix}${i}`, ns))?.data !== undefined,
      600_000,
      100,
    );
}

/** Writes `value` to secret `name` and returns the write→Secret latency in ms. */
async function change(name: string): Promise<number> {
  const value = `v-${randomBytes(6).toString('hex')}`;
  await vault.kvPut('kvv2', `${ns}/${name}`, { value });
  const written = performance.now();
  return (await arrival(name, value)) - written;
}

try {
  await tenant(env, kube, vault, ns);
  progress(`creating ${N} instant resources`);
  let t = performance.now();
  await create('i', N, { refreshAfter: '1h', syncConfig: { instantUpdates: true } });
  const setupS = (performance.now() - t) / 1000;
  await settle();

  progress(`idle for ${IDLE_S} s`);
  // Idle: nothing changes; instant resources poll once an hour.
  let before = await reconciles();
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const idleReads = (await reconciles()) - before;

  progress(`${CHANGES} changes`);
  // Instant: one change at a time, spread over the resources.
  before = await reconciles();
  const instant: number[] = [];
  t = performance.now();
  for (let c = 0; c < CHANGES; c++) instant.push(await change(`i${Math.floor((c * N) / CHANGES)}`));
  const changesS = (performance.now() - t) / 1000;
  await settle();
  const readsPerChange = ((await reconciles()) - before) / CHANGES;

  progress('Vault write latency, operator up and down');
  // Down: Vault write latency without a listener; changes made meanwhile arrive after the restart.
  const writeLatency = async (): Promise<number> => {
    const xs: number[] = [];
    for (let i = 0; i < values.writes; i++) {
      const w = performance.now();
      await vault.kvPut('kvv2', `${ns}/latency`, { value: String(i) });
      xs.push(performance.now() - w);
    }
    return round(pct(xs, 50));
  };
  const writeUpMs = await writeLatency();
  await stopOperatorProcess('operator');
  const writeDownMs = await writeLatency();
  const missed: [string, string][] = [];
  for (let c = 0; c < values['down-changes']; c++) {
    const name = `i${c * 3 + 1}`;
    const value = `down-${randomBytes(6).toString('hex')}`;
    missed.push([name, value]);
    await vault.kvPut('kvv2', `${ns}/${name}`, { value });
  }
  progress('restarting the operator');
  const restartAt = performance.now();
  const restarted = await restartOperator(() => {});
  metricsUrl = `${restarted.operator?.metrics}/metrics`;
  progress('restarted; waiting for the changes made while it was down');
  const arrivedAt = await Promise.all(missed.map(([name, value]) => arrival(name, value)));
  const missedArrivedS = round((Math.max(...arrivedAt) - restartAt) / 1000);
  await settle();

  progress(`polling comparison (${POLL} resources)`);
  // Polling, for comparison: the same change with instantUpdates off.
  await create('p', POLL, { refreshAfter: values['poll-refresh'] });
  await settle();
  before = await reconciles();
  t = performance.now();
  const polling = await Promise.all(Array.from({ length: POLL }, (_, i) => change(`p${i}`)));
  // Polling reads whether or not anything changed: its cost is resources / refreshAfter.
  const pollingReadsPerMinute = round(((await reconciles()) - before) / ((performance.now() - t) / 60_000));

  const result = {
    flavor: env.flavor,
    secrets: N,
    changes: CHANGES,
    setupSeconds: round(setupS),
    instant: {
      p50Ms: round(pct(instant, 50)),
      p99Ms: round(pct(instant, 99)),
      maxMs: round(Math.max(...instant)),
      vaultReadsPerChange: readsPerChange,
      changesSeconds: round(changesS),
    },
    idle: { seconds: IDLE_S, vaultReads: idleReads },
    down: {
      vaultWriteP50Ms: { listenerUp: writeUpMs, operatorDown: writeDownMs },
      changesWhileDown: values['down-changes'],
      deliveredSecondsAfterRestart: missedArrivedS,
    },
    polling: {
      secrets: POLL,
      refreshAfter: values['poll-refresh'],
      p50Ms: round(pct(polling, 50)),
      p99Ms: round(pct(polling, 99)),
      vaultReadsPerMinute: pollingReadsPerMinute,
    },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `instant-updates-${env.flavor}.json`), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  // Deleting the namespace removes the resources; their Secrets go with their owners.
  await kube.delete(Namespaces, ns).catch((err: unknown) => progress(`namespace not deleted: ${err}`));
  await kube.close();
}
