// Vault leases: the sys/leases API (renew, revoke, lookup) and the pure timing maths a dynamic
// secret lives by — when to renew, when a renewal was truncated by the max TTL, when to poll
// static credentials. Timing functions take an injected Random so they are deterministic in tests,
// and `seededRandom` gives a horizon that is the same every time it is recomputed for the same lease
// (after an operator restart the renewal lands where the previous process planned it).
import { createHash } from 'node:crypto';
import type { Random } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import type { RequestOptions, VaultApi } from './client.ts';
import { isVaultError } from './errors.ts';

export const DEFAULT_RENEWAL_PERCENT = 67;
export const MAX_RENEWAL_PERCENT = 90;
/** VSO's renewal jitter: the horizon lands up to 10 % of the lease after `renewalPercent`. */
export const RENEWAL_JITTER_FRACTION = 0.1;
/** Never later than this share of the lease (VSO §21.14: 90 % + 10 % jitter could land at expiry). */
export const LATEST_RENEWAL_FRACTION = 0.9;
/** When the jitter band collapses against the cap, keep at least this much spread below it. */
export const MIN_JITTER_BAND_FRACTION = 0.05;

export interface Lease {
  id: string;
  /** Seconds. */
  durationS: number;
  renewable: boolean;
}

export interface RenewedLease extends Lease {
  requestId: string;
  /** The increment asked for; `durationS < requestedS` means the max TTL truncated the renewal. */
  requestedS: number;
}

export interface LeaseLookup {
  id: string;
  /** Seconds left. */
  ttlS: number;
  renewable: boolean;
  expireTime?: string;
}

const opts = (signal?: AbortSignal): RequestOptions | undefined => (signal ? { signal } : undefined);

/** `PUT sys/leases/renew {lease_id, increment}`. */
export async function renewLease(
  api: VaultApi,
  leaseId: string,
  incrementS: number,
  signal?: AbortSignal,
): Promise<RenewedLease> {
  const res = await api.write(
    'sys/leases/renew',
    { lease_id: leaseId, increment: Math.max(0, Math.round(incrementS)) },
    opts(signal),
  );
  if (!res?.lease_id) {
    throw new FerryError(CODES.VAULT_API, 'Vault PUT sys/leases/renew returned no lease');
  }
  return {
    id: res.lease_id,
    durationS: res.lease_duration ?? 0,
    renewable: res.renewable ?? false,
    requestId: res.request_id ?? '',
    requestedS: Math.max(0, Math.round(incrementS)),
  };
}

/** `PUT sys/leases/revoke {lease_id}`. A lease that is already gone counts as revoked. */
export async function revokeLease(api: VaultApi, leaseId: string, signal?: AbortSignal): Promise<void> {
  if (!leaseId) return;
  try {
    await api.write('sys/leases/revoke', { lease_id: leaseId }, opts(signal));
  } catch (err) {
    if (isLeaseGone(err)) return;
    throw err;
  }
}

/** `PUT sys/leases/lookup {lease_id}`; undefined when the lease no longer exists. */
export async function lookupLease(
  api: VaultApi,
  leaseId: string,
  signal?: AbortSignal,
): Promise<LeaseLookup | undefined> {
  try {
    const res = await api.write('sys/leases/lookup', { lease_id: leaseId }, opts(signal));
    const d = res?.data;
    if (!d) return undefined;
    const out: LeaseLookup = {
      id: typeof d.id === 'string' ? d.id : leaseId,
      ttlS: typeof d.ttl === 'number' ? d.ttl : 0,
      renewable: d.renewable === true,
    };
    if (typeof d.expire_time === 'string') out.expireTime = d.expire_time;
    return out;
  } catch (err) {
    if (isLeaseGone(err)) return undefined;
    throw err;
  }
}

/** The lease does not exist any more (expired, revoked, or never known to this Vault). */
export function isLeaseGone(err: unknown): boolean {
  return isVaultError(err) && err.isLeaseNotFound();
}

/** The renewal was answered with less time than asked for: the lease is running into its max TTL
 * and renewing again would only shrink it further, so new credentials are due. */
export function isTruncated(renewed: Pick<RenewedLease, 'durationS' | 'requestedS'>): boolean {
  return renewed.durationS < renewed.requestedS;
}

/** renewalPercent as VSO clamps it: default 67, within [0, 90]. */
export function effectiveRenewalPercent(renewalPercent: number | undefined): number {
  const p = renewalPercent ?? DEFAULT_RENEWAL_PERCENT;
  if (!Number.isFinite(p)) return DEFAULT_RENEWAL_PERCENT;
  return Math.min(Math.max(p, 0), MAX_RENEWAL_PERCENT);
}

