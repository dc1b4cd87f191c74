// Chaos: the API server answers Ferry 429 with Retry-After (issue 14). The test restarts the stack's
// kube-apiserver with API Priority and Fairness on, as every real cluster runs it (the stack keeps it
// off otherwise: see stack.ts), and back off at the end; it adds a priority level with no
// nominal seats and no borrowing that rejects what it cannot run at once (limitResponse Reject; the
// queueset still runs one request at a time), and a FlowSchema that sends it only the requests of
// Ferry's operator ServiceAccount to the core group, events.k8s.io and Ferry's kinds. Leases stay out (a leader
// that cannot renew for 10 s must give up its leadership, which is the lease faults' test), and so do
// the stack's components and the test's admin client (system:masters is exempt anyway). While it
// holds, the values of several VaultStaticSecrets change in bursts, so the operator's concurrent
// writes are rejected. Invariants: the API server did reject Ferry's requests, no destination Secret
// was deleted or blanked, the operator did not restart, it never retried an object sooner than the
// Retry-After it was given (its log: each failed reconcile names the 429 and its retryAfterSeconds),
// the VaultStaticSecrets' conditions name the 429 while it lasts, and everything converges once the
// FlowSchema is gone. Serial: it throttles the shared operator.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { VaultStaticSecrets } from '../../../src/api/resources.ts';
import { LEADER_ELECTION_ID } from '../../../src/consts/labels.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Leases, Namespaces, type ResourceType, Secrets } from '../../../src/k8s/resources.ts';
import type { KubeObject, Lease, Secret } from '../../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  canary,
  condition,
  decodeData,
  eventually,
  guardDestinations,
  type Manifest,
  synced,
  tenant,
  VaultAdmin,
  vss,
} from '../../../stack/lib/fixtures.ts';
import { logLines } from '../../../stack/lib/operator-log.ts';
import { apiServerReady, withPriorityAndFairness } from '../../../stack/lib/stack.ts';
import { operatorIncarnation, operatorLog, type StackEnv, uniqueName, useStack } from '../harness.ts';

