// Client-cache persistence (vso-api §11.4): the token of each cached Vault session is kept in an
// immutable Secret `vso-cc-<cacheKey>` in the operator namespace, so that a restarted operator (or a
// new leader) resumes the same token instead of logging in again. A new token would leave every
// lease its predecessor created to die with it once nobody renews it (§21.9).
//
// - `direct-unencrypted` stores the auth response as JSON; `direct-encrypted` stores it encrypted by
//   Vault's Transit engine (`<mount>/encrypt/<key>`) through the VaultAuth labelled
//   `cacheStorageEncryption=true` in the operator namespace.
// - `messageMAC` = HMAC-SHA256 (the operator's HMAC key) over name ‖ cacheKey ‖ payload: an entry that
//   was edited, or copied under another name, is not restored (and is deleted).
// - Secrets are immutable, so a changed token replaces the entry (delete, then create).
// The token is never logged: errors carry names and reasons only.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { APP_NAME, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME } from '../consts/labels.ts';
import { CODES, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { isK8sApiError } from '../k8s/errors.ts';
import { Secrets } from '../k8s/resources.ts';
import type { Secret } from '../k8s/types.ts';
import type { VaultApi } from './client.ts';

export const PERSISTENCE_MODELS = ['none', 'direct-unencrypted', 'direct-encrypted'] as const;
export type PersistenceModel = (typeof PERSISTENCE_MODELS)[number];

export function parsePersistenceModel(v: string | undefined): PersistenceModel {
  const value = v === undefined || v === '' ? 'none' : v;
  if ((PERSISTENCE_MODELS as readonly string[]).includes(value)) return value as PersistenceModel;
  throw new FerryError(
    CODES.INVALID_CONFIG,
    `invalid client cache persistence model ${JSON.stringify(value)}: want one of ${PERSISTENCE_MODELS.join(', ')}`,
  );
}

export const STORAGE_PREFIX = 'vso-cc-';
export const STORAGE_COMPONENT = 'client-cache-storage';
/** VSO labels its storage Secrets `managed-by=vso` (not the `hashicorp-vso` of destination Secrets). */
export const STORAGE_MANAGED_BY = 'vso';
export const STORAGE_SELECTOR = `${LABEL_NAME}=${APP_NAME},${LABEL_MANAGED_BY}=${STORAGE_MANAGED_BY},${LABEL_COMPONENT}=${STORAGE_COMPONENT}`;
export const ENCRYPTION_AUTH_LABEL = 'cacheStorageEncryption';
const DATA_SECRET = 'secret';
const DATA_MAC = 'messageMAC';

export const storageSecretName = (cacheKey: string): string => `${STORAGE_PREFIX}${cacheKey}`;

/** A session's token state, as persisted. `leaseDuration` is the TTL granted by the last login or
 * renewal; `expiresAt` (epoch ms, undefined for a token without expiry) when it runs out. */
export interface PersistedToken {
  token: string;
  accessor: string;
  policies: string[];
  renewable: boolean;
  leaseDuration: number;
  loginTtlSeconds: number;
  expiresAt: number | undefined;
}

/** Who owns the entry: the labels VSO sets, so entries can be found by VaultAuth or connection. */
export interface StorageOwner {
  cacheKey: string;
  authNamespace: string;
  authUID: string;
  authGeneration: number;
  connectionNamespace: string;
  connectionUID: string;
  connectionGeneration: number;
  providerUID: string;
  providerNamespace: string;
}

/** Encrypts the payload; Transit in production. */
export interface CacheEncryption {
  /** Name of the encryption VaultAuth (label `vaultTransitRef`). */
  readonly vaultAuthName: string;
  encrypt(plain: Buffer, signal?: AbortSignal): Promise<Buffer>;
  decrypt(cipher: Buffer, signal?: AbortSignal): Promise<Buffer>;
}

/** Transit encryption through a session of the encryption VaultAuth. */
export function transitEncryption(
  api: VaultApi,
  opts: { mount: string; keyName: string; vaultAuthName: string },
): CacheEncryption {
  const call = async (
    op: 'encrypt' | 'decrypt',
    body: Record<string, unknown>,
    key: string,
    signal: AbortSignal | undefined,
  ): Promise<string> => {
    const path = `${opts.mount.replace(/^\/+|\/+$/g, '')}/${op}/${opts.keyName}`;
    const res = await api.write(path, body, signal ? { signal } : undefined);
    const v = res?.data?.[key];
    if (typeof v !== 'string' || v === '')
      throw new FerryError(CODES.VAULT_API, `Transit ${op} at ${path} returned no ${key}`);
    return v;
  };
  return {
    vaultAuthName: opts.vaultAuthName,
    async encrypt(plain, signal) {
      const ciphertext = await call('encrypt', { plaintext: plain.toString('base64') }, 'ciphertext', signal);
      return Buffer.from(ciphertext, 'utf8');
    },
    async decrypt(cipher, signal) {
      const plaintext = await call('decrypt', { ciphertext: cipher.toString('utf8') }, 'plaintext', signal);
      return Buffer.from(plaintext, 'base64');
    },
  };
}

export type StorageKube = Pick<KubeClient, 'get' | 'create' | 'delete' | 'list'>;

export interface ClientCacheStorageOptions {
  client: StorageKube;
  namespace: string;
  model: Exclude<PersistenceModel, 'none'>;
  hmacKey: () => Promise<Buffer>;
  /** Required with `direct-encrypted`: resolves the encryption client (may log in). */
  encryption?: (signal?: AbortSignal) => Promise<CacheEncryption>;
}

/** Why load() found nothing usable; `invalid` entries are deleted. */
export type LoadResult =
  | { status: 'found'; token: PersistedToken }
  | { status: 'missing' }
  | { status: 'invalid'; reason: string };

/** The JSON stored in `secret`: Vault's auth response plus what a restore needs to resume. */
interface StoredPayload {
  cacheKey: string;
  auth: {
    client_token: string;
    accessor: string;
    policies: string[];
    lease_duration: number;
    renewable: boolean;
  };
  login_ttl: number;
  expires_at: number | null;
}

function toPayload(cacheKey: string, t: PersistedToken): StoredPayload {
  return {
    cacheKey,
    auth: {
      client_token: t.token,
      accessor: t.accessor,
      policies: [...t.policies],
      lease_duration: t.leaseDuration,
      renewable: t.renewable,
    },
    login_ttl: t.loginTtlSeconds,
    expires_at: t.expiresAt ?? null,
  };
}

function fromPayload(v: unknown): (PersistedToken & { cacheKey: string }) | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const p = v as Partial<StoredPayload>;
  const a = p.auth;
  if (typeof p.cacheKey !== 'string' || typeof a !== 'object' || a === null) return undefined;
  if (typeof a.client_token !== 'string' || a.client_token === '') return undefined;
  if (typeof a.lease_duration !== 'number' || typeof a.renewable !== 'boolean') return undefined;
  return {
    cacheKey: p.cacheKey,
    token: a.client_token,
    accessor: typeof a.accessor === 'string' ? a.accessor : '',
    policies: Array.isArray(a.policies) ? a.policies.filter((x): x is string => typeof x === 'string') : [],
    renewable: a.renewable,
    leaseDuration: a.lease_duration,
    loginTtlSeconds: typeof p.login_ttl === 'number' ? p.login_ttl : a.lease_duration,
    expiresAt: typeof p.expires_at === 'number' ? p.expires_at : undefined,
  };
}

