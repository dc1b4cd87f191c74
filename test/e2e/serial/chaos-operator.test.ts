// Chaos on the operator process itself (issue 14), with the operator run from the checkout as local
// processes (the chart's Deployment scaled to zero meanwhile, restored after):
// 1. A kill at each await of the dynamic-secret path. The operator runs with the test-only preload
//    test/support/kill-at-request.ts, which SIGKILLs it at the k-th request event of a
//    VaultDynamicSecret's lifecycle on PostgreSQL — issue (credentials from Vault, destination
//    created), rotate (a spec change: new credentials, destination replaced, the old lease revoked),
//    revoke on delete — each request once before it is sent and once after its answer arrived. A
//    first lifecycle without a kill lists the steps; then one lifecycle per step, killed there and
//    finished by the restarted process. Invariants: the destination is never deleted or blanked while
//    its VaultDynamicSecret exists, its credentials log in after each phase, every lease the status
//    recorded is revoked on delete, and no lease is left behind — except by a kill between Vault's
//    answer with new credentials and the Secret write that records their lease (docs/security.md),
//    which leaves exactly that one. A kill after that write issues no credentials again: the
//    restarted operator adopts the lease the destination's record names.
// 2. Lease loss with a real second replica: replicas A and B (same ServiceAccount, leader election
//    on) under a workload of changing static secrets; A leads and is frozen (SIGSTOP). B must take
//    over within the lease duration; A, resumed (SIGCONT), must find its leadership lost and stop at
//    once (it exits, as controller-runtime does), with no write of A reaching the API server after B
//    holds the lease (each process's Secret writes are traced by the same preload), and the two must
//    not fight over the Lease.
// Serial: it replaces the shared operator.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VaultDynamicSecrets, VaultStaticSecrets } from '../../../src/api/resources.ts';
import type { VaultDynamicSecret } from '../../../src/api/v1beta1/vaultdynamicsecret.ts';
import { LEADER_ELECTION_ID } from '../../../src/consts/labels.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Leases, Namespaces, Secrets } from '../../../src/k8s/resources.ts';
import type { Lease, Secret } from '../../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  canary,
  decodeData,
  eventually,
  guardDestinations,
  leasedSecretsPolicy,
  pgConnection,
  pgLogin,
  pgRole,
  synced,
  tenant,
  VaultAdmin,
  vds,
  vss,
} from '../../../stack/lib/fixtures.ts';
import { alive } from '../../../stack/lib/proc.ts';
import {
  type OperatorProcess,
  repoRoot,
  restartOperator,
  startOperatorProcess,
  stopOperatorProcess,
} from '../../../stack/lib/stack.ts';
import { type StackEnv, uniqueName, useStack } from '../harness.ts';

