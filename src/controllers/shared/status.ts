// Status writes and finalizer hand-over shared by the controllers.
import { isDeepStrictEqual } from 'node:util';
import type { Clock } from '../../clock.ts';
import { CONDITION_REASONS, CONDITION_TYPES, healthyMessage } from '../../consts/conditions.ts';
import { REASONS } from '../../consts/reasons.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import type { EventRecorder } from '../../k8s/events.ts';
import type { ResourceType } from '../../k8s/resources.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { type Condition, type ConditionInput, setCondition } from '../../runtime/conditions.ts';
import { removeFinalizerPatch } from '../../runtime/finalizer.ts';

type WithStatus<S> = KubeObject & { status?: S | undefined };

/**
 * The status this replica last wrote per object. A reconcile can run again before the informer has
 * seen that write (e.g. woken by the watch event of the Secret it just wrote), and even run on a copy
 * older than the one the previous reconcile saw; building on it would then drop what the previous
 * run added (a RolloutRestart condition) or act twice (issue credentials again). The memo wins until
 * the cache shows the same status, or for at most `ttlMs` (only the leader writes status, so a newer
 * foreign status can only come from a replica that led before us).
 */
export class StatusMemo<S> {
  readonly #last = new Map<string, { status: S; at: number }>();
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(clock: Clock, ttlMs = 120_000) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  current(obj: WithStatus<S>): S | undefined {
    const uid = obj.metadata.uid ?? '';
    const e = this.#last.get(uid);
    if (!e) return obj.status;
    if (isDeepStrictEqual(e.status, obj.status) || this.#clock.now() - e.at > this.#ttlMs) {
      this.#last.delete(uid);
      return obj.status;
    }
    return e.status;
  }

  /** May be called before the write, so that a failed status patch cannot make a retry act twice.
   * A status the cache already shows needs no memo: keeping it anyway held a copy of every object's
   * status (conditions and all) for as long as it lived. */
  record(obj: WithStatus<S>, status: S): void {
    const uid = obj.metadata.uid ?? '';
    this.#last.delete(uid);
    if (isDeepStrictEqual(obj.status, status)) return;
    if (this.#last.size >= 100_000) this.#last.delete(this.#last.keys().next().value as string);
    this.#last.set(uid, { status, at: this.#clock.now() });
  }

  forget(obj: KubeObject): void {
    this.#last.delete(obj.metadata.uid ?? '');
  }
}

/** Merge-patches `.status` only when it differs, so a steady-state reconcile writes nothing. A
 * vanished object is not an error: it was deleted while we worked; a refused patch is also reported
 * as a Warning Event, VSO's StatusUpdateError. The optional fields in `clear` are removed when
 * `status` leaves them out (a merge patch otherwise keeps them). */
export async function writeStatus<S extends object>(
  { client, events }: { client: KubeClient; events: Pick<EventRecorder, 'warning'> },
  rt: ResourceType,
  obj: WithStatus<S>,
  status: S,
  memo?: StatusMemo<S>,
  clear: readonly (keyof S & string)[] = [],
): Promise<void> {
  memo?.record(obj, status);
  // Compared with the cached copy: when the cache lags, this repeats an identical write, which the
  // API server treats as a no-op.
  if (isDeepStrictEqual(obj.status, status)) return;
  const body = clear.length > 0 ? { ...Object.fromEntries(clear.map((k) => [k, null])), ...status } : status;
  try {
    await client.patch(rt, obj.metadata.name ?? '', obj.metadata.namespace, { status: body }, 'merge', {
      subresource: 'status',
    });
  } catch (err) {
    if (isK8sApiError(err) && err.isNotFound()) return;
    await events
      .warning(
        { apiVersion: `${rt.group}/${rt.version}`, kind: rt.kind, metadata: obj.metadata },
        REASONS.StatusUpdateError,
        `Failed to update the resource's status: ${errorMessage(err)}`,
      )
      .catch(() => {});
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

/**
 * The conditions every secret kind reports after a sync attempt: SecretSynced, any kind-specific
 * ones (LeaseRenewal, ...), then Healthy and Ready, which follow the sync.
 */
export function syncConditions(
  base: readonly Condition[] | undefined,
  kind: string,
  ok: boolean,
  message: string,
  at: { now: number; generation: number | undefined },
  extra: readonly ConditionInput[] = [],
): Condition[] {
  const status = ok ? 'True' : 'False';
  let c = setCondition(
    base,
    { type: CONDITION_TYPES.SecretSynced, status, reason: CONDITION_REASONS.Synced, message },
    at,
  );
  for (const e of extra) c = setCondition(c, e, at);
  c = setCondition(
    c,
    {
      type: CONDITION_TYPES.Healthy,
      status,
      reason: ok ? CONDITION_REASONS.Healthy : CONDITION_REASONS.Unhealthy,
      message: ok ? healthyMessage(kind) : message,
    },
    at,
  );
  return setCondition(
    c,
    { type: CONDITION_TYPES.Ready, status, reason: CONDITION_REASONS.Ready, message: ok ? 'ready' : message },
    at,
  );
}