/** HMAC-SHA256 over name ‖ cacheKey ‖ payload, each length-prefixed so fields cannot slide. */
export function storageMAC(key: Buffer, name: string, cacheKey: string, payload: Buffer): Buffer {
  const h = createHmac('sha256', key);
  for (const part of [Buffer.from(name), Buffer.from(cacheKey), payload]) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length);
    h.update(len).update(part);
  }
  return h.digest();
}

const fingerprint = (t: PersistedToken): string =>
  createHash('sha256')
    .update(JSON.stringify([t.token, t.renewable, t.leaseDuration, t.loginTtlSeconds]))
    .digest('hex');

export class ClientCacheStorage {
  readonly model: Exclude<PersistenceModel, 'none'>;
  readonly #o: ClientCacheStorageOptions;
  /** Per key: the last operation, so store/delete of one key never interleave. */
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Per key: fingerprint of what the Secret holds, to skip rewrites of the same token. */
  readonly #stored = new Map<string, string>();

  constructor(o: ClientCacheStorageOptions) {
    if (o.model === 'direct-encrypted' && !o.encryption)
      throw new TypeError('direct-encrypted persistence needs an encryption client');
    this.model = o.model;
    this.#o = o;
  }

  get encrypted(): boolean {
    return this.model === 'direct-encrypted';
  }