const N = 16;
const HOLD_MS = 10_000;
const log = (m: string) => process.stderr.write(`[chaos-apf e2e] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const flowcontrol = (kind: string, plural: string): ResourceType => ({
  group: 'flowcontrol.apiserver.k8s.io',
  version: 'v1',
  kind,
  plural,
  namespaced: false,
});
const PriorityLevels = flowcontrol('PriorityLevelConfiguration', 'prioritylevelconfigurations');
const FlowSchemas = flowcontrol('FlowSchema', 'flowschemas');

describe('chaos: the API server rejects the operator with 429 and Retry-After (priority and fairness)', {
  timeout: 240_000,
}, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let level: string;
  const names = Array.from({ length: N }, (_, i) => `s${i}`);
  const latest = new Map<string, string>();
  const violations: string[] = [];
  const watchStop = new AbortController();
  let watching: Promise<void> | undefined;

  const figures: Record<string, unknown> = {};
  const apiReady = () => apiServerReady(env);
  async function change(name: string): Promise<void> {
    const v = canary(`apf-${name}`);
    latest.set(name, v);
    await vault.kvPut('kvv2', `${ns}/${name}`, { password: v });
  }
  /** The API server's count of requests this priority level rejected. */
  async function rejected(): Promise<number> {
    const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } });
    try {
      const res = await request(`${env.apiServer}/metrics`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${env.adminToken}` },
      });
      const text = await res.body.text();
      let n = 0;
      for (const line of text.split('\n'))
        if (
          line.startsWith('apiserver_flowcontrol_rejected_requests_total{') &&
          line.includes(`priority_level="${level}"`)
        )
          n += Number(line.split(' ').pop());
      return n;
    } finally {
      await agent.close();
    }
  }
  const converged = () =>
    eventually(
      'every VaultStaticSecret synced and current',
      async () => {
        for (const n of names) {
          const o = await kube.get<KubeObject>(VaultStaticSecrets, n, ns);
          if (!synced(o as Parameters<typeof synced>[0])) return false;
          const s = await kube.get<Secret>(Secrets, `c-${n}`, ns);
          if (decodeData(s.data).password !== latest.get(n)) return false;
        }
        return true;
      },
      60_000,
      250,
    );

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('chaos-apf');
    level = ns;
    figures.apiRestartMs = await withPriorityAndFairness(true, apiReady, log);
    // Whether or not the outage cost the operator its leadership, a leader renews after it: from
    // then on an operator restart is the test's failure.
    const upAt = Date.now();
    await eventually(
      'a leader renewing after the API server restart',
      async () => {
        const l = await kube.get<Lease>(Leases, LEADER_ELECTION_ID, env.operatorNamespace);
        return Date.parse(l.spec?.renewTime ?? '') > upAt;
      },
      60_000,
      250,
    );
    await tenant(env, kube, vault, ns);
    watching = guardDestinations(kube, ns, watchStop.signal, violations);
    for (const n of names) {
      await change(n);
      await apply(
        kube,
        vss(ns, n, {
          type: 'kv-v2',
          mount: 'kvv2',
          path: `${ns}/${n}`,
          refreshAfter: '2s',
          destination: { name: `c-${n}`, create: true },
        }),
      );
    }
    await converged();
  });

  after(async () => {
    watchStop.abort();
    await watching?.catch(() => {});
    await kube.delete(FlowSchemas, level).catch(() => {});
    await kube.delete(PriorityLevels, level).catch(() => {});
    await kube.delete(Namespaces, ns).catch(() => {});
    figures.apiRestoreMs = await withPriorityAndFairness(false, apiReady, log).catch((err: unknown) => {
      log(`restoring the API server: ${String(err)}`);
      return -1;
    });
    log(`figures ${JSON.stringify(figures)}`);
    await vault.close();
    await kube.close();
  });

  it("429 with Retry-After for the operator's requests: nothing blanked, no restart, Retry-After honoured, convergence after", async () => {
    const incarnation = await operatorIncarnation(env);
    const rejectedBefore = await rejected();
    await kube.create(PriorityLevels, {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'PriorityLevelConfiguration',
      metadata: { name: level },
      spec: {
        type: 'Limited',
        limited: {
          nominalConcurrencyShares: 0,
          lendablePercent: 0,
          borrowingLimitPercent: 0,
          limitResponse: { type: 'Reject' },
        },
      },
    } as Manifest);
    await kube.create(FlowSchemas, {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: { name: level },
      spec: {
        priorityLevelConfiguration: { name: level },
        matchingPrecedence: 500,
        distinguisherMethod: { type: 'ByUser' },
        rules: [
          {
            subjects: [
              {
                kind: 'ServiceAccount',
                serviceAccount: { namespace: env.operatorNamespace, name: env.operatorServiceAccount },
              },
            ],
            resourceRules: [
              {
                verbs: ['*'],
                apiGroups: ['', 'events.k8s.io', 'secrets.hashicorp.com'],
                resources: ['*'],
                namespaces: ['*'],
                clusterScope: true,
              },
            ],
          },
        ],
      },
    } as Manifest);
    const since = Date.now();
    // Bursts of changes: every value at once, so the operator's writes run concurrently.
    const deadline = since + HOLD_MS;
    let named: string | undefined;
    while (Date.now() < deadline) {
      await Promise.all(names.map(change));
      await sleep(1000);
      named ??= await (async () => {
        for (const n of names) {
          const c = condition(
            (await kube.get(VaultStaticSecrets, n, ns)) as {
              status?: { conditions?: { type: string; status: string; message: string }[] };
            },
            'SecretSynced',
          );
          if (c?.status === 'False' && /429|TooManyRequests|Too Many Requests/i.test(c.message))
            return `${n}: ${c.message}`;
        }
        return undefined;
      })();
    }
    const rejections = (await rejected()) - rejectedBefore;
    await kube.delete(FlowSchemas, level);
    await kube.delete(PriorityLevels, level);
    const cleared = Date.now();
    await converged();
    const convergeMs = Date.now() - cleared;

    // Each failed reconcile that names a Retry-After: the same object is not reconciled again
    // (successfully or not) sooner than that.
    const lines = logLines(operatorLog(env), since).filter((l) => l.namespace === ns);
    const tooSoon: string[] = [];
    let withRetryAfter = 0;
    for (const [i, l] of lines.entries()) {
      if (l.msg !== 'reconciler error' || l.err?.retryAfterSeconds === undefined) continue;
      withRetryAfter += 1;
      const next = lines
        .slice(i + 1)
        .find((m) => m.name === l.name && (m.msg === 'reconciler error' || m.msg === 'reconcile succeeded'));
      if (next && next.time - l.time < l.err.retryAfterSeconds * 1000 - 50)
        tooSoon.push(
          `${l.name}: ${next.time - l.time} ms after a Retry-After of ${l.err.retryAfterSeconds} s`,
        );
    }
    Object.assign(figures, { rejections, reconcileErrorsWithRetryAfter: withRetryAfter, convergeMs, named });
    log(`figures ${JSON.stringify(figures)}`);
    assert.ok(rejections > 0, 'the API server rejected some of the operator’s requests');
    assert.ok(withRetryAfter > 0, 'failed reconciles carried the Retry-After');
    assert.deepEqual(tooSoon, [], 'no object retried before its Retry-After');
    assert.ok(named, 'a SecretSynced condition named the 429 while it lasted');
    assert.deepEqual(violations, [], 'no destination deleted or blanked');
    assert.equal(await operatorIncarnation(env), incarnation, 'the operator did not restart');
  });
});
