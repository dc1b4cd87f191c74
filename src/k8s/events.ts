import { hostname } from 'node:os';
import { type Clock, formatTime, systemClock } from '../clock.ts';
import type { Reason } from '../consts/reasons.ts';
import type { KubeClient } from './client.ts';
import { isK8sApiError } from './errors.ts';
import { Events } from './resources.ts';
import type { CoreEvent, KubeObject } from './types.ts';

export interface EventRecorderOptions {
  /** source.component and reportingComponent, e.g. "ferry". */
  component: string;
  /** reportingInstance and source.host; defaults to the host name. */
  instance?: string;
  /** Identical events within this window are folded into one Event with a count. Default 10 min. */
  aggregateWindowMs?: number;
  /** Upper bound on remembered events, oldest evicted first. */
  maxCached?: number;
  clock?: Clock;
  /** Failures are reported here (except a namespace being deleted); recording never throws. */
  onError?: (err: unknown) => void;
}

export type Involved = KubeObject & { apiVersion: string; kind: string };

interface Seen {
  name: string;
  namespace: string;
  count: number;
  lastAt: number;
}

// core/v1 Event messages are capped by the events.k8s.io conversion at 1 KiB.
const MAX_MESSAGE = 1024;

/** How long Events into a namespace that refused one as being terminated are dropped without a try.
 * Deletion rarely takes longer. Only Events about objects created before the refusal are dropped:
 * a namespace being deleted takes no new objects, so a newer one is in the namespace created again
 * under the same name. */
export const TERMINATING_HOLD_MS = 60_000;

/**
 * Records core/v1 Events about objects. Repeats of the same (object, type, reason, message) within
 * the window patch count/lastTimestamp of the existing Event instead of creating a new one, as
 * client-go's EventCorrelator does. Messages come from callers and are written as given.
 */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #component: string;
  readonly #instance: string;
  readonly #windowMs: number;
  readonly #maxCached: number;
  readonly #clock: Clock;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #seen = new Map<string, Seen>();
  /** Namespaces that answered NamespaceTerminating → when, and until when their Events are dropped. */
  readonly #terminating = new Map<string, { since: number; until: number }>();
  // Distinguishes Events about one object created within the same millisecond.
  #seq = 0;

  constructor(client: KubeClient, opts: EventRecorderOptions) {
    this.#client = client;
    this.#component = opts.component;
    this.#instance = opts.instance ?? hostname();
    this.#windowMs = opts.aggregateWindowMs ?? 10 * 60_000;
    this.#maxCached = opts.maxCached ?? 4096;
    this.#clock = opts.clock ?? systemClock;
    this.#onError = opts.onError;
  }

  normal(obj: Involved, reason: Reason, message: string): Promise<void> {
    return this.#record(obj, 'Normal', reason, message);
  }

  warning(obj: Involved, reason: Reason, message: string): Promise<void> {
    return this.#record(obj, 'Warning', reason, message);
  }

  /** Whether Events about `obj` are dropped because its namespace refused one as being terminated. */
  refusedAsTerminating(obj: Involved): boolean {
    const hold = this.#terminating.get(obj.metadata.namespace ?? 'default');
    if (hold === undefined || hold.until <= this.#clock.now()) return false;
    // The API server's clock against this one's: a skew either way costs one refused create, or
    // drops Events as a fixed hold would. No creation time: an object of the namespace being deleted.
    const created = Date.parse(obj.metadata.creationTimestamp ?? '');
    return !(created > hold.since);
  }

  async #record(obj: Involved, type: 'Normal' | 'Warning', reason: Reason, message: string): Promise<void> {
    const m = obj.metadata;
    // Events about cluster-scoped objects live in "default", as client-go puts them.
    const namespace = m.namespace ?? 'default';
    try {
      if (this.refusedAsTerminating(obj)) return;
      const now = this.#clock.now();
      const msg = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
      const key = JSON.stringify([obj.apiVersion, obj.kind, m.namespace, m.name, m.uid, type, reason, msg]);
      const ts = formatTime(now);
      const prev = this.#seen.get(key);
      if (prev !== undefined && now - prev.lastAt < this.#windowMs) {
        const count = prev.count + 1;
        try {
          await this.#client.patch(Events, prev.name, prev.namespace, { count, lastTimestamp: ts }, 'merge');
          this.#remember(key, { ...prev, count, lastAt: now });
          return;
        } catch (err) {
          // The Event expired or was deleted: fall through and create a fresh one.
          if (!isK8sApiError(err) || !err.isNotFound()) throw err;
        }
      }
      const event: CoreEvent = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${m.name ?? 'unknown'}.${this.#eventSuffix(now)}`, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          ...(m.name !== undefined && { name: m.name }),
          ...(m.namespace !== undefined && { namespace: m.namespace }),
          ...(m.uid !== undefined && { uid: m.uid }),
          ...(m.resourceVersion !== undefined && { resourceVersion: m.resourceVersion }),
        },
        reason,
        message: msg,
        type,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: this.#component, host: this.#instance },
        reportingComponent: this.#component,
        reportingInstance: this.#instance,
      };
      const created = await this.#client.create(Events, event);
      this.#remember(key, { name: created.metadata.name ?? '', namespace, count: 1, lastAt: now });
    } catch (err) {
      // No Event can be written there any more, and the objects it is about go with the namespace.
      if (isK8sApiError(err) && err.isNamespaceTerminating()) return this.#hold(namespace);
      try {
        this.#onError?.(err);
      } catch {
        // A faulty error callback must not turn event recording into a failure either.
      }
    }
  }

  #hold(namespace: string): void {
    const now = this.#clock.now();
    for (const [ns, { until }] of this.#terminating) if (until <= now) this.#terminating.delete(ns);
    this.#terminating.set(namespace, { since: now, until: now + TERMINATING_HOLD_MS });
  }

  #eventSuffix(now: number): string {
    this.#seq = (this.#seq + 1) % 1_000_000;
    return (BigInt(now) * 1_000_000n + BigInt(this.#seq)).toString(16);
  }

  #remember(key: string, seen: Seen): void {
    // Re-inserting keeps Map order = recency, so the first key is the least recently used.
    this.#seen.delete(key);
    this.#seen.set(key, seen);
    if (this.#seen.size > this.#maxCached) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
  }
}

/** When an Event last happened, in epoch ms (0 when it carries no time): lastTimestamp, else the
 * events.k8s.io eventTime, else its creation. */
export function eventTime(e: CoreEvent): number {
  return Date.parse(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? '') || 0;
}
