// Rollout restarts of the workloads that consume a destination Secret, reported as Events and the
// RolloutRestart condition. A failed restart never fails the sync: the Secret is already written.
//
// Restarts are debounced per workload (VSO has no debounce, #644): requests for the same workload
// within `coalesceMs` become one patch, and a workload is restarted at most once per
// `minIntervalMs` — a request inside that interval is deferred to its end and merged with any other
// request that arrives meanwhile. So several secrets rotating together cause one restart. Every
// requesting resource still gets its own RolloutRestartTriggered (or RolloutRestartFailed) Event.
import type { RolloutRestartTarget } from '../../api/v1beta1/common.ts';
import type { Clock } from '../../clock.ts';
import { CONDITION_REASONS, CONDITION_TYPES } from '../../consts/conditions.ts';
import { REASONS } from '../../consts/reasons.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import type { TaskScheduler } from '../../runtime/tasks.ts';
import type { ControllerContext } from '../context.ts';
import { restartPatch } from './rollout.ts';

type Involved = KubeObject & { apiVersion: string; kind: string };

export interface RestartDebounceOptions {
  /** Requests for one workload within this window become one restart. */
  coalesceMs: number;
  /** A workload is restarted at most once per this interval. */
  minIntervalMs: number;
}

export const DEFAULT_RESTART_DEBOUNCE: RestartDebounceOptions = Object.freeze({
  coalesceMs: 1_000,
  minIntervalMs: 10_000,
});

export type RestartOutcome = { ok: true } | { ok: false; message: string };

export interface RestartRequest {
  /** The restart happens after the coalescing window because the workload was restarted recently;
   * callers should not wait for it. */
  deferred: boolean;
  /** When the patch is planned (epoch ms). */
  at: number;
  /** Settles (never rejects) once the patch was sent. */
  done: Promise<RestartOutcome>;
}

type Patcher = (namespace: string, target: RolloutRestartTarget) => Promise<void>;
type Notifier = (
  owner: Involved,
  target: RolloutRestartTarget,
  outcome: RestartOutcome,
  merged: number,
) => void;

interface Pending {
  at: number;
  owners: Map<string, Involved>;
  done: Promise<RestartOutcome>;
}

/** Per-workload restart debouncing. Bookkeeping around an injected patcher, clock and task queue
 * (the patch runs as a background task when its time comes). */
export class RestartDebouncer {
  readonly #clock: Clock;
  readonly #tasks: TaskScheduler;
  readonly #opts: RestartDebounceOptions;
  readonly #patch: Patcher;
  readonly #notify: Notifier;
  readonly #last = new Map<string, number>();
  readonly #pending = new Map<string, Pending>();

  constructor(
    clock: Clock,
    tasks: TaskScheduler,
    patch: Patcher,
    notify: Notifier,
    opts: RestartDebounceOptions = DEFAULT_RESTART_DEBOUNCE,
  ) {
    this.#clock = clock;
    this.#tasks = tasks;
    this.#patch = patch;
    this.#notify = notify;
    this.#opts = opts;
  }

  /** Restarts done so far, keyed `namespace/kind/name` (for tests and metrics). */
  lastRestart(namespace: string, target: RolloutRestartTarget): number | undefined {
    return this.#last.get(keyOf(namespace, target));
  }

