// Reads the secrets of a CSISecrets from Vault and shapes each into files, one item per list entry.
// Items are fetched one by one so that a republish can re-read KV secrets while keeping the leased
// ones (a dynamic credential or certificate is held for the pod's lifetime, not re-minted on every
// refresh as vault-csi-provider does), and so that one lease running out replaces just its item.
//
// File names are flat and indexed by list position, as VSO's driver names them:
// `static_secret_<i>_<key>`, `app_role_<i>_*`, and Ferry's `dynamic_secret_<i>_<key>` and
// `pki_secret_<i>_<key>` (the latter with the kubernetes.io/tls keys too, for servers that take a
// cert and key file).
import type { Transformation } from '../api/v1beta1/common.ts';
import type { CSISecretsSpec, VaultAppRoleSecretID } from '../api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import { expiryOffsetMs, pkiSecretData, TLS_TYPE } from '../delivery/pki-data.ts';
import { makeSecretData } from '../delivery/secret-data.ts';
import { shapeData, type TemplateInput } from '../delivery/transformation.ts';
import { errorMessage } from '../errors.ts';
import type { Store } from '../runtime/store.ts';
import { isRecord, type VaultApi } from '../vault/client.ts';
import { requestCredentials } from '../vault/dynamic.ts';
import { readKV } from '../vault/kv.ts';
import { revokeLease } from '../vault/leases.ts';
import { issueCertificate, revokeCertificate } from '../vault/pki.ts';
import type { OutputFile } from './atomic-writer.ts';
import { CsiError } from './errors.ts';
import { isValidFileName } from './names.ts';

const ITEM_KINDS = ['static', 'approle', 'dynamic', 'pki'] as const;
export type ItemKind = (typeof ITEM_KINDS)[number];
export const isItemKind = (v: unknown): v is ItemKind => ITEM_KINDS.includes(v as ItemKind);

const LISTS = {
  static: 'vaultStaticSecrets',
  approle: 'vaultAppRoleSecretIDs',
  dynamic: 'vaultDynamicSecrets',
  pki: 'vaultPKISecrets',
} as const satisfies Record<ItemKind, keyof CSISecretsSpec['secrets']>;

export interface ItemRef {
  kind: ItemKind;
  index: number;
}

export const itemKey = (r: ItemRef): string => `${r.kind}:${r.index}`;

/** What the driver holds in Vault for an item until the volume is unpublished. */
export type Held =
  | {
      kind: 'lease';
      leaseId: string;
      /** The Vault session (token) that created the lease: Vault revokes the lease with that token,
       * so once the session has a new token the lease is living on borrowed time. */
      clientId: string;
      durationS: number;
      renewable: boolean;
      renewalPercent?: number | undefined;
      /** When the lease was issued or last renewed, epoch ms. */
      startedAtMs: number;
      revoke: boolean;
    }
  | {
      kind: 'cert';
      mount: string;
      serial: string;
      /** Unix seconds. */
      expiration: number;
      issuedAt: number;
      expiryOffsetMs: number;
      revoke: boolean;
    };

export interface Item {
  ref: ItemRef;
  files: OutputFile[];
  held?: Held;
}

/** What the items hold in Vault. */
export const heldOf = (items: readonly { held?: Held | undefined }[]): Held[] =>
  items.flatMap((i) => (i.held ? [i.held] : []));

/** What Vault knows a held item by. */
export const heldId = (h: Held): string =>
  h.kind === 'lease' ? `lease:${h.leaseId}` : `cert:${h.mount}:${h.serial}`;

/** What an item is fetched from, as it was when the pod was authorised: renewals run without the
 * pod's token, and keep serving what was authorised even if the CSISecrets changes meanwhile. */
export interface SecretSource {
  namespace: string;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  spec: CSISecretsSpec;
}

/** Items worth holding across a republish: minted or leased, never re-read for a refresh. */
export const isHeldKind = (kind: ItemKind): boolean => kind !== 'static';
/** Items the driver keeps fresh itself for as long as the volume lives. */
export const isLeasedKind = (kind: ItemKind): boolean => kind === 'dynamic' || kind === 'pki';

/** CSISecrets order (static, approle, dynamic, pki; by index), so file order is stable. */
export const byListOrder = (a: { ref: ItemRef }, b: { ref: ItemRef }): number =>
  ITEM_KINDS.indexOf(a.ref.kind) - ITEM_KINDS.indexOf(b.ref.kind) || a.ref.index - b.ref.index;

export function itemRefs(spec: CSISecretsSpec): ItemRef[] {
  return ITEM_KINDS.flatMap((kind) =>
    (spec.secrets[LISTS[kind]] ?? []).map((_, index): ItemRef => ({ kind, index })),
  );
}

/** The transformation for one secret: the collection-wide one, then the secret's own on top
 * (its templates win on equal keys; refs, includes and excludes add up; excludeRaw if either). */
