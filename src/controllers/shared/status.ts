// Status writes and finalizer hand-over shared by the controllers.
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import type { ResourceType } from '../../k8s/resources.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { removeFinalizerPatch } from '../../runtime/finalizer.ts';

/** Merge-patches `.status` only when it differs, so a steady-state reconcile writes nothing. A
 * vanished object is not an error: it was deleted while we worked. */
export async function writeStatus<S>(
  client: KubeClient,
  rt: ResourceType,
  obj: KubeObject & { status?: S | undefined },
  status: S,
): Promise<void> {
  if (isDeepStrictEqual(obj.status, status)) return;
  try {
    await client.patch(rt, obj.metadata.name ?? '', obj.metadata.namespace, { status }, 'merge', {
      subresource: 'status',
    });
  } catch (err) {
    if (isK8sApiError(err) && err.isNotFound()) return;
    throw err;
  }
}

/**
 * Ferry needs no finalizer on kinds whose cleanup Kubernetes garbage collection does (VSS, VaultAuth,
 * VaultConnection), so their deletion never waits for the operator. Objects VSO created still carry
 * its finalizer; release it when they are deleted.
 */
export async function releaseFinalizer(
  client: KubeClient,
  rt: ResourceType,
  obj: KubeObject,
  finalizer: string,
): Promise<void> {
  const ops = removeFinalizerPatch(obj, finalizer);
  if (!ops) return;
  try {
    await client.patch(rt, obj.metadata.name ?? '', obj.metadata.namespace, ops, 'json');
  } catch (err) {
    if (isK8sApiError(err) && err.isNotFound()) return;
    throw err;
  }
}
