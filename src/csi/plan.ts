// The pure decisions of a NodePublishVolume: whether a republish at a target is a conflict, a no-op
// or a publish (CSI spec idempotency, kubelet's requiresRepublish refresh), and which held items a
// refresh keeps instead of minting them again.
import type { Grant } from './publisher.ts';
import { isHeldKind } from './secrets.ts';
import type { VolumeRecord } from './state.ts';

type SourceVersion = { uid: string; generation: number };

export interface RepublishInput {
  /** What is published at the target now, if anything. */
  prev: Pick<VolumeRecord, 'volumeId' | 'fingerprint' | 'fetchedAt' | 'grant'> | undefined;
  volumeId: string;
  fingerprint: string;
  /** The target is still mounted. */
  mounted: boolean;
  /** The CSISecrets as the informer has it now. */
  cached: SourceVersion | undefined;
  nowMs: number;
  /** A republish with unchanged arguments re-fetches after this long; 0 always does. */
  refreshIntervalMs: number;
}

export type RepublishPlan =
  /** Another volume is published at the target (ALREADY_EXISTS). */
  | { action: 'conflict' }
  /** Same publish, same CSISecrets, fetched recently: nothing to do. */
  | { action: 'skip' }
  /** Authorise and fetch; `samePublish` lets held items survive (keptItems). */
  | { action: 'publish'; samePublish: boolean };

const sameVersion = (a: SourceVersion | undefined, b: SourceVersion | undefined): boolean =>
  a !== undefined && b !== undefined && a.uid === b.uid && a.generation === b.generation;

export function planRepublish(i: RepublishInput): RepublishPlan {
  const { prev } = i;
  if (prev && prev.volumeId !== i.volumeId) return { action: 'conflict' };
  const samePublish = prev !== undefined && prev.fingerprint === i.fingerprint && i.mounted;
  if (samePublish) {
    const fresh = i.refreshIntervalMs <= 0 || i.nowMs - prev.fetchedAt < i.refreshIntervalMs;
    if (fresh && sameVersion(i.cached, prev.grant.csiSecrets)) return { action: 'skip' };
  }
  return { action: 'publish', samePublish };
}

/** The held items (leases, certificates, secret-ids) a refresh keeps: those of the same publish of
 * the same CSISecrets generation. */
export function keptItems(
  prev: Pick<VolumeRecord, 'items' | 'grant'> | undefined,
  samePublish: boolean,
  grant: Pick<Grant, 'csiSecrets'>,
): VolumeRecord['items'] {
  if (!prev || !samePublish || !sameVersion(prev.grant.csiSecrets, grant.csiSecrets)) return [];
  return prev.items.filter((i) => isHeldKind(i.ref.kind));
}
