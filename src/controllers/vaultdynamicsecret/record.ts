// The lease record on a VaultDynamicSecret's destination (annotation ANNOTATION_LEASES), written in
// the same Secret write as the credentials: the lease they hold, the lease the status named when they
// were written, and the replaced leases still to revoke. The status is written after the Secret, so
// an operator killed in between would otherwise leave a lease that nothing names: a restarted
// operator adopts the recorded lease when the status is exactly one step behind (it still names the
// lease the record replaces), and revokes what the record lists. Lease ids, times and the data's
// MAC only, never a value. Whoever may edit the Secret may edit the annotation, so the record is
// signed with the operator's HMAC key and bound to its owner's UID: a forged record, or one copied
// from another owner, is ignored; a replayed older one of the same owner replaces nothing (its
// `replaces` is not the status's lease) and only lists leases already replaced.
import type { VaultDynamicSecretStatus } from '../../api/v1beta1/vaultdynamicsecret.ts';
import { hmacBase64, macEqual } from '../shared/hmac.ts';

/** The lease of the credentials written with a record. */
export interface RecordedLease {
  id: string;
  /** Seconds. */
  duration: number;
  renewable: boolean;
  /** When it was issued (unix seconds): the adopted status's lastRenewalTime. */
  issued: number;
  /** The owner's generation the credentials were issued for. */
  generation: number;
  /** secretMAC of the data written with it. */
  mac: string;
}

/** A replaced lease not yet known to be revoked; past `expires` (unix seconds) Vault has let it go. */
export interface PendingRevoke {
  id: string;
  expires: number;
}

export interface LeaseRecord {
  /** Absent for credentials without a lease (static, lease-less). */
  lease?: RecordedLease;
  /** The lease the status named when the credentials were written ('' for none). */
  replaces: string;
  revoke: PendingRevoke[];
}

/** Pending revocations a record keeps; more only pile up while Vault refuses to revoke, and the
 * oldest then run out at their TTL. */
export const MAX_PENDING_REVOKES = 16;
const MAX_RECORD_CHARS = 32_768;
const MAX_ID_CHARS = 1024;
const DOMAIN = 'ferry VaultDynamicSecret lease record v1';

/** The record in a fixed field order, so that its signature can be recomputed from a parsed copy. */
function canonical(r: LeaseRecord): Record<string, unknown> {
  const lease = r.lease && {
    id: r.lease.id,
    duration: r.lease.duration,
    renewable: r.lease.renewable,
    issued: r.lease.issued,
    generation: r.lease.generation,
    mac: r.lease.mac,
  };
  return {
    ...(lease ? { lease } : {}),
    replaces: r.replaces,
    revoke: r.revoke.map((p) => ({ id: p.id, expires: p.expires })),
  };
}

function sign(key: Buffer, uid: string, record: Record<string, unknown>): string {
  return hmacBase64(key, `${DOMAIN}\n${uid}\n${JSON.stringify(record)}`);
}

/** The annotation value for `record`; undefined when there is nothing to record (no lease, nothing
 * to revoke), which removes the annotation. */
export function encodeRecord(key: Buffer, uid: string, record: LeaseRecord): string | undefined {
  if (!record.lease && record.revoke.length === 0) return undefined;
  const body = canonical(record);
  return JSON.stringify({ ...body, sig: sign(key, uid, body) });
}

const isId = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_ID_CHARS;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The record an annotation holds when it is well-formed and signed for owner `uid`; else undefined. */
export function decodeRecord(key: Buffer, uid: string, value: string | undefined): LeaseRecord | undefined {
  if (!value || value.length > MAX_RECORD_CHARS) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.sig !== 'string' || !isId(v.replaces) || !Array.isArray(v.revoke))
    return undefined;
  if (v.revoke.length > MAX_PENDING_REVOKES) return undefined;
  const revoke: PendingRevoke[] = [];
  for (const p of v.revoke) {
    if (!isObject(p) || !isId(p.id) || p.id === '' || !isCount(p.expires)) return undefined;
    revoke.push({ id: p.id, expires: p.expires });
  }
  const record: LeaseRecord = { replaces: v.replaces, revoke };
  if (v.lease !== undefined) {
    const l = v.lease;
    if (
      !isObject(l) ||
      !isId(l.id) ||
      l.id === '' ||
      !isCount(l.duration) ||
      typeof l.renewable !== 'boolean' ||
      !isCount(l.issued) ||
      !isCount(l.generation) ||
      !isId(l.mac)
    )
      return undefined;
    record.lease = {
      id: l.id,
      duration: l.duration,
      renewable: l.renewable,
      issued: l.issued,
      generation: l.generation,
      mac: l.mac,
    };
  }
  return macEqual(v.sig, sign(key, uid, canonical(record))) ? record : undefined;
}

/** When a lease of `status` runs out (unix seconds): Vault's own expiry is no later, since the
 * status time is taken after Vault answered (plus one second for its rounding down). */
export function leaseExpiry(status: VaultDynamicSecretStatus): number {
  return status.lastRenewalTime + status.secretLease.duration + 1;
}

/** The status a record takes over: the credentials were written with `record.lease` but the status
 * still names the lease they replaced (an operator stopped between the two writes). Undefined when
 * the status already names it or the record is not the next step after the status. */
export function adoptable(
  status: VaultDynamicSecretStatus | undefined,
  record: LeaseRecord,
): VaultDynamicSecretStatus | undefined {
  const lease = record.lease;
  const current = status?.secretLease?.id ?? '';
  if (!lease || lease.id === current || record.replaces !== current) return undefined;
  const adopted: VaultDynamicSecretStatus = {
    lastRenewalTime: lease.issued,
    lastGeneration: lease.generation,
    secretLease: { id: lease.id, duration: lease.duration, renewable: lease.renewable, requestID: '' },
    secretMAC: lease.mac,
  };
  if (status?.vaultClientMeta) adopted.vaultClientMeta = status.vaultClientMeta;
  if (status?.lastRuntimePodUID) adopted.lastRuntimePodUID = status.lastRuntimePodUID;
  if (status?.conditions) adopted.conditions = status.conditions;
  return adopted;
}

/**
 * The union of pending revocations (by id, the later expiry kept), without `inUse` (the lease the
 * credentials hold now is never revoked) and without those expired at `nowS`; beyond
 * MAX_PENDING_REVOKES the ones expiring first are dropped.
 */
export function mergePending(
  lists: readonly (readonly PendingRevoke[])[],
  inUse: string,
  nowS: number,
): PendingRevoke[] {
  const byId = new Map<string, number>();
  for (const list of lists)
    for (const p of list)
      if (p.id !== '' && p.id !== inUse && p.expires >= nowS)
        byId.set(p.id, Math.max(p.expires, byId.get(p.id) ?? 0));
  return [...byId]
    .map(([id, expires]) => ({ id, expires }))
    .sort((a, b) => a.expires - b.expires || (a.id < b.id ? -1 : 1))
    .slice(-MAX_PENDING_REVOKES);
}
