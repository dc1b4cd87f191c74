// An informer runs one watcher stream into one store and fans the changes out to handlers as
// create/update/delete events with the previous object, so predicates can compare old and new.
// Handlers only enqueue keys; the reconciler reads current state from the store (level-triggered).

import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { ResourceType } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { ObjectEvent } from './predicates.ts';
import type { Store, StoreWriter } from './store.ts';
import { keyOf } from './store.ts';
import type { WatcherEvent } from './watcher.ts';

/** Produces the watcher stream; `onError` is called for every (retried) watch failure. */
export type InformerSource<T> = (
  signal: AbortSignal,
  onError: (err: unknown) => void,
) => AsyncIterable<WatcherEvent<T>>;

export interface InformerHealth {
  synced: boolean;
  stalled: boolean;
  lastEventAt: number | undefined;
  failingSinceMs: number | undefined;
  lastError: string | undefined;
}

export interface InformerOptions<T> {
  rt: ResourceType;
  store: Store<T>;
  writer: StoreWriter<T>;
  source: InformerSource<T>;
  /** The watcher counts as stalled after failing continuously this long without an event. */
  stallAfterMs: number;
  clock?: Clock;
}

export class Informer<T extends KubeObject> {
  readonly rt: ResourceType;
  readonly store: Store<T>;
  readonly #writer: StoreWriter<T>;
  readonly #source: InformerSource<T>;
  readonly #clock: Clock;
  readonly #stallAfterMs: number;
  readonly #handlers = new Set<(ev: ObjectEvent<T>) => void>();
  #lastEventAt: number | undefined;
  #failingSince: number | undefined;
  #lastErrorAt: number | undefined;
  #lastError: string | undefined;
  #ended = false;

  constructor(opts: InformerOptions<T>) {
    this.rt = opts.rt;
    this.store = opts.store;
    this.#writer = opts.writer;
    this.#source = opts.source;
    this.#clock = opts.clock ?? systemClock;
    this.#stallAfterMs = opts.stallAfterMs;
  }

  /** Handlers run synchronously on the informer loop and must not throw or block. */
  addHandler(handler: (ev: ObjectEvent<T>) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  hasSynced(): boolean {
    return this.store.isReady();
  }

  /**
   * Stalled means: the stream ended while it should still run, or errors have been reported
   * continuously (the last one recently) for longer than stallAfterMs with no event in between.
   * The watcher surfaces neither bookmarks nor successful reconnects, so a quiet but healthy watch
   * is recognised by its errors having stopped, not by events.
   */
  health(): InformerHealth {
    const now = this.#clock.now();
    const failing =
      this.#failingSince !== undefined &&
      now - this.#failingSince > this.#stallAfterMs &&
      this.#lastErrorAt !== undefined &&
      now - this.#lastErrorAt < this.#stallAfterMs;
    return {
      synced: this.hasSynced(),
      stalled: this.#ended || failing,
      lastEventAt: this.#lastEventAt,
      failingSinceMs: this.#failingSince === undefined ? undefined : now - this.#failingSince,
      lastError: this.#lastError,
    };
  }

  /** Consume the stream until `signal` aborts. Never throws; a broken stream shows up in health(). */
  async run(signal: AbortSignal): Promise<void> {
    const onError = (err: unknown) => {
      const now = this.#clock.now();
      this.#failingSince ??= now;
      this.#lastErrorAt = now;
      // Only the class of error: messages of some errors may quote request data.
      this.#lastError = err instanceof Error ? `${err.name}: ${err.message}` : 'unknown error';
    };
    try {
      for await (const ev of this.#source(signal, onError)) {
        this.#lastEventAt = this.#clock.now();
        this.#failingSince = undefined;
        this.#handle(ev);
        if (signal.aborted) break;
      }
    } catch (err) {
      if (!signal.aborted) onError(err);
    }
    if (!signal.aborted) this.#ended = true;
  }

  #handle(ev: WatcherEvent<T>): void {
    switch (ev.type) {
      case 'init':
      case 'initApply':
        this.#writer.apply(ev);
        return;
      case 'initDone': {
        // The store swaps in the relisted objects it buffered: diff them against what it held.
        const before = new Map(this.store.list().map((o) => [keyOf(o), o] as const));
        this.#writer.apply(ev);
        for (const obj of this.store.list()) {
          const key = keyOf(obj);
          const old = before.get(key);
          before.delete(key);
          this.#emit(old ? { type: 'update', old, obj } : { type: 'create', obj });
        }
        // What is left was deleted while we were disconnected.
        for (const old of before.values()) this.#emit({ type: 'delete', obj: old });
        return;
      }
      case 'apply': {
        const { namespace, name = '' } = ev.object.metadata;
        const old = this.store.get(namespace, name);
        this.#writer.apply(ev);
        this.#emit(old ? { type: 'update', old, obj: ev.object } : { type: 'create', obj: ev.object });
        return;
      }
      case 'delete':
        this.#writer.apply(ev);
        this.#emit({ type: 'delete', obj: ev.object });
        return;
    }
  }

  #emit(ev: ObjectEvent<T>): void {
    // Handlers are the controller's enqueue functions, which catch their own (mapper) errors.
    for (const h of this.#handlers) h(ev);
  }
}
