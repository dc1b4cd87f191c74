import { type BackoffPolicy, delayAfter, validateBackoffPolicy, WATCH_BACKOFF } from '../backoff.ts';
import { type Clock, type Random, sleep, systemClock, systemRandom } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { watchErrorToException } from '../k8s/client.ts';
import { isK8sApiError, retryAfterMs } from '../k8s/errors.ts';
import { apiVersionOf, type ResourceType } from '../k8s/resources.ts';
import type { KubeList, KubeObject, WatchEvent } from '../k8s/types.ts';

export type WatcherEvent<T> =
  | { type: 'init' }
  | { type: 'initApply'; object: T }
  | { type: 'initDone' }
  | { type: 'apply'; object: T }
  | { type: 'delete'; object: T };

export interface WatcherOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  metadataOnly?: boolean;
  /** List page size (`limit`); default 500 as client-go. */
  pageSize?: number;
  /** Server-side watch timeout; default 290 s (under the apiserver's 30 min minimum). */
  timeoutSeconds?: number;
  clock?: Clock;
  random?: Random;
  signal: AbortSignal;
  /** Every retried failure is reported here; the stream itself never fails. */
  onError?: (err: unknown) => void;
  backoff?: Partial<WatcherBackoff>;
}

export interface WatcherBackoff {
  initialMs: number;
  maxMs: number;
  /** The backoff restarts from initialMs once no error happened for this long. */
  resetAfterMs: number;
}

// kube-rs resets its DefaultBackoff after 120 s without errors.
const RESET_AFTER_MS = 120_000;

/**
 * The list+watch state machine (kube-rs watcher):
 *   Empty      → emits init, lists from scratch
 *   InitPage   → one list page (`limit`/`continue`), emits initApply per item
 *   InitListed → has a resourceVersion, opens a watch from it
 *   Watching   → consumes the watch; a clean close resumes from the last resourceVersion seen
 *                (object or bookmark); 410 Gone, in the HTTP response or in-stream, goes back
 *                to Empty so the store swaps in a fresh list.
 * Other failures back off and retry from the same state. resourceVersion is opaque: it is only
 * ever echoed back to the server, never compared.
 */
export async function* watcher<T extends KubeObject>(
  client: KubeClient,
  rt: ResourceType,
  opts: WatcherOptions,
): AsyncGenerator<WatcherEvent<T>> {
  const { signal } = opts;
  const clock = opts.clock ?? systemClock;
  const { resetAfterMs = RESET_AFTER_MS, ...policy } = opts.backoff ?? {};
  const backoff = new ResetBackoff(
    { ...WATCH_BACKOFF, ...policy },
    resetAfterMs,
    clock,
    opts.random ?? systemRandom,
  );
  const timeoutSeconds = opts.timeoutSeconds ?? 290;
  const metadataOnly = opts.metadataOnly === true;
  const selectors = {
    ...(opts.namespace !== undefined && { namespace: opts.namespace }),
    ...(opts.labelSelector !== undefined && { labelSelector: opts.labelSelector }),
    ...(opts.fieldSelector !== undefined && { fieldSelector: opts.fieldSelector }),
    ...(opts.metadataOnly !== undefined && { metadataOnly: opts.metadataOnly }),
  };

  let state = { kind: 'Empty' } as WatcherState;
  while (!signal.aborted) {
    try {
      switch (state.kind) {
        case 'Empty':
          yield { type: 'init' };
          state = { kind: 'InitPage' };
          break;
        case 'InitPage': {
          const page: KubeList<T> = await client.list<T>(rt, {
            ...selectors,
            limit: opts.pageSize ?? 500,
            ...(state.continueToken !== undefined && { continue: state.continueToken }),
            signal,
          });
          for (const item of page.items)
            yield { type: 'initApply', object: withTypeMeta(item, rt, metadataOnly) };
          const next: string | undefined = page.metadata.continue;
          if (next) {
            state = { kind: 'InitPage', continueToken: next };
          } else {
            const rv: string | undefined = page.metadata.resourceVersion;
            if (!rv) throw new FerryError(CODES.K8S_WATCH, `list ${rt.plural}: no resourceVersion`);
            yield { type: 'initDone' };
            state = { kind: 'InitListed', resourceVersion: rv };
          }
          break;
        }
        case 'InitListed': {
          state = { kind: 'Watching', resourceVersion: state.resourceVersion };
          const stream: AsyncIterable<WatchEvent<T>> = client.watch<T>(
            rt,
            {
              ...selectors,
              resourceVersion: state.resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds,
            },
            signal,
          );
          let gone = false;
          for await (const ev of stream) {
            if (ev.type === 'ERROR') {
              const err = watchErrorToException(rt, ev.object);
              if (!err.isGone()) throw err;
              opts.onError?.(err);
              gone = true;
              break;
            }
            const rv: string | undefined = ev.object.metadata?.resourceVersion;
            if (rv) state = { kind: 'Watching', resourceVersion: rv };
            if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
              yield { type: 'apply', object: withTypeMeta(ev.object, rt, metadataOnly) };
            } else if (ev.type === 'DELETED') {
              yield { type: 'delete', object: withTypeMeta(ev.object, rt, metadataOnly) };
            }
          }
          // A clean close (server timeout) resumes from the last resourceVersion seen.
          state = gone ? { kind: 'Empty' } : { kind: 'InitListed', resourceVersion: state.resourceVersion };
          break;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      opts.onError?.(err);
      if (isK8sApiError(err) && err.isGone()) {
        // Too old a resourceVersion or an expired continue token: only a fresh list helps.
        state = { kind: 'Empty' };
        continue;
      }
      if (state.kind === 'Watching') state = { kind: 'InitListed', resourceVersion: state.resourceVersion };
      await sleep(clock, backoff.next(err), signal);
    }
  }
}

type WatcherState =
  | { kind: 'Empty' }
  | { kind: 'InitPage'; continueToken?: string }
  | { kind: 'InitListed'; resourceVersion: string }
  | { kind: 'Watching'; resourceVersion: string };

// List items come without apiVersion/kind, and metadata-only objects say PartialObjectMetadata;
// consumers (Events, owner mapping) need the real type, which the resource determines.
function withTypeMeta<T extends KubeObject>(obj: T, rt: ResourceType, metadataOnly: boolean): T {
  if (!metadataOnly && obj.apiVersion !== undefined && obj.kind !== undefined) return obj;
  return { ...obj, apiVersion: apiVersionOf(rt), kind: rt.kind };
}

/** WATCH_BACKOFF's delays, restarting after a quiet period. */
class ResetBackoff {
  readonly #policy: BackoffPolicy;
  readonly #resetAfterMs: number;
  readonly #clock: Clock;
  readonly #random: Random;
  #attempt = 0;
  #lastAt: number | undefined;

  constructor(policy: BackoffPolicy, resetAfterMs: number, clock: Clock, random: Random) {
    validateBackoffPolicy(policy);
    this.#policy = policy;
    this.#resetAfterMs = resetAfterMs;
    this.#clock = clock;
    this.#random = random;
  }

  next(err: unknown): number {
    const now = this.#clock.now();
    if (this.#lastAt !== undefined && now - this.#lastAt >= this.#resetAfterMs) this.#attempt = 0;
    this.#lastAt = now;
    let delay = delayAfter(this.#policy, this.#attempt++, this.#random);
    // A 429 says exactly how long to stay away (pepr#3178 was a watcher ignoring it).
    delay = Math.max(delay, retryAfterMs(err) ?? 0);
    return Math.round(delay);
  }
}
