// ferry_secret_expiry_timestamp_seconds: when each VaultDynamicSecret's lease and VaultPKISecret's
// certificate expires, as their status records it (lastRenewalTime + lease duration; expiration).
// Computed at scrape time from the informers' stores, like resource-status.ts: it always matches
// status, on every replica, and a deleted object's series goes with it (one series per object).
import { VaultDynamicSecrets, VaultPKISecrets } from '../api/resources.ts';
import type { VaultDynamicSecret } from '../api/v1beta1/vaultdynamicsecret.ts';
import type { VaultPKISecret } from '../api/v1beta1/vaultpkisecret.ts';
import type { KubeObject } from '../k8s/types.ts';
import { secretExpiryMetric } from '../metrics/controller.ts';
import type { Gauge } from '../metrics/registry.ts';
import type { Store } from '../runtime/store.ts';
import type { KindSetup } from './setup.ts';
import { isLeased } from './vaultdynamicsecret/plan.ts';

type Lister<T> = Pick<Store<T>, 'list'>;

/** The expiry (Unix seconds) of a dynamic secret's lease; undefined for lease-less or static
 * credentials (nothing expires that Ferry renews). */
function leaseExpiry(o: VaultDynamicSecret): number | undefined {
  const s = o.status;
  return s?.secretLease && isLeased(s.secretLease) ? s.lastRenewalTime + s.secretLease.duration : undefined;
}

/** The expiry (Unix seconds) of a PKI secret's certificate; undefined before the first issue. */
function certificateExpiry(o: VaultPKISecret): number | undefined {
  const e = o.status?.expiration;
  return o.status?.serialNumber && typeof e === 'number' && e > 0 ? e : undefined;
}

/** Rebuilds the gauge from the stores. */
export function collectSecretExpiry(
  gauge: Gauge<'kind' | 'namespace' | 'name'>,
  dynamic: Lister<VaultDynamicSecret>,
  pki: Lister<VaultPKISecret>,
): void {
  gauge.reset();
  const add = (kind: string, o: KubeObject, expiry: number | undefined): void => {
    if (expiry === undefined) return;
    gauge.set({ kind, namespace: o.metadata.namespace ?? '', name: o.metadata.name ?? '' }, expiry);
  };
  for (const o of dynamic.list()) add(VaultDynamicSecrets.kind, o, leaseExpiry(o));
  for (const o of pki.list()) add(VaultPKISecrets.kind, o, certificateExpiry(o));
}

/** Registered after the kinds' setups: it reuses their informers. */
export const setupSecretExpiry: KindSetup = ({ manager }) => {
  const dynamic = manager.informer<VaultDynamicSecret>(VaultDynamicSecrets).store;
  const pki = manager.informer<VaultPKISecret>(VaultPKISecrets).store;
  const gauge = secretExpiryMetric(manager.metrics);
  gauge.onCollect(() => collectSecretExpiry(gauge, dynamic, pki));
};
