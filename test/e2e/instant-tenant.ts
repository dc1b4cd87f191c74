// The instantUpdates end-to-end tests' tenant: n VaultStaticSecrets s<i> (kvv2 `<ns>/s<i>`, refreshAfter
// 1h, instantUpdates) with destinations d<i>, on the tenant's own VaultConnection `instant` to `addr`,
// so that the Vault reads counted under that connection are this namespace's alone.
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import { apply, decodeData, eventually, tenant, type VaultAdmin, vss } from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName } from './harness.ts';

export interface InstantTenant {
  ns: string;
  /** The value last written to each s<i>; the test updates it as it writes. */
  latest: Map<number, string>;
  /** The i whose destination does not hold latest(i) yet. */
  stale(): Promise<number[]>;
}

export async function instantTenant(
  env: StackEnv,
  kube: KubeClient,
  vault: VaultAdmin,
  o: { addr: string; prefix: string; n: number },
): Promise<InstantTenant> {
  const ns = uniqueName(o.prefix);
  await tenant(env, kube, vault, ns, { connection: { name: 'instant', address: o.addr } });
  const latest = new Map<number, string>();
  for (let i = 0; i < o.n; i++) {
    latest.set(i, `initial-${i}`);
    await vault.kvPut('kvv2', `${ns}/s${i}`, { value: `initial-${i}` });
    await apply(
      kube,
      vss(ns, `s${i}`, {
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/s${i}`,
        refreshAfter: '1h',
        syncConfig: { instantUpdates: true },
        destination: { name: `d${i}`, create: true },
      }),
    );
  }
  const stale = async (): Promise<number[]> => {
    const items = (await kube.list<Secret>(Secrets, { namespace: ns })).items;
    const held = new Map(items.map((s) => [s.metadata.name, decodeData(s.data).value]));
    return [...latest].filter(([i, v]) => held.get(`d${i}`) !== v).map(([i]) => i);
  };
  await eventually('initial sync', async () => (await stale()).length === 0, 120_000, 500);
  return { ns, latest, stale };
}