  request(owner: Involved, namespace: string, target: RolloutRestartTarget): RestartRequest {
    const key = keyOf(namespace, target);
    const now = this.#clock.now();
    const ownerKey = owner.metadata.uid ?? `${owner.kind}/${owner.metadata.namespace}/${owner.metadata.name}`;
    const pending = this.#pending.get(key);
    if (pending) {
      pending.owners.set(ownerKey, owner);
      return { deferred: pending.at - now > this.#opts.coalesceMs, at: pending.at, done: pending.done };
    }
    this.#prune(now);
    const last = this.#last.get(key);
    const at = Math.max(
      now + this.#opts.coalesceMs,
      last === undefined ? 0 : last + this.#opts.minIntervalMs,
    );
    const owners = new Map<string, Involved>([[ownerKey, owner]]);
    const done = new Promise<RestartOutcome>((resolve) => {
      const fire = async (): Promise<void> => {
        this.#pending.delete(key);
        this.#last.set(key, this.#clock.now());
        let outcome: RestartOutcome;
        try {
          await this.#patch(namespace, target);
          outcome = { ok: true };
        } catch (err) {
          outcome = { ok: false, message: errorMessage(err) };
        }
        for (const o of owners.values()) this.#notify(o, target, outcome, owners.size);
        resolve(outcome);
      };
      this.#tasks.schedule(`restart/${key}`, fire, at - now);
    });
    this.#pending.set(key, { at, owners, done });
    return { deferred: at - now > this.#opts.coalesceMs, at, done };
  }

  #prune(now: number): void {
    if (this.#last.size < 10_000) return;
    for (const [k, t] of this.#last) if (now - t > this.#opts.minIntervalMs) this.#last.delete(k);
  }
}

const keyOf = (namespace: string, t: RolloutRestartTarget): string => `${namespace}/${t.kind}/${t.name}`;

const debouncers = new WeakMap<ControllerContext, RestartDebouncer>();

/** The debouncer shared by every controller built on one ControllerContext, so a VaultStaticSecret
 * and a VaultDynamicSecret rotating together restart their common workload once. */
export function restartDebouncer(ctx: ControllerContext, opts?: RestartDebounceOptions): RestartDebouncer {
  let d = debouncers.get(ctx);
  if (!d) {
    d = new RestartDebouncer(
      ctx.clock,
      ctx.tasks,
      async (namespace, t) => {
        const patch = restartPatch(t.kind, new Date(ctx.clock.now()));
        await ctx.client.patch(patch.resource, t.name, namespace, patch.body, patch.type);
      },
      (owner, t, outcome, merged) => {
        const shared = merged > 1 ? ` (one restart for ${merged} resources)` : '';
        if (outcome.ok)
          void ctx.events.normal(
            owner,
            REASONS.RolloutRestartTriggered,
            `Rollout restart triggered for ${t.kind} ${t.name}${shared}`,
          );
        else
          void ctx.events.warning(
            owner,
            REASONS.RolloutRestartFailed,
            `Rollout restart of ${t.kind} ${t.name} failed: ${outcome.message}`,
          );
      },
      opts,
    );
    debouncers.set(ctx, d);
  }
  return d;
}

/**
 * Requests a restart of each target and returns the RolloutRestart condition. Waits for restarts
 * that happen within the coalescing window; a restart deferred because the workload was restarted
 * recently is reported as scheduled, and its Event follows when it happens.
 */
export async function restartTargets(
  ctx: ControllerContext,
  owner: Involved,
  namespace: string,
  targets: readonly RolloutRestartTarget[],
  conditions: Condition[],
): Promise<Condition[]> {
  const debouncer = restartDebouncer(ctx);
  const requests = targets.map((t) => ({ t, req: debouncer.request(owner, namespace, t) }));
  const failures: string[] = [];
  const parts: string[] = [];
  for (const { t, req } of requests) {
    const name = `${t.kind}/${t.name}`;
    if (req.deferred) {
      parts.push(`${name} (debounced, at ${new Date(req.at).toISOString()})`);
      continue;
    }
    const outcome = await req.done;
    if (outcome.ok) parts.push(name);
    else failures.push(`Rollout restart of ${t.kind} ${t.name} failed: ${outcome.message}`);
  }
  const ok = failures.length === 0;
  return setCondition(
    conditions,
    {
      type: CONDITION_TYPES.RolloutRestart,
      status: ok ? 'True' : 'False',
      reason: ok
        ? CONDITION_REASONS.RolloutRestartTriggered
        : CONDITION_REASONS.RolloutRestartTriggeredFailed,
      message: ok ? `restarted ${parts.join(', ')}` : failures.join('; '),
    },
    { now: ctx.clock.now(), generation: owner.metadata.generation },
  );
}
