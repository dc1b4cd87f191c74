// instantUpdates across restarts (issue 15's fault cases), on the real stack with the chart's operator:
//   1. Ferry restarted while changes happen: the operator pod is killed (no grace period) while a
//      writer keeps changing KV secrets in the stack's Vault; the changes made while no operator
//      listened reach their destinations after the restart (its first reconciles and the catch-up
//      read on the audit stream's reconnection), never after refreshAfter (1h here).
//   2. Vault restarted: a private server with storage on disk (the stack's dev server keeps its data
//      in memory and cannot be restarted without losing it and every other test's setup), its socket
//      audit device pointed at the same operator. Changes before the stop and right after the
//      restart arrive through the reconnected stream.
// Both check that no destination Secret is ever missing or blanked meanwhile. Serial: the first
// kills the shared operator, and the catch-up reads every instant resource of the operator, which
// would disturb instant-updates.test.ts's exact read count.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VaultStaticSecrets } from '../../../src/api/resources.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Namespaces, Secrets } from '../../../src/k8s/resources.ts';
import type { Secret } from '../../../src/k8s/types.ts';
import { devVaultBinary, type PersistentVault, startPersistentVault } from '../../../stack/lib/devvault.ts';
import {
  adminClient,
  assertNoLeak,
  canary,
  decodeData,
  eventually,
  VaultAdmin,
} from '../../../stack/lib/fixtures.ts';
import { operatorLog } from '../../../stack/lib/operator-log.ts';
import { restartOperator } from '../../../stack/lib/stack.ts';
import { type StackEnv, useChartStack, useStack } from '../harness.ts';
import { type InstantTenant, instantTenant } from '../instant-tenant.ts';

const N = 20;
/** Far below refreshAfter (1h): the changes come through the stream or its catch-up. */
const ARRIVAL_MS = 60_000;
const log = (m: string) => process.stderr.write(`[instant restarts e2e] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const canaries: string[] = [];

/**
 * Lists the destinations every 250 ms until stopped and records any that is missing or holds no
 * value: an outage or restart must never delete or blank a destination Secret.
 */
function watchBlanks(kube: KubeClient, ns: string): { stop(): Promise<string[]> } {
  const seen: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const items = (await kube.list<Secret>(Secrets, { namespace: ns })).items;
      const byName = new Map(items.map((s) => [s.metadata.name, s]));
      for (let i = 0; i < N; i++) {
        const v = decodeData(byName.get(`d${i}`)?.data).value;
        if (!v)
          seen.push(`d${i} ${byName.has(`d${i}`) ? 'blank' : 'missing'} at ${new Date().toISOString()}`);
      }
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

describe('instantUpdates: Ferry restarted while changes happen', { timeout: 300_000 }, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let t: InstantTenant;

  before(async () => {
    env = await useChartStack('killing the operator pod');
    assert.ok(env.auditStreamPort, 'the chart-installed operator with its audit stream');
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    t = await instantTenant(env, kube, vault, { addr: env.vaultAddr, prefix: 'instant-ferry-restart', n: N });
  });
  after(async () => {
    await kube.delete(Namespaces, t.ns).catch(() => {});
    await vault.close();
    await kube.close();
  });

  it('delivers every change written while the operator was killed and restarting', async () => {
    const blanks = watchBlanks(kube, t.ns);
    let writing = true;
    let changes = 0;
    let changesWhileDown = 0;
    let down = false;
    const writer = (async () => {
      for (let k = 0; writing; k++) {
        const i = k % N;
        const value = canary(`s${i}`, canaries);
        await vault.kvPut('kvv2', `${t.ns}/s${i}`, { value });
        t.latest.set(i, value);
        changes++;
        if (down) changesWhileDown++;
        await sleep(300);
      }
    })();
    await sleep(2_000);
    down = true;
    const killedAt = Date.now();
    // Deleted with no grace period; the new pod takes the Lease over when the old one expires.
    await restartOperator(log, 'SIGKILL');
    down = false;
    const readyAt = Date.now();
    await sleep(3_000);
    writing = false;
    await writer;
    const lastWriteAt = Date.now();
    await eventually(
      'every change delivered',
      async () => {
        const left = await t.stale();
        return left.length === 0 ? true : undefined;
      },
      ARRIVAL_MS,
      250,
    );
    log(
      `${changes} changes (${changesWhileDown} while the operator was down for ` +
        `${((readyAt - killedAt) / 1000).toFixed(1)} s): all delivered ` +
        `${((Date.now() - lastWriteAt) / 1000).toFixed(1)} s after the last write`,
    );
    assert.ok(changesWhileDown > 0, 'changes were written while the operator was down');
    assert.deepEqual(await blanks.stop(), [], 'no destination missing or blanked');
    await assertNoLeak(env, kube, t.ns, VaultStaticSecrets, canaries);
  });
});

describe('instantUpdates: Vault restarted while changes happen', { timeout: 300_000 }, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let server: PersistentVault;
  let vault: VaultAdmin;
  let t: InstantTenant;

  before(async () => {
    env = await useStack();
    assert.ok(env.operator && env.auditStreamPort, 'the operator with its audit stream');
    const bin = devVaultBinary(env.flavor);
    assert.ok(bin, `the ${env.flavor} binary`);
    kube = adminClient(env);
    server = await startPersistentVault(env.flavor, bin, { auditStreamPort: env.auditStreamPort });
    vault = new VaultAdmin(env, { addr: server.addr, token: server.token });
    await vault.setup();
    if (env.flavor === 'vault') {
      await vault.enableAlwaysAudit();
      await vault.enableAuditStream(env.auditStreamPort);
    }
    t = await instantTenant(env, kube, vault, { addr: server.addr, prefix: 'instant-vault-restart', n: N });
  });
  after(async () => {
    await kube.delete(Namespaces, t?.ns ?? '').catch(() => {});
    await vault?.close();
    server?.stop();
    await kube?.close();
  });

  const change = async (i: number): Promise<void> => {
    const value = canary(`s${i}`, canaries);
    await vault.kvPut('kvv2', `${t.ns}/s${i}`, { value });
    t.latest.set(i, value);
  };
  const delivered = (what: string) =>
    eventually(what, async () => ((await t.stale()).length === 0 ? true : undefined), ARRIVAL_MS, 250);

  it('the private server streams to the operator', async () => {
    await change(0);
    await delivered('a change before any restart');
  });

  it('delivers the changes made before the stop and right after the restart', async () => {
    const blanks = watchBlanks(kube, t.ns);
    const connections = () =>
      operatorLog(env)
        .split('\n')
        .filter((l) => l.includes('audit stream connected')).length;
    const connectedBefore = connections();
    for (let i = 1; i <= 3; i++) await change(i);
    const stoppedAt = Date.now();
    await server.restart();
    const upAt = Date.now();
    // The first audited request after the unseal reconnects the socket device.
    for (let i = 4; i <= 8; i++) await change(i);
    await delivered('every change');
    log(
      `${env.flavor} down and sealed for ${((upAt - stoppedAt) / 1000).toFixed(1)} s; ` +
        `8 changes delivered ${((Date.now() - upAt) / 1000).toFixed(1)} s after the unseal`,
    );
    // And the stream keeps working on the new connection.
    await change(9);
    await delivered('a change after the reconnection');
    assert.ok(connections() > connectedBefore, 'the restarted server reconnected its audit device');
    assert.deepEqual(await blanks.stop(), [], 'no destination missing or blanked');
    await assertNoLeak(env, kube, t.ns, VaultStaticSecrets, canaries);
  });
});
