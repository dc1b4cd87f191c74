// VSO's controller_resource_status for the kinds whose status has `valid` (VaultAuth,
// VaultConnection, SecretTransformation, VaultPKISecret, HCPAuth). Computed at scrape time from the
// informers' stores, so it always matches what status says and a deleted object's series goes with it.
import {
  HCPAuths,
  SecretTransformations,
  VaultAuths,
  VaultConnections,
  VaultPKISecrets,
} from '../api/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { resourceStatusMetric } from '../metrics/controller.ts';
import type { Gauge } from '../metrics/registry.ts';
import type { Store } from '../runtime/store.ts';
import type { KindSetup } from './setup.ts';

type WithValid = KubeObject & { status?: { valid?: unknown } };

/** Rebuilds the gauge from the stores: one series per object whose status has said whether it is valid. */
export function collectResourceStatus(
  gauge: Gauge<'controller' | 'name' | 'namespace'>,
  sources: readonly { controller: string; store: Pick<Store<WithValid>, 'list'> }[],
): void {
  gauge.reset();
  for (const { controller, store } of sources) {
    for (const o of store.list()) {
      const valid = o.status?.valid;
      if (typeof valid !== 'boolean') continue;
      const labels = { controller, name: o.metadata.name ?? '', namespace: o.metadata.namespace ?? '' };
      gauge.set(labels, valid ? 1 : 0);
    }
  }
}

/** Registered after every kind's own setup: it reuses their informers (Manager.informer is shared per
 * resource) and must not create one first without the indexes its kind asks for. */
export const setupResourceStatus: KindSetup = ({ manager }) => {
  const sources = [VaultAuths, VaultConnections, SecretTransformations, VaultPKISecrets, HCPAuths].map(
    (rt) => ({
      controller: rt.kind.toLowerCase(),
      store: manager.informer<WithValid>(rt).store,
    }),
  );
  const gauge = resourceStatusMetric(manager.metrics);
  gauge.onCollect(() => collectResourceStatus(gauge, sources));
};