function mergeTransformation(
  all: Transformation | undefined,
  own: Transformation | undefined,
): Transformation | undefined {
  if (!all) return own;
  if (!own) return all;
  const out: Transformation = {};
  const templates = { ...all.templates, ...own.templates };
  if (Object.keys(templates).length > 0) out.templates = templates;
  const refs = [...(all.transformationRefs ?? []), ...(own.transformationRefs ?? [])];
  if (refs.length > 0) out.transformationRefs = refs;
  const includes = [...(all.includes ?? []), ...(own.includes ?? [])];
  if (includes.length > 0) out.includes = includes;
  const excludes = [...(all.excludes ?? []), ...(own.excludes ?? [])];
  if (excludes.length > 0) out.excludes = excludes;
  if (all.excludeRaw || own.excludeRaw) out.excludeRaw = true;
  return out;
}

export interface SecretFetcherDeps {
  transformations: Store<SecretTransformation>;
  globalExcludeRaw: boolean;
  now: () => number;
}

const what = (r: ItemRef): string => `${LISTS[r.kind]}[${r.index}]`;

export class SecretFetcher {
  readonly #d: SecretFetcherDeps;
  constructor(deps: SecretFetcherDeps) {
    this.#d = deps;
  }

  /** Fetches the items concurrently. When one fails, what the others already obtained in Vault is
   * released (best effort) before the error is thrown, so a failed publish leaves no lease behind. */
  async fetch(
    access: { api: VaultApi; clientId: string },
    src: SecretSource,
    refs: ItemRef[],
    signal?: AbortSignal,
  ): Promise<Item[]> {
    const { api } = access;
    const settled = await Promise.allSettled(refs.map((r) => this.#one(access, src, r, signal)));
    const failed = settled.find((s) => s.status === 'rejected');
    if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<Item>).value);
    for (const s of settled) {
      if (s.status === 'fulfilled' && s.value.held) await release(api, s.value.held).catch(() => {});
    }
    throw failed.reason;
  }

  async #one(
    { api, clientId }: { api: VaultApi; clientId: string },
    src: SecretSource,
    ref: ItemRef,
    signal?: AbortSignal,
  ): Promise<Item> {
    const secrets = src.spec.secrets;
    const opts = signal ? { signal } : {};
    const prefix = {
      static: `static_secret_${ref.index}_`,
      approle: `app_role_${ref.index}_`,
      dynamic: `dynamic_secret_${ref.index}_`,
      pki: `pki_secret_${ref.index}_`,
    }[ref.kind];
    const files = (data: Record<string, string>): OutputFile[] =>
      Object.entries(data).map(([key, b64]) => file(`${prefix}${key}`, Buffer.from(b64, 'base64')));
    switch (ref.kind) {
      case 'static': {
        const s = entry(secrets.vaultStaticSecrets, ref);
        const kv = await readKV(api, {
          mount: s.mount,
          path: s.path,
          type: s.type,
          ...(s.version ? { version: s.version } : {}),
          ...opts,
        });
        const input = { secrets: kv.data, metadata: kv.metadata ?? {} };
        return { ref, files: files(this.#shape(src, ref, s.transformation, input, kv.data, kv.raw)) };
      }
      case 'approle': {
        const r = entry(secrets.vaultAppRoleSecretIDs, ref);
        const out = await mintSecretId(api, r, signal);
        const fs: OutputFile[] = [];
        if (out.wrapInfo) fs.push(file(`${prefix}wrap_info.json`, Buffer.from(JSON.stringify(out.wrapInfo))));
        if (out.secretId !== undefined) fs.push(file(`${prefix}secret_id`, Buffer.from(out.secretId)));
        if (out.secretIdAccessor !== undefined)
          fs.push(file(`${prefix}secret_id_accessor`, Buffer.from(out.secretIdAccessor)));
        if (out.roleId !== undefined) fs.push(file(`${prefix}role_id`, Buffer.from(out.roleId)));
        return { ref, files: fs };
      }
      case 'dynamic': {
        const d = entry(secrets.vaultDynamicSecrets, ref);
        const res = await requestCredentials(api, d, signal);
        const held: Held | undefined = res.lease_id
          ? {
              kind: 'lease',
              leaseId: res.lease_id,
              clientId,
              durationS: res.lease_duration ?? 0,
              renewable: res.renewable === true,
              renewalPercent: d.renewalPercent,
              startedAtMs: this.#d.now(),
              revoke: d.revoke !== false,
            }
          : undefined;
        try {
          const data = this.#shape(src, ref, d.transformation, { secrets: res.data, metadata: {} }, res.data);
          return { ref, files: files(data), ...(held ? { held } : {}) };
        } catch (err) {
          if (held) await release(api, held).catch(() => {});
          throw err;
        }
      }
      case 'pki': {
        const p = entry(secrets.vaultPKISecrets, ref);
        const cert = await issueCertificate(api, p, signal);
        const held: Held = {
          kind: 'cert',
          mount: p.mount,
          serial: cert.serialNumber,
          expiration: cert.expiration,
          issuedAt: Math.floor(this.#d.now() / 1000),
          expiryOffsetMs: expiryOffsetMs(p.expiryOffset),
          revoke: p.revoke !== false,
        };
        try {
          const shaping = this.#shaping(src, ref, p.transformation, { secrets: cert.data, metadata: {} });
          return { ref, files: files(pkiSecretData(cert, shaping, TLS_TYPE)), held };
        } catch (err) {
          await release(api, held).catch(() => {});
          throw err;
        }
      }
    }
  }

  #shaping(
    src: SecretSource,
    ref: ItemRef,
    own: Transformation | undefined,
    input: Pick<TemplateInput, 'secrets' | 'metadata'>,
  ) {
    return asPrecondition(ref, () =>
      shapeData(
        { transformations: this.#d.transformations, globalExcludeRaw: this.#d.globalExcludeRaw },
        src.namespace,
        mergeTransformation(src.spec.secrets.transformation, own),
        { ...input, annotations: src.annotations, labels: src.labels },
      ),
    );
  }

  #shape(
    src: SecretSource,
    ref: ItemRef,
    own: Transformation | undefined,
    input: Pick<TemplateInput, 'secrets' | 'metadata'>,
    data: Record<string, unknown>,
    raw: unknown = data,
  ): Record<string, string> {
    const shaping = this.#shaping(src, ref, own, input);
    return asPrecondition(ref, () => makeSecretData(data, raw, shaping));
  }
}

/** A transformation or data-building error: the CSISecrets must change, so FAILED_PRECONDITION. */
function asPrecondition<T>(ref: ItemRef, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new CsiError('FAILED_PRECONDITION', `${what(ref)}: ${errorMessage(err)}`, { cause: err });
  }
}

