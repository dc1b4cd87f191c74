// When and how a published volume's held items are kept alive: a lease is renewed at its
// renewalPercent horizon (the operator's maths, vault/leases.ts) and replaced by new credentials
// once it cannot be renewed (not renewable, truncated by its max TTL, revoked behind the driver's
// back); a certificate is re-issued in its renewal window (vault/pki.ts). Replacing means: fetch the
// item again, swap the files, then revoke what it held before.

import { CSI_UPKEEP_BACKOFF, delayAfter } from '../backoff.ts';
import type { Random } from '../clock.ts';
import type { VaultApi } from '../vault/client.ts';
import {
  isTruncated,
  renewalHorizonMs,
  renewalNeedsNewCredentials,
  renewLease,
  seededRandom,
} from '../vault/leases.ts';
import { renewalWindow } from '../vault/pki.ts';
import type { Held } from './secrets.ts';

/** Epoch ms at which the held item needs attention. Jitter is seeded by the lease or serial, so the
 * time is the same whenever it is recomputed (on every timer, after a driver restart).
 *
 * A certificate without expiryOffset is re-issued at two thirds of its lifetime, like a lease at the
 * default renewalPercent: VaultPKISecret's "last second before expiry" would hand the pod an expired
 * certificate between the swap and its next read. */
export function heldDueAt(held: Held, nowMs: number): number {
  if (held.kind === 'lease') {
    const seed = seededRandom(`${held.leaseId}@${held.startedAtMs}`);
    return held.startedAtMs + renewalHorizonMs(held.durationS, held.renewalPercent, seed);
  }
  const lifetimeMs = Math.max(0, held.expiration - held.issuedAt) * 1000;
  const w = renewalWindow(
    {
      nowMs,
      expiration: held.expiration,
      expiryOffsetMs: held.expiryOffsetMs > 0 ? held.expiryOffsetMs : lifetimeMs / 3,
      lastRotation: held.issuedAt,
    },
    seededRandom(held.serial),
  );
  return w.inWindow ? nowMs : nowMs + w.horizonMs;
}

/**
 * Renews a due lease in place. Returns the renewed lease, or undefined when the item must be
 * replaced instead: a certificate, a lease that is not renewable, whose renewal the max TTL
 * truncated, or that Vault no longer lets us renew. Other errors (Vault down) are thrown: retry.
 */
export async function renewHeld(
  api: VaultApi,
  held: Held,
  nowMs: number,
  signal?: AbortSignal,
): Promise<Held | undefined> {
  if (held.kind !== 'lease' || !held.renewable) return undefined;
  try {
    const renewed = await renewLease(api, held.leaseId, held.durationS, signal);
    if (isTruncated(renewed) || !renewed.renewable) return undefined;
    return { ...held, durationS: renewed.durationS, startedAtMs: nowMs };
  } catch (err) {
    if (renewalNeedsNewCredentials(err)) return undefined;
    throw err;
  }
}

/** Retry delay after `attempt` failed renewals, replacements or revocations (CSI_UPKEEP_BACKOFF).
 * A lease is renewed with at least 10 % of its duration left (vault/leases.ts), which leaves room
 * for retries. */
export function retryDelayMs(attempt: number, random: Random): number {
  return delayAfter(CSI_UPKEEP_BACKOFF, attempt, random);
}
