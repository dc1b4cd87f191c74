// The one destination write of the secret kinds (VaultStaticSecret, VaultDynamicSecret,
// VaultPKISecret): read the Secret, converge it (destination.ts), and remember what was written so
// that (1) the watch event of Ferry's own write is not taken for drift (isOwn) and (2) a
// refresh whose desired Secret is what Ferry last wrote or verified costs no API call at all.
// Both live in one entry per destination.
//
// (1): the watch event can arrive before the write's own response, so a write in flight is
// remembered by the resourceVersion it replaces (the update is guarded by it), and an update event
// from exactly that version counts as Ferry's. Were it someone else's, Ferry's guarded write fails
// with a conflict and its reconcile is retried, reading Vault and the Secret again.
//
// (2) works from the metadata-only watch of managed Secrets: per destination, Ferry remembers the
// resourceVersion it wrote (or read and found in sync) and a keyed hash of what it wanted there. When
// the watch still shows that resourceVersion, nobody has touched the Secret since; when the desired
// hash is also the same, there is nothing to read or write. Any edit or deletion changes the
// resourceVersion (or removes the object) in the watch, so drift healing reads and writes as before.
// Secrets Ferry did not label (`create: false`) are not in that watch and are always read.
// The hash is an HMAC under a key that lives only in this process: never a secret value, and no
// oracle for guessing one.
import { createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { KubeObject, Secret } from '../../k8s/types.ts';
import { objectKey } from '../../runtime/store.ts';
import {
  type DestinationSpec,
  type OwnAnnotations,
  type Owner,
  type SyncOutcome,
  type SyncResult,
  syncDestination,
} from './destination.ts';

/** Bound on remembered destinations; beyond it the oldest is forgotten and costs one read. */
const MAX_ENTRIES = 100_000;

/** What Ferry knows of one destination Secret. */
interface Destination {
  /** The resourceVersion of Ferry's last write, for isOwn. */
  wrote?: string | undefined;
  /** The resourceVersion a write in flight replaces, for isOwn. */
  replacing?: string | undefined;
  /** The Secret as Ferry last wrote or verified it, for `owner`, converged from `stamp`. */
  verified?: { ownerUid: string; resourceVersion: string; stamp: string };
}

/** What the metadata watch of managed Secrets currently holds. */
export interface ObservedSecrets {
  get(namespace: string | undefined, name: string): KubeObject | undefined;
}

export interface WriteResult {
  /** `skipped`: the Secret is as Ferry last left it and already what is desired; it was not read. */
  outcome: SyncOutcome | 'skipped';
  /** The Secret as read before the write (absent when it did not exist or was not read). */
  existing?: Secret;
  /** The Secret as written (absent when nothing was written). */
  written?: Secret;
}

export interface WriteOptions {
  /** The Secret as the caller already read it (`existing: undefined`: it did not exist). */
  read?: { existing: Secret | undefined };
  signal?: AbortSignal;
  strict?: boolean | undefined;
  /** Annotations Ferry owns on the Secret (destination.ts), part of what is desired. */
  annotations?: OwnAnnotations;
}

export class DestinationWriter {
  readonly #client: KubeClient;
  readonly #key: KeyObject;
  readonly #destinations = new Map<string, Destination>();
  #observed: ObservedSecrets | undefined;

  constructor(client: KubeClient, key: Buffer = randomBytes(32)) {
    this.#client = client;
    this.#key = createSecretKey(key);
  }

  /** The metadata-only store of managed Secrets (setup.ts), synced before any reconcile runs; without
   * it every write reads first. */
  observe(store: ObservedSecrets): void {
    this.#observed = store;
  }

  /** Whether a watch event of a destination Secret is Ferry's own write: the version Ferry wrote, or an
   * update from the version a write in flight replaces. */
  isOwn(
    namespace: string | undefined,
    name: string | undefined,
    resourceVersion: string | undefined,
    oldResourceVersion?: string,
  ): boolean {
    const d = this.#destinations.get(objectKey(namespace, name ?? ''));
    if (!d) return false;
    if (resourceVersion !== undefined && d.wrote === resourceVersion) return true;
    return oldResourceVersion !== undefined && d.replacing === oldResourceVersion;
  }

  /** Whether `name` is, as the watch shows, exactly as Ferry last wrote or verified it for `owner`. */
  untouched(owner: Owner, name: string): boolean {
    return this.#current(owner, name) !== undefined;
  }

  /** Converges the destination to `data`, reading it first unless the caller did or it is untouched
   * and already desired. */
  async write(
    owner: Owner,
    dest: DestinationSpec,
    data: Record<string, string>,
    opts: WriteOptions = {},
  ): Promise<WriteResult> {
    const namespace = owner.metadata.namespace;
    const stamp = this.#stamp(owner, dest, data, opts.annotations);
    if (!opts.read && this.#current(owner, dest.name)?.stamp === stamp) return { outcome: 'skipped' };
    // A Secret to create that the watch has never shown is created without reading it first (the
    // initial sync of N resources: one API request less each); should it exist after all (not
    // Ferry's, or not yet in the watch), the create fails and the Secret is read as before.
    const observed = this.#observed;
    const unseen =
      !opts.read && dest.create === true && observed !== undefined && !observed.get(namespace, dest.name);
    let existing = opts.read
      ? opts.read.existing
      : unseen
        ? undefined
        : await this.#client.getIfExists<Secret>(Secrets, dest.name, namespace);
    const key = objectKey(namespace, dest.name);
    const d = this.#entry(key);
    const sync = (): Promise<SyncResult> => {
      d.replacing = existing?.metadata.resourceVersion;
      return syncDestination(this.#client, owner, dest, data, existing, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        strict: opts.strict,
        annotations: opts.annotations,
      });
    };
    let result: SyncResult;
    try {
      result = await sync();
    } catch (err) {
      if (!(unseen && isK8sApiError(err) && err.isAlreadyExists())) throw err;
      existing = await this.#client.getIfExists<Secret>(Secrets, dest.name, namespace);
      result = await sync();
    }
    if (result.resourceVersion) {
      d.replacing = undefined;
      d.wrote = result.resourceVersion;
    }
    const resourceVersion =
      result.resourceVersion ??
      (result.outcome === 'unchanged' ? existing?.metadata.resourceVersion : undefined);
    if (resourceVersion) d.verified = { ownerUid: owner.metadata.uid, resourceVersion, stamp };
    return {
      outcome: result.outcome,
      ...(existing ? { existing } : {}),
      ...(result.secret ? { written: result.secret } : {}),
    };
  }

  /** The destination's entry, made the newest; beyond the bound the oldest is forgotten. */
  #entry(key: string): Destination {
    const d = this.#destinations.get(key) ?? {};
    this.#destinations.delete(key);
    if (this.#destinations.size >= MAX_ENTRIES)
      this.#destinations.delete(this.#destinations.keys().next().value as string);
    this.#destinations.set(key, d);
    return d;
  }

  #current(owner: Owner, name: string): Destination['verified'] {
    const namespace = owner.metadata.namespace;
    const written = this.#destinations.get(objectKey(namespace, name))?.verified;
    if (!written || written.ownerUid !== owner.metadata.uid) return undefined;
    const seen = this.#observed?.get(namespace, name)?.metadata.resourceVersion;
    return seen === written.resourceVersion ? written : undefined;
  }

  /** Everything the destination is converged from: the owner, the destination spec, the data and
   * Ferry's own annotations. */
  #stamp(
    owner: Owner,
    dest: DestinationSpec,
    data: Record<string, string>,
    own: OwnAnnotations | undefined,
  ): string {
    const input = [
      owner.kind,
      owner.metadata.uid,
      dest.name,
      dest.create ?? false,
      dest.overwrite ?? false,
      dest.type ?? '',
      sorted(dest.labels),
      sorted(dest.annotations),
      sorted(data),
      sorted(own),
    ];
    return createHmac('sha256', this.#key).update(JSON.stringify(input)).digest('base64');
  }
}

const sorted = <V>(m: Record<string, V> | undefined): [string, V][] =>
  Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
