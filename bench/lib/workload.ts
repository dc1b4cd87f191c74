// The benchmark's workload: N kv-v2 secrets over 10 namespaces, each namespace with its own
// ServiceAccount, Vault role and policy, and per operator the resources a user of it would write
// (VSO's API for Ferry and VSO, a SecretStore and ExternalSecrets for ESO, nothing for the raw loop).
import { randomBytes } from 'node:crypto';
import {
  VaultAuths,
  VaultConnections,
  VaultDynamicSecrets,
  VaultStaticSecrets,
} from '../../src/api/resources.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Namespaces, type ResourceType, ServiceAccounts } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { VaultAdmin } from '../../stack/lib/fixtures.ts';

export const NAMESPACES = 10;
/** The workload's refresh period (`refreshAfter`, `refreshInterval`) unless a scenario sets another. */
export const REFRESH_S = 30;

/** A scenario's refresh period in seconds: n for `refresh-<n>s`, else REFRESH_S. */
export function refreshSeconds(scenario: string): number {
  const m = /^refresh-(\d+)s$/.exec(scenario);
  return m ? Number(m[1]) : REFRESH_S;
}
const es = (kind: string, plural: string): ResourceType => ({
  group: 'external-secrets.io',
  version: 'v1',
  kind,
  plural,
  namespaced: true,
});
export const SecretStores = es('SecretStore', 'secretstores');
export const ExternalSecrets = es('ExternalSecret', 'externalsecrets');

export type Flavour = 'vso-api' | 'eso' | 'none';

export const nsOf = (i: number): string => `bench-${i % NAMESPACES}`;
export const nameOf = (i: number): string => `s${i}`;
export const keyOf = (i: number): string => `${nsOf(i)}/${nameOf(i)}`;
export const roleOf = (ns: string): string => `bench-${ns}`;

/** Runs `fn` over 0..n-1 with at most `limit` in flight. */
export async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

const value = (gen: number): string => `v${gen}-${randomBytes(12).toString('hex')}`;

/** Writes every secret's value to Vault (kvv2 `<ns>/s<i>`); returns the values by key. */
export async function plantValues(
  vault: VaultAdmin,
  n: number,
  gen = 0,
  only?: number[],
): Promise<Map<string, string>> {
  const ids = only ?? Array.from({ length: n }, (_, i) => i);
  const out = new Map<string, string>();
  await pool(ids.length, 16, async (j) => {
    const i = ids[j] as number;
    const v = value(gen);
    await vault.kvPut('kvv2', keyOf(i), { value: v });
    out.set(keyOf(i), v);
  });
  return out;
}

/** The database engine of the restart scenario: mount `db`, role `dyn` on the stack's PostgreSQL. */
export const DB_MOUNT = 'db';

/** The namespaces, their ServiceAccount `app`, Vault policy and kubernetes-auth role (allowed database
 * credentials and lease renewal too with `dynamic`). */
export async function tenants(kube: KubeClient, vault: VaultAdmin, dynamic = false): Promise<void> {
  for (let k = 0; k < NAMESPACES; k++) {
    const ns = nsOf(k);
    const extra = dynamic
      ? `path "${DB_MOUNT}/creds/dyn" { capabilities = ["read"] }\npath "sys/leases/*" { capabilities = ["update"] }\n`
      : '';
    await kube.create(Namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await kube.create(ServiceAccounts, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'app', namespace: ns },
    });
    await vault.policy(roleOf(ns), `path "kvv2/data/${ns}/*" { capabilities = ["read"] }\n${extra}`);
    await vault.kubernetesRole(roleOf(ns), { serviceAccount: 'app', namespace: ns, policies: [roleOf(ns)] });
  }
}

type Obj = KubeObject & { apiVersion: string; kind: string; spec: Record<string, unknown> };

