// Status writes and finalizer hand-over shared by the controllers.
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import type { ResourceType } from '../../k8s/resources.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { removeFinalizerPatch } from '../../runtime/finalizer.ts';

type WithStatus<S> = KubeObject & { status?: S | undefined };

/**
 * The status this replica last wrote per object. A reconcile can run again before the informer has
 * seen that write (e.g. woken by the watch event of the Secret it just wrote); building on the cached
 * copy would then drop what the previous run added (a RolloutRestart condition, say).
 */
export class StatusMemo<S> {
  readonly #last = new Map<string, { writtenOver: string | undefined; status: S }>();

  /** The freshest status known: ours while the cache still shows the version we patched. */
  current(obj: WithStatus<S>): S | undefined {
    const e = this.#last.get(obj.metadata.uid ?? '');
    return e && e.writtenOver === obj.metadata.resourceVersion ? e.status : obj.status;
  }

  record(obj: WithStatus<S>, status: S): void {
    const uid = obj.metadata.uid ?? '';
    this.#last.delete(uid);
    if (this.#last.size >= 100_000) this.#last.delete(this.#last.keys().next().value as string);
    this.#last.set(uid, { writtenOver: obj.metadata.resourceVersion, status });
  }
}

/** Merge-patches `.status` only when it differs, so a steady-state reconcile writes nothing. A
 * vanished object is not an error: it was deleted while we worked. */
export async function writeStatus<S>(
  client: KubeClient,
  rt: ResourceType,
  obj: WithStatus<S>,
  status: S,
  memo?: StatusMemo<S>,
): Promise<void> {
  const previous = memo ? memo.current(obj) : obj.status;
  if (isDeepStrictEqual(previous, status)) return;
  try {
    await client.patch(rt, obj.metadata.name ?? '', obj.metadata.namespace, { status }, 'merge', {
      subresource: 'status',
    });
    memo?.record(obj, status);
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
