// KV secrets engine reads. v1 stores the secret map directly in `data`; v2 nests it as
// `data.data` next to `data.metadata` and serves versions through `<mount>/data/<path>`.
import { CODES, FerryError } from '../errors.ts';
import { isRecord, type RequestOptions, type VaultApi } from './client.ts';
import { VaultError } from './errors.ts';

export type KVType = 'kv-v1' | 'kv-v2';

export interface ReadKVOptions {
  mount: string;
  path: string;
  type: KVType;
  /** kv-v2 only; 0 or unset reads the current version. */
  version?: number;
  signal?: AbortSignal;
}

export interface KVSecret {
  data: Record<string, unknown>;
  /** kv-v2 version metadata (version, created_time, deletion_time, destroyed, custom_metadata). */
  metadata?: Record<string, unknown>;
  /** The full response `data` as Vault returned it (used for templates' `.Secrets`/`.Metadata`). */
  raw: Record<string, unknown>;
}

export function kvReadPath(opts: Pick<ReadKVOptions, 'mount' | 'path' | 'type'>): string {
  const mount = opts.mount.replace(/^\/+|\/+$/g, '');
  const path = opts.path.replace(/^\/+/, '');
  if (mount === '' || path === '') {
    throw new FerryError(CODES.VAULT_CONFIG, 'KV mount and path must not be empty');
  }
  return opts.type === 'kv-v2' ? `${mount}/data/${path}` : `${mount}/${path}`;
}

/** Reads one KV secret. A missing secret, or a kv-v2 version that is deleted or destroyed, throws a
 * VaultError whose isNotFound() is true, so callers handle all three the same way. */
export async function readKV(client: VaultApi, opts: ReadKVOptions): Promise<KVSecret> {
  const path = kvReadPath(opts);
  const req: RequestOptions = {};
  if (opts.type === 'kv-v2' && opts.version !== undefined && opts.version > 0) {
    if (!Number.isInteger(opts.version)) {
      throw new FerryError(CODES.VAULT_CONFIG, 'KV version must be an integer');
    }
    req.query = { version: String(opts.version) };
  }
  if (opts.signal) req.signal = opts.signal;
  const res = await client.read(path, req);
  const notFound = (message: string) => new VaultError({ method: 'GET', path, status: 404, message });
  const raw = res?.data;
  if (!raw) throw notFound(`no secret at ${path}`);
  if (opts.type === 'kv-v1') return { data: raw, raw };

  const metadata = isRecord(raw.metadata) ? raw.metadata : undefined;
  if (metadata?.destroyed === true) throw notFound(`secret version at ${path} is destroyed`);
  // Deleted versions come back (with status 404) as `data: null` plus metadata. `deletion_time`
  // alone is not enough: `delete_version_after` sets it in the future while the data is readable.
  if (raw.data === null && metadata) throw notFound(`secret version at ${path} is deleted`);
  if (!isRecord(raw.data)) {
    // A v2 answer always nests `data`; its absence means the mount is really KV v1 (or not KV).
    throw new FerryError(CODES.VAULT_API, `response at ${path} is not a kv-v2 secret`);
  }
  const out: KVSecret = { data: raw.data, raw };
  if (metadata) out.metadata = metadata;
  return out;
}