  #serial<T>(cacheKey: string, op: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(cacheKey) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tail = next.catch(() => {});
    this.#chains.set(cacheKey, tail);
    void tail.then(() => {
      if (this.#chains.get(cacheKey) === tail) this.#chains.delete(cacheKey);
    });
    return next;
  }

  /** Writes (or replaces) the entry for `owner.cacheKey`. A write of the token already stored is
   * skipped. */
  store(owner: StorageOwner, token: PersistedToken, signal?: AbortSignal): Promise<boolean> {
    const key = owner.cacheKey;
    const fp = fingerprint(token);
    return this.#serial(key, async () => {
      if (this.#stored.get(key) === fp) return false;
      const name = storageSecretName(key);
      let payload: Buffer = Buffer.from(JSON.stringify(toPayload(key, token)), 'utf8');
      let encryptionRef: string | undefined;
      if (this.encrypted) {
        const enc = await this.#encryption(signal);
        payload = await enc.encrypt(payload, signal);
        encryptionRef = enc.vaultAuthName;
      }
      const mac = storageMAC(await this.#o.hmacKey(), name, key, payload);
      const secret: Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name,
          namespace: this.#o.namespace,
          labels: labelsOf(owner, encryptionRef),
        },
        immutable: true,
        type: 'Opaque',
        data: { [DATA_SECRET]: payload.toString('base64'), [DATA_MAC]: mac.toString('base64') },
      };
      this.#stored.delete(key);
      await this.#deleteSecret(name);
      try {
        await this.#o.client.create<Secret>(Secrets, secret);
      } catch (err) {
        if (!(isK8sApiError(err) && err.isAlreadyExists())) throw err;
        // Another replica wrote it between our delete and create: ours is the newer token.
        await this.#deleteSecret(name);
        await this.#o.client.create<Secret>(Secrets, secret);
      }
      this.#stored.set(key, fp);
      return true;
    });
  }

  /** Reads, verifies (MAC, cacheKey) and decrypts the entry for `cacheKey`. An entry that fails
   * verification is deleted and reported `invalid`. */
  load(cacheKey: string, signal?: AbortSignal): Promise<LoadResult> {
    return this.#serial(cacheKey, async (): Promise<LoadResult> => {
      const name = storageSecretName(cacheKey);
      let secret: Secret;
      try {
        secret = await this.#o.client.get<Secret>(Secrets, name, this.#o.namespace);
      } catch (err) {
        if (isK8sApiError(err) && err.isNotFound()) return { status: 'missing' };
        throw err;
      }
      const invalid = async (reason: string): Promise<LoadResult> => {
        this.#stored.delete(cacheKey);
        await this.#deleteSecret(name);
        return { status: 'invalid', reason };
      };
      const labels = secret.metadata.labels ?? {};
      if (labels.cacheKey !== cacheKey) return invalid('cacheKey label does not match');
      const wasEncrypted = labels.encrypted === 'true';
      if (wasEncrypted !== this.encrypted)
        return invalid(wasEncrypted ? 'entry is encrypted' : 'entry is not encrypted');
      const raw = secret.data?.[DATA_SECRET];
      const macB64 = secret.data?.[DATA_MAC];
      if (!raw || !macB64) return invalid('entry has no secret or messageMAC');
      const payload = Buffer.from(raw, 'base64');
      const want = storageMAC(await this.#o.hmacKey(), name, cacheKey, payload);
      const got = Buffer.from(macB64, 'base64');
      if (got.length !== want.length || !timingSafeEqual(got, want)) return invalid('messageMAC mismatch');
      let plain: Buffer = payload;
      if (this.encrypted) {
        try {
          plain = await (await this.#encryption(signal)).decrypt(payload, signal);
        } catch (err) {
          // An unreachable Vault is not a reason to drop the entry; a refused decryption is.
          if (isDecryptRefusal(err)) return invalid('Transit decryption refused');
          throw err;
        }
      }
      let parsed: ReturnType<typeof fromPayload>;
      try {
        parsed = fromPayload(JSON.parse(plain.toString('utf8')));
      } catch {
        parsed = undefined;
      }
      if (!parsed) return invalid('entry payload is malformed');
      if (parsed.cacheKey !== cacheKey) return invalid('payload cacheKey does not match');
      const { cacheKey: _k, ...token } = parsed;
      this.#stored.set(cacheKey, fingerprint(token));
      return { status: 'found', token };
    });
  }

  /** Deletes the entry (session pruned, revoked or found invalid). */
  delete(cacheKey: string): Promise<void> {
    return this.#serial(cacheKey, async () => {
      this.#stored.delete(cacheKey);
      await this.#deleteSecret(storageSecretName(cacheKey));
    });
  }

  async #deleteSecret(name: string): Promise<void> {
    await deleteIfExists(this.#o.client, this.#o.namespace, name);
  }

  #encryption(signal?: AbortSignal): Promise<CacheEncryption> {
    const get = this.#o.encryption;
    if (!get) throw new TypeError('no encryption client');
    return get(signal);
  }
}

