import type { KubeObject } from '../k8s/types.ts';
import { Interner } from './intern.ts';
import type { WatcherEvent } from './watcher.ts';

/** Read-only view handed to reconcilers. */
export interface Store<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(): T[];
  byIndex(index: string, value: string): T[];
  /** True once the first full list has been applied (stays true across relists). */
  isReady(): boolean;
  waitUntilReady(signal?: AbortSignal): Promise<void>;
}

/** The single writer; the reflector feeds it every watcher event. */
export interface StoreWriter<T> {
  apply(ev: WatcherEvent<T>): void;
}

export interface StoreOptions<T> {
  indexes?: Record<string, (obj: T) => string[]>;
  /** Runs after managedFields are stripped, e.g. to drop more fields and save memory. */
  transform?: (obj: T) => T;
}

/** The `namespace/name` key of an object (just `name` when cluster-scoped): the store's, the
 * informer's and the work queue's key. `join` makes one flat string; a template literal makes two
 * cons strings, and a third, flat one once the key is hashed, and these keys live in many maps. */
export function objectKey(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === '' ? name : [namespace, name].join('/');
}

export function keyOf(obj: KubeObject): string {
  return objectKey(obj.metadata.namespace, obj.metadata.name ?? '');
}

/** Shared by every store, so a Secret's namespace and a custom resource's are one string. */
const interner = new Interner();

/** Interns, in place, the strings that repeat across objects: metadata (never a Secret's data),
 * status conditions and the Vault client's cache key and id. */
function internStrings(obj: KubeObject): void {
  const m = obj.metadata;
  internFields(obj as unknown as Record<string, unknown>, ['apiVersion', 'kind']);
  internFields(m as Record<string, unknown>, ['namespace', 'creationTimestamp']);
  interner.internValues(m.labels);
  interner.internValues(m.annotations);
  for (const r of m.ownerReferences ?? [])
    internFields(r as unknown as Record<string, unknown>, ['apiVersion', 'kind']);
  const status = (obj as { status?: { conditions?: unknown; vaultClientMeta?: unknown } }).status;
  // The Vault client a secret kind used: one cache key and client id per VaultAuth, shared by all
  // its secrets.
  if (typeof status?.vaultClientMeta === 'object' && status.vaultClientMeta !== null)
    internFields(status.vaultClientMeta as Record<string, unknown>, ['cacheKey', 'id']);
  const conditions = status?.conditions;
  if (!Array.isArray(conditions)) return;
  for (const c of conditions as Record<string, unknown>[])
    internFields(c, ['type', 'status', 'reason', 'message', 'lastTransitionTime']);
}

/** Interns the named fields that hold strings; absent fields stay absent. */
function internFields(o: Record<string, unknown>, fields: readonly string[]): void {
  for (const f of fields) {
    const v = o[f];
    if (typeof v === 'string') o[f] = interner.intern(v);
  }
}

/**
 * Creates a store and its writer (kube-rs reflector::store). Between `init` and `initDone` new
 * objects collect in a buffer while readers keep seeing the previous contents; `initDone` swaps the
 * buffer in atomically, which drops everything deleted while the watch was disconnected.
 */
export function createStore<T extends KubeObject>(
  opts: StoreOptions<T> = {},
): { store: Store<T>; writer: StoreWriter<T> } {
  const indexFns = Object.entries(opts.indexes ?? {});
  let objects = new Map<string, T>();
  let indexes = new Map<string, Map<string, Set<string>>>();
  let buffer: Map<string, T> | undefined;
  let ready = false;
  let readyWaiters: (() => void)[] = [];

  const ingest = (obj: T): T => {
    let out = obj;
    if (obj.metadata.managedFields !== undefined) {
      const { managedFields: _dropped, ...metadata } = obj.metadata;
      out = { ...obj, metadata };
    }
    internStrings(out);
    return opts.transform ? opts.transform(out) : out;
  };

  const indexAdd = (idx: Map<string, Map<string, Set<string>>>, key: string, obj: T): void => {
    for (const [name, fn] of indexFns) {
      const byValue = idx.get(name) ?? new Map<string, Set<string>>();
      idx.set(name, byValue);
      for (const v of fn(obj)) {
        const keys = byValue.get(v) ?? new Set<string>();
        byValue.set(v, keys);
        keys.add(key);
      }
    }
  };
  const indexRemove = (key: string, obj: T): void => {
    for (const [name, fn] of indexFns) {
      const byValue = indexes.get(name);
      if (byValue === undefined) continue;
      for (const v of fn(obj)) {
        const keys = byValue.get(v);
        keys?.delete(key);
        if (keys?.size === 0) byValue.delete(v);
      }
    }
  };

  const store: Store<T> = {
    get: (namespace, name) => objects.get(objectKey(namespace, name)),
    list: () => [...objects.values()],
    byIndex(index, value) {
      const keys = indexes.get(index)?.get(value);
      if (keys === undefined) return [];
      const out: T[] = [];
      for (const k of keys) {
        const o = objects.get(k);
        if (o !== undefined) out.push(o);
      }
      return out;
    },
    isReady: () => ready,
    waitUntilReady(signal) {
      if (ready) return Promise.resolve();
      if (signal?.aborted) return Promise.reject(signal.reason);
      return new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          readyWaiters = readyWaiters.filter((w) => w !== done);
          reject(signal?.reason);
        };
        const done = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        readyWaiters.push(done);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };

  const writer: StoreWriter<T> = {
    apply(ev) {
      switch (ev.type) {
        case 'init':
          buffer = new Map();
          return;
        case 'initApply': {
          const obj = ingest(ev.object);
          // An initApply without init (not produced by the watcher) still lands somewhere sane.
          buffer ??= new Map();
          buffer.set(keyOf(obj), obj);
          return;
        }
        case 'initDone': {
          const next = buffer ?? new Map<string, T>();
          const nextIndexes = new Map<string, Map<string, Set<string>>>();
          for (const [k, o] of next) indexAdd(nextIndexes, k, o);
          objects = next;
          indexes = nextIndexes;
          buffer = undefined;
          if (!ready) {
            ready = true;
            const waiters = readyWaiters;
            readyWaiters = [];
            for (const w of waiters) w();
          }
          return;
        }
        case 'apply': {
          const obj = ingest(ev.object);
          const key = keyOf(obj);
          const prev = objects.get(key);
          if (prev !== undefined) indexRemove(key, prev);
          objects.set(key, obj);
          indexAdd(indexes, key, obj);
          return;
        }
        case 'delete': {
          const key = keyOf(ev.object);
          const prev = objects.get(key);
          if (prev !== undefined) {
            indexRemove(key, prev);
            objects.delete(key);
          }
          return;
        }
      }
    },
  };
  return { store, writer };
}
