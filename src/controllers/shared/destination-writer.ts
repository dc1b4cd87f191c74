// The one destination write of the secret kinds (VaultStaticSecret, VaultDynamicSecret,
// VaultPKISecret): read the Secret, converge it (destination.ts), and remember what was written so
// that (1) the watch event of Ferry's own write is not taken for drift (own-writes.ts) and (2) a
// refresh whose desired Secret is what Ferry last wrote or verified costs no API call at all.
//
// (2) works from the metadata-only watch of managed Secrets: per destination, Ferry remembers the
// resourceVersion it wrote (or read and found in sync) and a keyed hash of what it wanted there. When
// the watch still shows that resourceVersion, nobody has touched the Secret since; when the desired
// hash is also the same, there is nothing to read or write. Any edit or deletion changes the
// resourceVersion (or removes the object) in the watch, so drift healing reads and writes as before.
// Secrets Ferry did not label (`create: false`) are not in that watch and are always read.
// The hash is an HMAC under a key that lives only in this process: never a secret value, and no
// oracle for guessing one.
import { createHmac, randomBytes } from 'node:crypto';
import type { KubeClient } from '../../k8s/client.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { KubeObject, Secret } from '../../k8s/types.ts';
import { objectKey } from '../../runtime/store.ts';
import { type DestinationSpec, type Owner, type SyncOutcome, syncDestination } from './destination.ts';
import type { OwnWrites } from './own-writes.ts';

/** Bound on remembered destinations; beyond it the oldest is forgotten and costs one read. */
const MAX_ENTRIES = 100_000;

interface Written {
  ownerUid: string;
  resourceVersion: string;
  stamp: string;
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
}

export interface WriteOptions {
  /** The Secret as the caller already read it (`existing: undefined`: it did not exist). */
  read?: { existing: Secret | undefined };
  signal?: AbortSignal;
  strict?: boolean | undefined;
}

export class DestinationWriter {
  readonly #client: KubeClient;
  readonly #ownWrites: OwnWrites;
  readonly #key: Buffer;
  readonly #written = new Map<string, Written>();
  #observed: ObservedSecrets | undefined;

  constructor(client: KubeClient, ownWrites: OwnWrites, key: Buffer = randomBytes(32)) {
    this.#client = client;
    this.#ownWrites = ownWrites;
    this.#key = key;
  }

  /** The metadata-only store of managed Secrets (setup.ts); without it every write reads first. */
  observe(store: ObservedSecrets): void {
    this.#observed = store;
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
    const stamp = this.#stamp(owner, dest, data);
    if (!opts.read && this.#current(owner, dest.name)?.stamp === stamp) return { outcome: 'skipped' };
    const existing = opts.read
      ? opts.read.existing
      : await this.#client.getIfExists<Secret>(Secrets, dest.name, namespace);
    this.#ownWrites.expect(namespace, dest.name, existing?.metadata.resourceVersion);
    const result = await syncDestination(this.#client, owner, dest, data, existing, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      strict: opts.strict,
    });
    if (result.resourceVersion) this.#ownWrites.record(namespace, dest.name, result.resourceVersion);
    const resourceVersion =
      result.resourceVersion ??
      (result.outcome === 'unchanged' ? existing?.metadata.resourceVersion : undefined);
    if (resourceVersion)
      this.#remember(objectKey(namespace, dest.name), {
        ownerUid: owner.metadata.uid,
        resourceVersion,
        stamp,
      });
    return existing ? { outcome: result.outcome, existing } : { outcome: result.outcome };
  }

  #current(owner: Owner, name: string): Written | undefined {
    const namespace = owner.metadata.namespace;
    const written = this.#written.get(objectKey(namespace, name));
    if (!written || written.ownerUid !== owner.metadata.uid) return undefined;
    const seen = this.#observed?.get(namespace, name)?.metadata.resourceVersion;
    return seen === written.resourceVersion ? written : undefined;
  }

  /** Everything the destination is converged from: the owner, the destination spec and the data. */
  #stamp(owner: Owner, dest: DestinationSpec, data: Record<string, string>): string {
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
    ];
    return createHmac('sha256', this.#key).update(JSON.stringify(input)).digest('base64');
  }

  #remember(key: string, value: Written): void {
    this.#written.delete(key);
    if (this.#written.size >= MAX_ENTRIES) this.#written.delete(this.#written.keys().next().value as string);
    this.#written.set(key, value);
  }
}

const sorted = (m: Record<string, string> | undefined): [string, string][] =>
  Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