/** The storage entries in `namespace` (metadata and labels only). */
export async function listClientCacheStorage(
  client: StorageKube,
  namespace: string,
  signal?: AbortSignal,
): Promise<{ name: string; labels: Record<string, string> }[]> {
  const list = await client.list<Secret>(Secrets, {
    namespace,
    labelSelector: STORAGE_SELECTOR,
    metadataOnly: true,
    ...(signal ? { signal } : {}),
  });
  return list.items
    .filter((s) => (s.metadata.name ?? '').startsWith(STORAGE_PREFIX))
    .map((s) => ({ name: s.metadata.name ?? '', labels: s.metadata.labels ?? {} }));
}

/** Deletes every storage entry in `namespace` (model `none` at start). Returns how many. */
export async function purgeClientCacheStorage(client: StorageKube, namespace: string): Promise<number> {
  let n = 0;
  for (const { name } of await listClientCacheStorage(client, namespace)) {
    if (await deleteIfExists(client, namespace, name)) n += 1;
  }
  return n;
}

/** Deletes a storage Secret; one that is already gone is no error. Returns whether it existed. */
async function deleteIfExists(client: StorageKube, namespace: string, name: string): Promise<boolean> {
  try {
    await client.delete(Secrets, name, namespace);
    return true;
  } catch (err) {
    if (isK8sApiError(err) && err.isNotFound()) return false;
    throw err;
  }
}

function labelsOf(o: StorageOwner, encryptionRef: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {
    [LABEL_NAME]: APP_NAME,
    [LABEL_MANAGED_BY]: STORAGE_MANAGED_BY,
    [LABEL_COMPONENT]: STORAGE_COMPONENT,
    cacheKey: o.cacheKey,
    'auth/namespace': o.authNamespace,
    'auth/UID': o.authUID,
    'auth/generation': String(o.authGeneration),
    'connection/namespace': o.connectionNamespace,
    'connection/UID': o.connectionUID,
    'connection/generation': String(o.connectionGeneration),
    'provider/UID': o.providerUID,
    'provider/namespace': o.providerNamespace,
  };
  if (encryptionRef !== undefined) {
    labels.encrypted = 'true';
    labels.vaultTransitRef = encryptionRef;
  }
  return labels;
}

/** Vault answered the decryption with a client error (wrong key, bad ciphertext): the entry is
 * unusable. 401/403 are excluded: the encryption client's own token may be the problem. */
function isDecryptRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 401 && status !== 403;
}