/** Per namespace: how the operator reaches Vault (through `vaultAddr`, the counting proxy). */
export function perNamespace(flavour: Flavour, ns: string, vaultAddr: string): [ResourceType, Obj][] {
  if (flavour === 'eso') {
    return [
      [
        SecretStores,
        {
          apiVersion: 'external-secrets.io/v1',
          kind: 'SecretStore',
          metadata: { name: 'vault', namespace: ns },
          spec: {
            provider: {
              vault: {
                server: vaultAddr,
                path: 'kvv2',
                version: 'v2',
                auth: {
                  kubernetes: {
                    mountPath: 'kubernetes',
                    role: roleOf(ns),
                    serviceAccountRef: { name: 'app', audiences: ['vault'] },
                  },
                },
              },
            },
          },
        },
      ],
    ];
  }
  if (flavour === 'none') return [];
  return [
    [
      VaultConnections,
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultConnection',
        metadata: { name: 'vault', namespace: ns },
        spec: { address: vaultAddr },
      },
    ],
    [
      VaultAuths,
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultAuth',
        metadata: { name: 'auth', namespace: ns },
        spec: {
          vaultConnectionRef: 'vault',
          method: 'kubernetes',
          mount: 'kubernetes',
          kubernetes: { role: roleOf(ns), serviceAccount: 'app', audiences: ['vault'] },
        },
      },
    ],
  ];
}

/** The resource that syncs secret `i` into Secret `s<i>`. */
export function perSecret(
  flavour: Flavour,
  i: number,
  refreshS = REFRESH_S,
): [ResourceType, Obj] | undefined {
  const ns = nsOf(i);
  const name = nameOf(i);
  if (flavour === 'eso') {
    return [
      ExternalSecrets,
      {
        apiVersion: 'external-secrets.io/v1',
        kind: 'ExternalSecret',
        metadata: { name, namespace: ns },
        spec: {
          refreshInterval: `${refreshS}s`,
          secretStoreRef: { name: 'vault', kind: 'SecretStore' },
          target: { name },
          dataFrom: [{ extract: { key: `${ns}/${name}` } }],
        },
      },
    ];
  }
  if (flavour === 'none') return undefined;
  return [
    VaultStaticSecrets,
    {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultStaticSecret',
      metadata: { name, namespace: ns },
      spec: {
        vaultAuthRef: 'auth',
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/${name}`,
        refreshAfter: `${refreshS}s`,
        destination: { name, create: true },
      },
    },
  ];
}

/** Creates the operator's resources for N secrets (before the operator starts). */
export async function createResources(
  kube: KubeClient,
  flavour: Flavour,
  n: number,
  vaultAddr: string,
  refreshS = REFRESH_S,
): Promise<void> {
  for (let k = 0; k < NAMESPACES; k++) {
    for (const [rt, obj] of perNamespace(flavour, nsOf(k), vaultAddr)) await kube.create(rt, obj);
  }
  await pool(n, 16, async (i) => {
    const r = perSecret(flavour, i, refreshS);
    if (r) await kube.create(r[0], r[1]);
  });
}

export const dynNameOf = (i: number): string => `d${i}`;

/** Dynamic secret `i` (VSO's API): database credentials into Secret `d<i>`, restarting Deployment
 * `d<i>` (no replicas: only its pod template's changes are counted) when they change. */
export async function createDynamic(kube: KubeClient, count: number): Promise<void> {
  await pool(count, 16, async (i) => {
    const ns = nsOf(i);
    const name = dynNameOf(i);
    await kube.create(Deployments, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'c', image: 'example.invalid/app:1' }] },
        },
      },
    });
    await kube.create(VaultDynamicSecrets, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultDynamicSecret',
      metadata: { name, namespace: ns },
      spec: {
        vaultAuthRef: 'auth',
        mount: DB_MOUNT,
        path: 'creds/dyn',
        destination: { name, create: true },
        rolloutRestartTargets: [{ kind: 'Deployment', name }],
      },
    });
  });
}
