// The pure part of VaultDynamicSecret: from the status, the destination and the clock to what the
// reconcile must do (decideSync) and when (the horizons). Seeded jitter keeps every horizon the same
// when another reconcile or another operator process recomputes it.
import type { VaultDynamicSecretStatus } from '../../api/v1beta1/vaultdynamicsecret.ts';
import type { Random } from '../../clock.ts';
import {
  refreshHorizonMs,
  renewalHorizonMs,
  type StaticCredsMeta,
  seededRandom,
  staticCredsPollMs,
} from '../../vault/leases.ts';

/** Data keys of static credentials that change on every read and so are left out of the MAC. */
const STATIC_META_KEYS = ['ttl', 'rotation_schedule', 'rotation_period', 'last_vault_rotation', '_raw'];

export type SyncReason =
  | 'InitialSync'
  | 'ResourceUpdated'
  | 'InexistentDestination'
  | 'SecretDataDrift'
  | 'LeaseNotRenewable'
  | 'LeaseExpired'
  | 'LeaseTruncated'
  | 'LeaseRenewalRefused';

export type SyncDecision =
  /** Request new credentials (static credentials: read and write them whatever changed). */
  | { action: 'sync'; reason: SyncReason }
  /** Renew the current lease; `plannedAt` is the horizon it was due at (epoch ms). */
  | { action: 'renew'; plannedAt: number }
  /** Read static or lease-less credentials again; write only when they changed. */
  | { action: 'poll'; reason: 'Refresh' | 'SecretDataDrift' }
  /** Nothing due before `dueAt` (epoch ms). */
  | { action: 'wait'; dueAt: number }
  /** Lease-less credentials without refreshAfter: nothing to do until something changes. */
  | { action: 'idle' };

export interface SyncInput {
  generation: number;
  status: VaultDynamicSecretStatus | undefined;
  destinationExists: boolean;
  /** The destination's data no longer matches status.secretMAC (false when there is no MAC). */
  destinationDrifted: boolean;
  allowStaticCreds: boolean;
  renewalPercent?: number | undefined;
  refreshAfterMs?: number | undefined;
  nowMs: number;
  /** Precise start of the current lease (ms) when this process knows it; else lastRenewalTime. */
  leaseStartMs?: number | undefined;
}

/** Where the current lease period started: the precise time if known, else the status seconds. */
export function leaseStart(status: VaultDynamicSecretStatus, preciseMs?: number): number {
  const fromStatus = status.lastRenewalTime * 1000;
  return preciseMs !== undefined && Math.floor(preciseMs / 1000) === status.lastRenewalTime
    ? preciseMs
    : fromStatus;
}

/** The horizon of the current lease (epoch ms). Seeded by lease and renewal time, so it is the same
 * when recomputed by another reconcile or another operator process. */
export function renewalDueAt(
  status: VaultDynamicSecretStatus,
  renewalPercent: number | undefined,
  preciseStartMs?: number,
): number {
  const lease = status.secretLease;
  const random: Random = seededRandom(`${lease.id}@${status.lastRenewalTime}`);
  return leaseStart(status, preciseStartMs) + renewalHorizonMs(lease.duration, renewalPercent, random);
}

/** When static credentials are due to be read again (epoch ms). */
export function staticPollDueAt(status: VaultDynamicSecretStatus): number {
  const m = status.staticCredsMetaData;
  const meta: StaticCredsMeta = {
    lastVaultRotation: m?.lastVaultRotation ?? 0,
    rotationPeriod: m?.rotationPeriod ?? 0,
    ttl: m?.ttl ?? 0,
    ...(m?.rotationSchedule ? { rotationSchedule: m.rotationSchedule } : {}),
  };
  const random = seededRandom(`static@${status.lastRenewalTime}@${meta.lastVaultRotation}`);
  return status.lastRenewalTime * 1000 + staticCredsPollMs(meta, false, random);
}

/** When lease-less credentials with `refreshAfter` are due to be read again (epoch ms). */
export function refreshDueAt(status: VaultDynamicSecretStatus, refreshAfterMs: number): number {
  const random = seededRandom(`refresh@${status.lastRenewalTime}`);
  return status.lastRenewalTime * 1000 + refreshHorizonMs(refreshAfterMs, random);
}

/** The credentials carry a lease that is renewed (or replaced) at its horizon. */
export const isLeased = (lease: VaultDynamicSecretStatus['secretLease']): boolean =>
  lease.id !== '' && lease.duration > 0;

/**
 * The sync-vs-renew decision (vso-api.md §6 "VDS sync reasons", minus the token-rotation and
 * client-config reasons: a renewal Vault refuses covers both).
 */
export function decideSync(i: SyncInput): SyncDecision {
  const s = i.status;
  if (!s?.lastGeneration || !s.secretLease) return { action: 'sync', reason: 'InitialSync' };
  if (s.lastGeneration !== i.generation) return { action: 'sync', reason: 'ResourceUpdated' };
  if (!i.destinationExists) return { action: 'sync', reason: 'InexistentDestination' };
  if (!isLeased(s.secretLease)) {
    // Static credentials and lease-less responses can be read again as they are: no new credentials.
    if (i.destinationDrifted) return { action: 'poll', reason: 'SecretDataDrift' };
    let dueAt: number | undefined;
    if (i.allowStaticCreds && s.staticCredsMetaData) dueAt = staticPollDueAt(s);
    else if (i.refreshAfterMs && i.refreshAfterMs > 0) dueAt = refreshDueAt(s, i.refreshAfterMs);
    if (dueAt === undefined) return { action: 'idle' };
    return i.nowMs >= dueAt ? { action: 'poll', reason: 'Refresh' } : { action: 'wait', dueAt };
  }
  if (i.destinationDrifted) return { action: 'sync', reason: 'SecretDataDrift' };
  const start = leaseStart(s, i.leaseStartMs);
  if (i.nowMs >= start + s.secretLease.duration * 1000) return { action: 'sync', reason: 'LeaseExpired' };
  const dueAt = renewalDueAt(s, i.renewalPercent, i.leaseStartMs);
  if (i.nowMs < dueAt) return { action: 'wait', dueAt };
  if (!s.secretLease.renewable) return { action: 'sync', reason: 'LeaseNotRenewable' };
  return { action: 'renew', plannedAt: dueAt };
}

/** The data that the MAC covers: everything for leased credentials; for static credentials, all but
 * the rotation metadata that changes on every read (VSO #1191). */
export function macData(data: Record<string, string>, isStatic: boolean): Record<string, string> {
  if (!isStatic) return data;
  return Object.fromEntries(Object.entries(data).filter(([k]) => !STATIC_META_KEYS.includes(k)));
}