function entry<T>(list: readonly T[] | undefined, ref: ItemRef): T {
  const e = list?.[ref.index];
  if (e === undefined) throw new CsiError('INTERNAL', `${what(ref)} does not exist`);
  return e;
}

function file(name: string, data: Uint8Array): OutputFile {
  if (!isValidFileName(name))
    throw new CsiError('FAILED_PRECONDITION', `key gives an invalid file name ${JSON.stringify(name)}`);
  return { name, data };
}

/** Gives back what an item holds: revokes the lease or the certificate, unless told to keep it. */
export async function release(api: VaultApi, held: Held, signal?: AbortSignal): Promise<void> {
  if (!held.revoke) return;
  if (held.kind === 'lease') await revokeLease(api, held.leaseId, signal);
  else await revokeCertificate(api, held.mount, held.serial, signal);
}

interface MintedSecretId {
  secretId?: string;
  secretIdAccessor?: string;
  roleId?: string;
  wrapInfo?: Record<string, unknown>;
}

const mountOf = (m: string) => m.replace(/^\/+|\/+$/g, '');

/** A new AppRole secret-id (response-wrapped when wrapTTL is set) and optionally the role-id. */
async function mintSecretId(
  api: VaultApi,
  r: VaultAppRoleSecretID,
  signal?: AbortSignal,
): Promise<MintedSecretId> {
  const base = `auth/${mountOf(r.mount)}/role/${encodeURIComponent(r.role)}`;
  const body: Record<string, unknown> = {};
  if (r.metadata && Object.keys(r.metadata).length > 0) body.metadata = JSON.stringify(r.metadata);
  if (r.cidrList?.length) body.cidr_list = r.cidrList;
  if (r.tokenBoundCIDRs?.length) body.token_bound_cidrs = r.tokenBoundCIDRs;
  if (r.ttl) body.ttl = r.ttl;
  if (r.numUses !== undefined) body.num_uses = r.numUses;
  const headers: Record<string, string> = r.wrapTTL ? { 'X-Vault-Wrap-TTL': r.wrapTTL } : {};
  const res = await api.write(`${base}/secret-id`, body, { headers, ...(signal ? { signal } : {}) });
  const out: MintedSecretId = {};
  if (r.wrapTTL) {
    const w = res?.wrap_info;
    if (!isRecord(w)) throw new CsiError('INTERNAL', `no wrap_info from ${base}/secret-id`);
    out.wrapInfo = w;
  } else {
    const data = res?.data ?? {};
    if (typeof data.secret_id !== 'string')
      throw new CsiError('INTERNAL', `no secret_id from ${base}/secret-id`);
    out.secretId = data.secret_id;
    if (typeof data.secret_id_accessor === 'string') out.secretIdAccessor = data.secret_id_accessor;
  }
  if (r.syncRoleID) {
    const rr = await api.read(`${base}/role-id`, signal ? { signal } : {});
    const roleId = rr?.data?.role_id;
    if (typeof roleId !== 'string') throw new CsiError('INTERNAL', `no role_id from ${base}/role-id`);
    out.roleId = roleId;
  }
  return out;
}
