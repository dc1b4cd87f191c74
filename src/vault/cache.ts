// The client cache: one VaultSession per (VaultAuth generation × VaultConnection generation ×
// consumer identity), keyed exactly as VSO keys it (vso-api §11.1) so keys are recognisable across
// the two operators. Concurrent lookups of one key share a single login; hits are validated before
// they are handed out (session.validate); the LRU bound caps memory and open sessions.
//
// The cache is shared by every tenant, so the bound alone would let one namespace (a thousand
// ServiceAccounts, one VaultAuth per resource) evict everyone else's sessions and make them log in
// again on every reconcile. Each session is charged to the namespace of the resource that first
// needed it: a namespace beyond its quota evicts its own least recently used session, and when the
// whole cache is full the namespace holding the most gives one up, so a namespace within its fair
// share is never evicted by another.
import { createHash } from 'node:crypto';
import type { AuthMethodName } from './auth/index.ts';
import type { VaultSession } from './session.ts';

export interface CacheKeyInput {
  method: AuthMethodName;
  authUID: string;
  authGeneration: number;
  connectionUID: string;
  connectionGeneration: number;
  /** ServiceAccount UID (kubernetes, jwt with a SA), credential Secret UID (appRole, jwt secretRef). */
  providerUID: string;
}

/** `<method>-` + hex(sha256(input)[0:7] ‖ sha256(input)[28:32]): 22 hex digits, ≤ 63 chars. */
export function computeCacheKey(k: CacheKeyInput): string {
  const sum = createHash('sha256').update(hashInput(k)).digest();
  return `${k.method}-${Buffer.concat([sum.subarray(0, 7), sum.subarray(sum.length - 4)]).toString('hex')}`;
}

function hashInput(k: CacheKeyInput): string {
  return `${k.authUID}-${k.authGeneration}.${k.connectionUID}-${k.connectionGeneration}.${k.providerUID}`;
}

/** Optional metric hooks, so the cache does not depend on a metrics registry. */
export interface CacheMetrics {
  hit?(): void;
  miss?(): void;
  eviction?(): void;
  size?(n: number): void;
}

/** Why a session left the cache. `cleared` is the shutdown path: its persisted token must survive
 * for the next process; every other reason ends the session's use of its token. */
export type RemovalReason = 'invalid' | 'closed' | 'evicted' | 'pruned' | 'cleared';

export interface VaultClientCacheOptions {
  /** LRU bound; VSO's `--client-cache-size` default. */
  maxSize?: number;
  /** Sessions one namespace may hold; default a tenth of maxSize. */
  namespaceQuota?: number;
  metrics?: CacheMetrics;
  /** Called after a session left the cache (the persistence hook prunes its storage entry). */
  onRemoved?: (key: string, input: CacheKeyInput, reason: RemovalReason) => void;
}

export const DEFAULT_CACHE_SIZE = 10_000;

/** Keys remembered by `VaultClientCache.keyOf`; a few per VaultAuth in use. */
const KEY_MEMO_SIZE = 1024;

/** A tenth of the cache: ten namespaces at their quota fill it. */
export function defaultNamespaceQuota(maxSize: number): number {
  return Math.max(1, Math.ceil(maxSize / 10));
}

interface Entry {
  input: CacheKeyInput;
  session: VaultSession;
  /** The namespace the session is charged to. */
  namespace: string;
}

export class VaultClientCache {
  readonly #maxSize: number;
  readonly #quota: number;
  /** Sessions per namespace. */
  readonly #held = new Map<string, number>();
  readonly #metrics: CacheMetrics;
  readonly #onRemoved: VaultClientCacheOptions['onRemoved'];
  // Map iteration order is insertion order; a hit re-inserts, so the first key is least recently used.
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<VaultSession>>();
  /** computeCacheKey's input → key: every reconcile asks for one of a few keys again. */
  readonly #keys = new Map<string, string>();

