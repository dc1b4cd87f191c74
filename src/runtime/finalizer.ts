// One finalizer routine with kube-rs guarantees (kube-runtime finalizer.rs):
// - the finalizer is added before apply ever runs, so once apply has started, cleanup is guaranteed
//   to run before the object can disappear;
// - cleanup runs only when the object is being deleted, and the finalizer is removed only after
//   cleanup succeeded;
// - every change is a JSON Patch guarded by `test`, so a concurrent edit to the finalizer list makes
//   the patch fail (and the reconcile retry from fresh state) instead of being overwritten.
// Apply and cleanup must both be idempotent: either may run again after a failure or a restart.
import type { KubeObject } from '../k8s/types.ts';
import type { Action } from './controller.ts';

export type JsonPatchOp =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** Sends a JSON Patch for the object and returns the patched object. Usually
 * `(ops) => client.patch(rt, name, namespace, ops, 'json')`. */
export type JsonPatcher<T> = (ops: JsonPatchOp[]) => Promise<T>;

/** Patch adding `finalizer`, or undefined if it is already there. */
export function addFinalizerPatch(obj: KubeObject, finalizer: string): JsonPatchOp[] | undefined {
  const current = obj.metadata.finalizers;
  if (current?.includes(finalizer)) return undefined;
  if (current === undefined) {
    // A missing field tests equal to null in the apiserver's JSON Patch implementation.
    return [
      { op: 'test', path: '/metadata/finalizers', value: null },
      { op: 'add', path: '/metadata/finalizers', value: [finalizer] },
    ];
  }
  return [
    { op: 'test', path: '/metadata/finalizers', value: current },
    { op: 'add', path: '/metadata/finalizers/-', value: finalizer },
  ];
}

/** Patch removing every occurrence of `finalizer` (the apiserver does not de-duplicate finalizers,
 * kube#964), or undefined if absent. Each removal is by index, guarded by a test of that index, from
 * the highest index down so earlier removals do not shift later ones. */
export function removeFinalizerPatch(obj: KubeObject, finalizer: string): JsonPatchOp[] | undefined {
  const current = obj.metadata.finalizers ?? [];
  const ops: JsonPatchOp[] = [];
  for (let i = current.length - 1; i >= 0; i--) {
    if (current[i] !== finalizer) continue;
    ops.push(
      { op: 'test', path: `/metadata/finalizers/${i}`, value: finalizer },
      { op: 'remove', path: `/metadata/finalizers/${i}` },
    );
  }
  return ops.length > 0 ? ops : undefined;
}

export interface FinalizerHandlers<T> {
  /** Bring the world in line with the object. Runs only while the finalizer is present. */
  apply(obj: T): Promise<Action>;
  /** Undo what apply did. Runs only under deletion; throwing keeps the finalizer for a retry. */
  cleanup(obj: T): Promise<Action>;
}

const AWAIT_CHANGE: Action = { awaitChange: true };

/**
 * Dispatch a reconcile through the finalizer state machine:
 * - not deleting, finalizer missing → add it, then apply to the patched object (kube-rs waits for the
 *   next watch event instead, but that event is metadata-only and generation predicates drop it);
 * - not deleting, finalizer present → apply;
 * - deleting, finalizer present → cleanup, then remove the finalizer;
 * - deleting, finalizer absent → nothing to do.
 * Errors from apply, cleanup or the patches propagate to the controller (rate-limited retry).
 */
export async function reconcileWithFinalizer<T extends KubeObject>(
  obj: T,
  finalizer: string,
  patch: JsonPatcher<T>,
  handlers: FinalizerHandlers<T>,
): Promise<Action> {
  const has = obj.metadata.finalizers?.includes(finalizer) ?? false;
  if (obj.metadata.deletionTimestamp !== undefined) {
    if (!has) return AWAIT_CHANGE;
    const action = await handlers.cleanup(obj);
    const ops = removeFinalizerPatch(obj, finalizer);
    if (ops) await patch(ops);
    return action;
  }
  if (!has) {
    const ops = addFinalizerPatch(obj, finalizer);
    const patched = ops ? await patch(ops) : obj;
    return handlers.apply(patched);
  }
  return handlers.apply(obj);
}
