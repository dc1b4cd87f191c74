// syncConfig.instantUpdates end to end on the stack's Vault or OpenBao: the dev server's socket
// audit device streams to the operator's listener (stack.ts sets it up), and a change in Vault
// reaches its destination Secret long before refreshAfter (1h here) would.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  canary,
  condition,
  decodeData,
  eventually,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, useStack } from './harness.ts';
import { instantTenant } from './instant-tenant.ts';

const N = 60;
const CHANGES = 10;
/** Generous: a change arrives in well under a second; refreshAfter is an hour. */
const ARRIVAL_MS = 30_000;

describe('instantUpdates (audit stream)', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  const canaries: string[] = [];

  /** Vault reads through this test's own VaultConnection: other files' resources, reconciled in
   * parallel, use others, so the count is this namespace's alone. */
  const vaultReads = async (): Promise<number> => {
    assert.ok(env.operator);
    const body = await (await fetch(`${env.operator.metrics}/metrics`)).text();
    const series = `vso_client_operations_total{operation="read",vault_connection="${ns}/instant"} `;
    const line = body.split('\n').find((l) => l.startsWith(series));
    return line ? Number(line.slice(series.length)) : 0;
  };
  const holds = (i: number, value: string) => async () => {
    const s = await kube.getIfExists<Secret>(Secrets, `d${i}`, ns);
    return decodeData(s?.data).value === value;
  };
  const change = async (i: number): Promise<string> => {
    const value = canary(`s${i}`, canaries);
    await vault.kvPut('kvv2', `${ns}/s${i}`, { value });
    return value;
  };
  /** Resets the TCP connections of the audit stream (both ends), as a network fault would. */
  const dropStream = (): void => {
    const port = env.auditStreamPort;
    execFileSync('ss', ['-K', `( sport = :${port} or dport = :${port} )`], { stdio: 'ignore' });
  };

  before(async () => {
    env = await useStack();
    assert.ok(env.operator && env.auditStreamPort, 'the stack runs the operator with its audit stream');
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ({ ns } = await instantTenant(env, kube, vault, { addr: env.vaultAddr, prefix: 'instant', n: N }));
  });
  after(async () => {
    await assertNoLeak(env, kube, ns, VaultStaticSecrets, canaries);
    await kube.close();
  });

  it('says in a condition that changes arrive through the audit stream', async () => {
    const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 's0', ns);
    const c = condition(o, 'InstantUpdates');
    assert.equal(c?.status, 'True');
    assert.equal(c?.reason, 'AuditStream');
  });

  it(`delivers ${CHANGES} changes with one Vault read each`, async () => {
    // Settle: the initial syncs are done and nothing else is due for an hour.
    await eventually('reads settle', async () => {
      const a = await vaultReads();
      await new Promise((r) => setTimeout(r, 1_000));
      return a === (await vaultReads());
    });
    const before = await vaultReads();
    const changed = new Map<number, string>();
    for (let i = 0; i < CHANGES; i++) changed.set(i * 5, await change(i * 5));
    for (const [i, value] of changed) await eventually(`d${i} updated`, holds(i, value), ARRIVAL_MS);
    await new Promise((r) => setTimeout(r, 1_000));
    // One KV read per change, none for the other resources.
    assert.equal((await vaultReads()) - before, CHANGES);
  });

  it('a change still arrives when the stream is dropped mid-change', async () => {
    const first = await change(1);
    dropStream();
    // Vault finds the connection gone on this write, reconnects and resends it; the operator
    // catches up on every instant resource after the reconnection, in case a line was lost.
    const second = await change(2);
    await eventually('d1 updated', holds(1, first), ARRIVAL_MS);
    await eventually('d2 updated', holds(2, second), ARRIVAL_MS);
    dropStream();
    const third = await change(3);
    await eventually('d3 updated', holds(3, third), ARRIVAL_MS);
  });

  it('removes the InstantUpdates condition when instantUpdates is turned off', async () => {
    const name = `s${N - 1}`;
    const spec = (await kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns)).spec ?? {};
    await apply(kube, vss(ns, name, { ...spec, syncConfig: { instantUpdates: false } }));
    await eventually(
      'the condition gone',
      async () => {
        const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns);
        return o.status?.lastGeneration === o.metadata.generation && !condition(o, 'InstantUpdates');
      },
      ARRIVAL_MS,
    );
  });

  // OpenBao has namespaces (Vault CE has none): the same mount and path in namespace `vns` is another
  // secret, and a write there wakes only the resource that reads that namespace.
  it('tells Vault namespaces apart', async (t) => {
    if (env.flavor !== 'openbao') return t.skip('Vault CE has no namespaces');
    const vns = ns;
    await vault.call('POST', `sys/namespaces/${vns}`);
    await vault.call('POST', `${vns}/sys/mounts/kvv2`, { type: 'kv', options: { version: '2' } });
    // The tenant's token comes from the root namespace; its policy grants the child's path.
    await vault.policy(
      `t-${ns}`,
      `path "kvv2/data/${ns}/*" { capabilities = ["read"] }\npath "${vns}/kvv2/data/${ns}/*" { capabilities = ["read"] }\n`,
    );
    await vault.kvPut('kvv2', `${ns}/shared`, { value: 'root-initial' });
    await vault.kvPut(`${vns}/kvv2`, `${ns}/shared`, { value: 'ns-initial' });
    const base = {
      mount: 'kvv2',
      type: 'kv-v2',
      path: `${ns}/shared`,
      refreshAfter: '1h',
      syncConfig: { instantUpdates: true },
    };
    await apply(kube, vss(ns, 'in-root', { ...base, destination: { name: 'd-root', create: true } }));
    await apply(
      kube,
      vss(ns, 'in-ns', { ...base, namespace: vns, destination: { name: 'd-ns', create: true } }),
    );
    const holdsIn = (dest: string, value: string) => async () =>
      decodeData((await kube.getIfExists<Secret>(Secrets, dest, ns))?.data).value === value;
    await eventually('d-root synced', holdsIn('d-root', 'root-initial'), ARRIVAL_MS);
    await eventually('d-ns synced', holdsIn('d-ns', 'ns-initial'), ARRIVAL_MS);
    await eventually('reads settle', async () => {
      const a = await vaultReads();
      await new Promise((r) => setTimeout(r, 1_000));
      return a === (await vaultReads());
    });

    const before = await vaultReads();
    const inNs = canary('in-ns', canaries);
    await vault.kvPut(`${vns}/kvv2`, `${ns}/shared`, { value: inNs });
    await eventually('d-ns updated', holdsIn('d-ns', inNs), ARRIVAL_MS);
    const inRoot = canary('in-root', canaries);
    await vault.kvPut('kvv2', `${ns}/shared`, { value: inRoot });
    await eventually('d-root updated', holdsIn('d-root', inRoot), ARRIVAL_MS);
    await new Promise((r) => setTimeout(r, 1_000));
    // One read per write: the write in `vns` did not wake the root-namespace resource, nor the reverse.
    assert.equal((await vaultReads()) - before, 2);
    assert.equal(decodeData((await kube.get<Secret>(Secrets, 'd-ns', ns)).data).value, inNs);
  });
});