/**
 * Milliseconds after the lease started (was issued or last renewed) at which to act on it: renew it,
 * or re-fetch it when it is not renewable.
 *
 * VSO: `lease × p/100 + rand[0, 10 %)`, which with p = 90 can land at expiry. Here the horizon is
 * drawn uniformly from [p %, p + 10 %] of the lease, capped at 90 %; when the cap squeezes that band
 * below 5 % wide, the band is widened downwards to [85 %, 90 %] so that many leases issued together
 * still spread out. Invariant: 0 ≤ horizon ≤ 0.9 × lease, so at least 10 % of the lease is left for
 * the renewal (and a retry) before expiry.
 */
export function renewalHorizonMs(
  leaseDurationS: number,
  renewalPercent: number | undefined,
  random: Random,
): number {
  const lease = Math.max(0, leaseDurationS) * 1000;
  if (lease === 0) return 0;
  const p = effectiveRenewalPercent(renewalPercent) / 100;
  const cap = LATEST_RENEWAL_FRACTION * lease;
  const hi = Math.min(p * lease + RENEWAL_JITTER_FRACTION * lease, cap);
  const lo = Math.min(p * lease, hi - MIN_JITTER_BAND_FRACTION * lease);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(cap, Math.max(0, lo + r * (hi - lo)));
}

/** `refreshAfter` for responses without a lease (VSO: used only when lease_duration is 0), jittered
 * down by 10–20 % like VSO's generic horizon so that a refresh never lands after the data expires. */
export function refreshHorizonMs(refreshAfterMs: number, random: Random): number {
  const d = Math.max(0, refreshAfterMs);
  return d - 0.1 * d - random() * 0.1 * d;
}

/** Poll interval while Vault has not rotated static credentials yet (VSO: 2 s). */
export const STATIC_CREDS_RETRY_MS = 2_000;
/** VSO adds 0.5 s to period-based rotations: Vault rotates a moment after the TTL reaches zero. */
export const STATIC_CREDS_PERIOD_SLACK_MS = 500;
/** Up to 3 s × 5 %. */
export const STATIC_CREDS_JITTER_MS = 150;

export interface StaticCredsMeta {
  /** Unix seconds of Vault's last rotation (0 when unknown). */
  lastVaultRotation: number;
  rotationPeriod: number;
  rotationSchedule?: string;
  /** Seconds until the next rotation. */
  ttl: number;
}

/** Parses the rotation metadata of a `static-creds` response. */
export function staticCredsMeta(data: Record<string, unknown>): StaticCredsMeta {
  const num = (v: unknown): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
    return Number.isFinite(n) ? Math.trunc(n) : 0;
  };
  const rot = data.last_vault_rotation;
  let last = 0;
  if (typeof rot === 'string') {
    const t = Date.parse(rot);
    if (Number.isFinite(t)) last = Math.floor(t / 1000);
  } else if (typeof rot === 'number') last = Math.trunc(rot);
  const out: StaticCredsMeta = {
    lastVaultRotation: last,
    rotationPeriod: num(data.rotation_period),
    ttl: num(data.ttl),
  };
  if (typeof data.rotation_schedule === 'string' && data.rotation_schedule !== '')
    out.rotationSchedule = data.rotation_schedule;
  return out;
}

/**
 * When to read static credentials again (vso-api.md §7.3): when the TTL runs out (+0.5 s for
 * period-based rotation) plus ≤ 150 ms of jitter; every 2 s while the rotation is due but has not
 * shown up yet (TTL at or below a second, or the rotation time has not moved since the last read).
 */
export function staticCredsPollMs(
  meta: StaticCredsMeta,
  sameRotationAsBefore: boolean,
  random: Random,
): number {
  const jitter = random() * STATIC_CREDS_JITTER_MS;
  if (meta.ttl <= 1 || (sameRotationAsBefore && meta.ttl <= 2)) return STATIC_CREDS_RETRY_MS + jitter;
  const slack = meta.rotationSchedule ? 0 : STATIC_CREDS_PERIOD_SLACK_MS;
  return meta.ttl * 1000 + slack + jitter;
}

/** A Random whose draws depend only on `seed`: the same lease and renewal time always give the same
 * horizon, in this process or the next. */
export function seededRandom(seed: string): Random {
  const h = createHash('sha256').update(seed).digest();
  let a = h.readUInt32BE(0);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Vault error that says the caller may not renew this lease (403) or that it is gone: both mean
 * new credentials, never a retry of the same renewal. */
export function renewalNeedsNewCredentials(err: unknown): boolean {
  if (isLeaseGone(err)) return true;
  if (!isVaultError(err)) return false;
  // 400 "failed to renew entry: …" means the engine could not renew a lease that still exists (its
  // database is down): retry the renewal; the lease is replaced only once it has expired.
  if (err.status === 400 && err.errors.some((e) => e.startsWith('failed to renew entry'))) return false;
  return err.isForbidden() || err.status === 400;
}