  constructor(opts: VaultClientCacheOptions = {}) {
    this.#maxSize = opts.maxSize ?? DEFAULT_CACHE_SIZE;
    if (!(this.#maxSize >= 1)) throw new RangeError('cache maxSize must be at least 1');
    this.#quota = opts.namespaceQuota ?? defaultNamespaceQuota(this.#maxSize);
    if (!(this.#quota >= 1)) throw new RangeError('cache namespaceQuota must be at least 1');
    this.#metrics = opts.metrics ?? {};
    this.#onRemoved = opts.onRemoved;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** `computeCacheKey(input)`, remembered: one hash and one string per VaultAuth and connection
   * generation and provider, not per reconcile. Bounded; starts over when full. */
  keyOf(input: CacheKeyInput): string {
    // Method names have no '.': equal memo strings mean equal keys.
    const memo = `${input.method}.${hashInput(input)}`;
    let key = this.#keys.get(memo);
    if (key === undefined) {
      if (this.#keys.size >= KEY_MEMO_SIZE) this.#keys.clear();
      key = computeCacheKey(input);
      this.#keys.set(memo, key);
    }
    return key;
  }

  has(cacheKey: string): boolean {
    return this.#entries.has(cacheKey);
  }

  /** Sessions charged to `namespace`. */
  held(namespace: string): number {
    return this.#held.get(namespace) ?? 0;
  }

  /**
   * Returns the session for `input`, creating it with `create` (which logs in) on a miss and charging
   * it to `opts.namespace` (the requesting resource's). Concurrent calls for the same key share one
   * lookup and one login. A cached session is validated first; if validation fails the session is
   * dropped and the error thrown, so the next call starts afresh.
   */
  get(
    input: CacheKeyInput,
    create: () => Promise<VaultSession>,
    opts: { signal?: AbortSignal | undefined; namespace?: string } = {},
  ): Promise<VaultSession> {
    const key = this.keyOf(input);
    const pending = this.#inflight.get(key);
    if (pending !== undefined) return pending;
    const p = this.#resolve(key, input, create, opts.signal, opts.namespace ?? '').finally(() =>
      this.#inflight.delete(key),
    );
    this.#inflight.set(key, p);
    return p;
  }

  async #resolve(
    key: string,
    input: CacheKeyInput,
    create: () => Promise<VaultSession>,
    signal: AbortSignal | undefined,
    namespace: string,
  ): Promise<VaultSession> {
    const entry = this.#entries.get(key);
    if (entry && !entry.session.closed) {
      try {
        await entry.session.validate(signal);
      } catch (err) {
        this.#remove(key, 'invalid');
        throw err;
      }
      this.#metrics.hit?.();
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      return entry.session;
    }
    if (entry) this.#remove(key, 'closed');
    this.#metrics.miss?.();
    const session = await create();
    this.#entries.set(key, { input, session, namespace });
    this.#held.set(namespace, this.held(namespace) + 1);
    if (this.held(namespace) > this.#quota) this.#evictFrom(namespace);
    while (this.#entries.size > this.#maxSize) this.#evictFrom(this.#largest());
    this.#metrics.size?.(this.#entries.size);
    return session;
  }

  /** Evicts the least recently used session of `namespace`. */
  #evictFrom(namespace: string): void {
    for (const [key, entry] of this.#entries) {
      if (entry.namespace !== namespace) continue;
      this.#remove(key, 'evicted');
      this.#metrics.eviction?.();
      return;
    }
  }

  /** The namespace holding the most sessions. */
  #largest(): string {
    let most = '';
    let count = -1;
    for (const [ns, n] of this.#held) {
      if (n > count) [most, count] = [ns, n];
    }
    return most;
  }

  /** Removes sessions of a VaultAuth: all of them (deletion, spec hash change), or only those of
   * generations below `belowGeneration`. Returns the removed keys. */
  pruneAuth(authUID: string, opts: { belowGeneration?: number; revoke?: boolean } = {}): Promise<string[]> {
    return this.#prune(
      (e) =>
        e.authUID === authUID &&
        (opts.belowGeneration === undefined || e.authGeneration < opts.belowGeneration),
      opts.revoke ?? false,
      'pruned',
    );
  }

  /** Same as pruneAuth, for a VaultConnection. */
  pruneConnection(
    connectionUID: string,
    opts: { belowGeneration?: number; revoke?: boolean } = {},
  ): Promise<string[]> {
    return this.#prune(
      (e) =>
        e.connectionUID === connectionUID &&
        (opts.belowGeneration === undefined || e.connectionGeneration < opts.belowGeneration),
      opts.revoke ?? false,
      'pruned',
    );
  }

  /** Stops every session (shutdown). With `revoke`, their tokens are revoked too (VSO's dead
   * uninstall path, §21.11). */
  async clear(opts: { revoke?: boolean } = {}): Promise<void> {
    await this.#prune(() => true, opts.revoke ?? false, opts.revoke ? 'pruned' : 'cleared');
  }

  async #prune(
    match: (input: CacheKeyInput) => boolean,
    revoke: boolean,
    reason: RemovalReason,
  ): Promise<string[]> {
    const removed: VaultSession[] = [];
    const keys: string[] = [];
    for (const [key, entry] of this.#entries) {
      if (!match(entry.input)) continue;
      keys.push(key);
      removed.push(entry.session);
      this.#remove(key, reason);
    }
    if (revoke) {
      // Best effort: a token that is already invalid cannot be revoked and needs nothing more.
      await Promise.allSettled(removed.map((s) => s.revoke()));
    }
    this.#metrics.size?.(this.#entries.size);
    return keys;
  }

  #remove(key: string, reason: RemovalReason): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    const left = this.held(entry.namespace) - 1;
    if (left > 0) this.#held.set(entry.namespace, left);
    else this.#held.delete(entry.namespace);
    entry.session.close();
    try {
      this.#onRemoved?.(key, entry.input, reason);
    } catch {
      // The hook reports its own failures.
    }
  }
}