const PRELOAD = join(repoRoot, 'test', 'support', 'kill-at-request.ts');
const log = (m: string) => process.stderr.write(`[chaos-operator e2e] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A traced step: Vault answered a request for credentials (a lease was issued). */
const ANSWERED_CREDS = /^answered \S+ \S*\/creds\//;
/** Whether a kill at step `i` falls between Vault's answer with new credentials and the Secret write
 * that records their lease (sent or not): nothing durable names that lease yet. */
const inFlight = (steps: string[], i: number): boolean =>
  ANSWERED_CREDS.test(steps[i] ?? '') ||
  (/^send (?:POST|PUT) \S*\/secrets/.test(steps[i] ?? '') && ANSWERED_CREDS.test(steps[i - 1] ?? ''));

describe('chaos: kills along the dynamic-secret path, and lease loss with two replicas', {
  timeout: 420_000,
}, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let mount: string;
  let planFile: string;
  const figures: Record<string, unknown> = {};
  const violations: string[] = [];
  /** Destinations whose owner is being deleted: their Secret may go with it. */
  const deleting = new Set<string>();
  const watchStop = new AbortController();
  let watching: Promise<void> | undefined;
  const t0 = Date.now();

  const writePlan = (plan: { id: string; match: string; at: number; trace?: string }) =>
    writeFileSync(planFile, JSON.stringify(plan));
  const dropLease = () => kube.delete(Leases, LEADER_ELECTION_ID, env.operatorNamespace).catch(() => {});
  const holder = async () =>
    (await kube.getIfExists<Lease>(Leases, LEADER_ELECTION_ID, env.operatorNamespace))?.spec
      ?.holderIdentity ?? '';
  const holderPid = async () => Number(/_(\d+)_[a-z0-9]+$/.exec(await holder())?.[1] ?? 0);

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('chaos-op');
    mount = `db-${ns}`;
    planFile = join(env.dir, `${ns}-kill-plan.json`);
    await tenant(env, kube, vault, ns, { policy: leasedSecretsPolicy(mount, 'none') });
    await vault.call('POST', `sys/mounts/${mount}`, { type: 'database' });
    await vault.call('POST', `${mount}/config/pg`, pgConnection(env));
    watching = guardDestinations(kube, ns, watchStop.signal, violations, (n) => deleting.has(n));
    // The operator under test is replaced by local processes for this file.
    await stopOperatorProcess('operator');
    await dropLease();
  });

  after(async () => {
    watchStop.abort();
    await watching?.catch(() => {});
    log(`figures ${JSON.stringify({ ...figures, totalMs: Date.now() - t0 })}`);
    for (const p of ['ferry-kp', 'ferry-a', 'ferry-b'])
      await stopOperatorProcess(p, 'SIGKILL').catch(() => {});
    await dropLease();
    await restartOperator(log).catch((err: unknown) => log(`restoring the operator: ${String(err)}`));
    await kube.delete(Namespaces, ns).catch(() => {});
    await vault.call('POST', `sys/leases/revoke-prefix/${mount}`).catch(() => {});
    await vault.call('DELETE', `sys/mounts/${mount}`).catch(() => {});
    rmSync(planFile, { force: true });
    await vault.close();
    await kube.close();
  });

  it('a kill at each request of issue → write → rotate → revoke: nothing blanked, nothing lost, no lease orphaned but the one in flight', async () => {
    const trace = join(env.dir, `${ns}-kill-trace`);
    let planId = '';
    let op: OperatorProcess | undefined;
    const start = async () => {
      op = await startOperatorProcess(log, 'ferry-kp', {
        nodeArgs: ['--import', PRELOAD],
        env: { FERRY_KILL_PLAN: planFile },
        auditStream: false,
        waitReady: false,
      });
    };
    // Restarts the operator once the preload killed it (its Lease dropped: its holder is dead).
    let kills = 0;
    let restarting: Promise<void> | undefined;
    const supervise = setInterval(() => {
      if (restarting || !op || alive(op.pid)) return;
      kills += 1;
      restarting = (async () => {
        // The restarted process never kills; it traces the same requests.
        const k = Number(/^kill-(\d+)$/.exec(planId)?.[1] ?? 0);
        writePlan(
          k
            ? { id: `after-${k}`, match: match(k), at: 0, trace: `${trace}-${k}` }
            : { id: `after-${kills}`, match: '(?!)', at: 0 },
        );
        await dropLease();
        await start();
      })().finally(() => {
        restarting = undefined;
      });
    }, 50);

    const get = (name: string) => kube.getIfExists<VaultDynamicSecret>(VaultDynamicSecrets, name, ns);
    const leasesOf = async (role: string): Promise<string[]> =>
      (
        (await vault.call('GET', `sys/leases/lookup/${mount}/creds/${role}?list=true`).catch(() => undefined))
          ?.data as { keys?: string[] } | undefined
      )?.keys ?? [];
    const loginsWith = async (what: string, dest: string) => {
      const c = decodeData((await kube.get<Secret>(Secrets, dest, ns)).data);
      await eventually(
        `${what}: ${dest} logs in`,
        async () => (await pgLogin(env, c.username ?? '', c.password ?? '')) === c.username,
        20_000,
        250,
      );
    };
    /** One lifecycle of VaultDynamicSecret v<i> (its own role r<i>); returns the leases left. */
    async function lifecycle(i: number): Promise<{ left: string[]; recorded: string[] }> {
      const name = `v${i}`;
      const role = `r${i}`;
      const dest = `c-${name}`;
      const recorded: string[] = [];
      const spec = (renewalPercent: number) =>
        vds(ns, name, {
          mount,
          path: `creds/${role}`,
          renewalPercent,
          destination: { name: dest, create: true },
        });
      const syncedAt = async (generation: number, what: string) => {
        const o = await eventually(
          `${name} ${what}`,
          async () => {
            const v = await get(name);
            return v && synced(v) && v.metadata.generation === generation && v.status?.secretLease?.id
              ? v
              : undefined;
          },
          40_000,
          100,
        );
        recorded.push(o.status?.secretLease?.id ?? '');
        await loginsWith(`${name} ${what}`, dest);
      };
      await apply(kube, spec(60));
      await syncedAt(1, 'issued');
      await apply(kube, spec(61));
      await syncedAt(2, 'rotated');
      deleting.add(dest);
      await kube.delete(VaultDynamicSecrets, name, ns);
      await eventually(`${name} deleted`, async () => (await get(name)) === undefined, 40_000, 100);
      // The revoke of the replaced lease runs on the operator's task queue: give it a moment.
      const left = await eventually(
        `${name}: the recorded leases revoked`,
        async () => {
          const l = await leasesOf(role);
          return recorded.some((id) => l.some((k) => id.endsWith(k))) ? undefined : l;
        },
        20_000,
        200,
      );
      return { left, recorded };
    }
    const roles = async (n: number) => {
      for (let i = 0; i <= n; i++)
        await vault.call('POST', `${mount}/roles/r${i}`, pgRole(env, 'pg', '1h', '1h'));
    };
    function match(i: number): string {
      return `^(send|answered) (?:\\S+ \\S*/v1/${esc(mount)}/creds/r${i}$|\\S+ \\S*/v1/sys/leases/revoke$|(?:POST|PUT|PATCH) \\S*/namespaces/${esc(ns)}/secrets(?:/c-v${i})?(?:\\?|$))`;
    }

    try {
      // The steps, from one lifecycle without a kill.
      await roles(0);
      planId = 'trace';
      writePlan({ id: planId, match: match(0), at: 0, trace });
      await start();
      const started = Date.now();
      const first = await lifecycle(0);
      const steps = readFileSync(trace, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ').slice(2).join(' '));
      log(`${steps.length} steps in ${Date.now() - started} ms:\n  ${steps.join('\n  ')}`);
      assert.deepEqual(first.left, [], 'no lease left without a kill');
      assert.ok(steps.length >= 8, 'the trace saw the issue, rotate and revoke requests');
      await roles(steps.length);
      const issuedBy = (file: string) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => ANSWERED_CREDS.test(l.split(' ').slice(2).join(' '))).length;
      assert.equal(issuedBy(trace), 2, 'a lifecycle issues credentials twice (issue, rotate)');

      const results: {
        k: number;
        step: string;
        orphans: number;
        issued: number;
        inFlight: boolean;
        ms: number;
      }[] = [];
      for (let k = 1; k <= steps.length; k++) {
        const before = kills;
        const at = Date.now();
        planId = `kill-${k}`;
        writePlan({ id: planId, match: match(k), at: k, trace: `${trace}-${k}` });
        const { left } = await lifecycle(k);
        const step = steps[k - 1] ?? '';
        const window = inFlight(steps, k - 1);
        const issued = issuedBy(`${trace}-${k}`);
        results.push({ k, step, orphans: left.length, issued, inFlight: window, ms: Date.now() - at });
        log(
          `kill ${k} (${step}): ${kills > before ? 'killed' : 'NOT killed'}, ${left.length} lease(s) left, ${issued} credentials issued, ${Date.now() - at} ms`,
        );
        assert.deepEqual(violations, [], `after the kill at ${step}`);
        assert.equal(
          left.length,
          window ? 1 : 0,
          `kill at ${step}: ${window ? 'only the lease in flight is' : 'no lease is'} left`,
        );
        assert.equal(
          issued,
          window ? 3 : 2,
          `kill at ${step}: ${window ? 'the credentials in flight are replaced once' : 'no credentials issued again'}`,
        );
        // Leave no orphan to the next round (a real cluster has it expire at its TTL).
        for (const l of left)
          await vault.call('PUT', 'sys/leases/revoke', { lease_id: `${mount}/creds/r${k}/${l}` });
      }
      figures.killPoints = results;
      assert.ok(
        kills >= steps.length - 1,
        `the operator was killed at (almost) every step (${kills}/${steps.length})`,
      );
    } finally {
      clearInterval(supervise);
      await restarting;
      await stopOperatorProcess('ferry-kp', 'SIGTERM').catch(() => {});
      await dropLease();
      for (let k = 0; k <= 20; k++) rmSync(`${trace}-${k}`, { force: true });
    }
  });

  it('lease loss: the frozen leader is replaced within the lease duration, stops at once when resumed, and no write of it lands after', async () => {
    const statics = ['s0', 's1', 's2'];
    for (const s of statics) {
      await vault.kvPut('kvv2', `${ns}/${s}`, { password: canary(s) });
      await apply(
        kube,
        vss(ns, s, {
          type: 'kv-v2',
          mount: 'kvv2',
          path: `${ns}/${s}`,
          refreshAfter: '2s',
          destination: { name: `c-${s}`, create: true },
        }),
      );
    }
    // Each replica's Secret writes, with their times, through the same preload (never killing).
    const traceA = join(env.dir, `${ns}-trace-a`);
    const traceB = join(env.dir, `${ns}-trace-b`);
    const writes = `^send (?:POST|PUT|PATCH) \\S*/namespaces/${esc(ns)}/secrets`;
    const planA = `${planFile}.a`;
    const planB = `${planFile}.b`;
    writeFileSync(planA, JSON.stringify({ id: 'a', match: writes, at: 0, trace: traceA }));
    writeFileSync(planB, JSON.stringify({ id: 'b', match: writes, at: 0, trace: traceB }));
    const replica = (name: string, plan: string) =>
      startOperatorProcess(log, name, {
        nodeArgs: ['--import', PRELOAD],
        env: { FERRY_KILL_PLAN: plan },
        auditStream: false,
      });
    const a = await replica('ferry-a', planA);
    await eventually('A leads', async () => (await holderPid()) === a.pid, 30_000, 200);
    const b = await replica('ferry-b', planB);
    let k = 0;
    const churn = setInterval(() => {
      const s = statics[k++ % statics.length] as string;
      void vault.kvPut('kvv2', `${ns}/${s}`, { password: canary(s) }).catch(() => {});
    }, 300);
    const writesOf = (file: string) => {
      try {
        return readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => Number(l.split(' ')[1]));
      } catch {
        return [];
      }
    };
    try {
      await eventually('A writes the churn', async () => writesOf(traceA).length >= 3, 20_000, 200);
      const stoppedAt = Date.now();
      process.kill(a.pid, 'SIGSTOP');
      const takeover = await eventually(
        'B takes over',
        async () => ((await holderPid()) === b.pid ? Date.now() : undefined),
        30_000,
        100,
      );
      const takeoverMs = takeover - stoppedAt;
      await eventually(
        'B writes the churn',
        async () => writesOf(traceB).some((t) => t > takeover),
        20_000,
        200,
      );
      await sleep(1000);
      const resumedAt = Date.now();
      process.kill(a.pid, 'SIGCONT');
      await eventually('A exits on its lost leadership', async () => !alive(a.pid), 20_000, 100);
      const exitMs = Date.now() - resumedAt;
      const late = writesOf(traceA).filter((t) => t >= takeover);
      const lostLine = readFileSync(a.log, 'utf8')
        .split('\n')
        .find((l) => l.includes('leadership lost'));
      // B keeps the Lease: nobody fights over it.
      const transitions = async () =>
        (await kube.get<Lease>(Leases, LEADER_ELECTION_ID, env.operatorNamespace)).spec?.leaseTransitions ??
        0;
      const before = await transitions();
      await sleep(3000);
      figures.leaseLoss = {
        takeoverMs,
        exitAfterResumeMs: exitMs,
        lateWritesOfA: late.length,
        writesOfB: writesOf(traceB).length,
      };
      log(`lease loss: ${JSON.stringify(figures.leaseLoss)}`);
      assert.ok(
        takeoverMs <= 15_000 + 2_000 * 2.2 + 1_000,
        `B took over within the lease duration and one jittered retry (2 s × up to 2.2): ${takeoverMs} ms`,
      );
      assert.ok(lostLine, 'A logged that it lost its leadership');
      assert.deepEqual(
        late.map((t) => t - takeover),
        [],
        'no write of A after B holds the lease',
      );
      assert.equal(await holderPid(), b.pid, 'B still leads');
      assert.equal(await transitions(), before, 'no lease transition after the takeover');
      for (const s of statics) {
        await eventually(
          `${s} current under B`,
          async () => {
            const o = await kube.getIfExists(VaultStaticSecrets, s, ns);
            return o && synced(o as Parameters<typeof synced>[0]);
          },
          20_000,
          200,
        );
      }
      assert.deepEqual(violations, []);
    } finally {
      clearInterval(churn);
      if (alive(a.pid)) process.kill(a.pid, 'SIGCONT');
      await stopOperatorProcess('ferry-a', 'SIGKILL').catch(() => {});
      await stopOperatorProcess('ferry-b', 'SIGTERM').catch(() => {});
      rmSync(planA, { force: true });
      rmSync(planB, { force: true });
    }
  });
});
