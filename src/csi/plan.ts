// The pure decisions of the Node service, given a request or a due time and what the target holds:
// whether a publish is a conflict, a no-op, over the node's volume bound or a publish (CSI spec
// idempotency, kubelet's requiresRepublish refresh); which items a publish fetches, keeps and
// gives back; which held items an upkeep pass renews or replaces, and when it is next due.
// No I/O: table-tested in test/unit/csi/plan.test.ts.
import type { Grant } from './publisher.ts';
import { heldDueAt } from './renewal.ts';
import { type ItemRef, isHeldKind, itemKey } from './secrets.ts';
import type { VolumeRecord } from './state.ts';

type SourceVersion = { uid: string; generation: number };
type RecordItem = VolumeRecord['items'][number];

export interface PublishPlanInput {
  /** What is published at the target now, if anything. */
  prev: Pick<VolumeRecord, 'volumeId' | 'fingerprint' | 'fetchedAt' | 'grant'> | undefined;
  volumeId: string;
  fingerprint: string;
  /** The target is still mounted. */
  mounted: boolean;
  /** The CSISecrets as the informer has it now. */
  cached: SourceVersion | undefined;
  nowMs: number;
  /** A republish with unchanged arguments re-fetches once this long has passed since the last fetch.
   * 0 (or less) turns that off, as rotation off in the Secrets Store CSI driver and as VSO's driver,
   * which has no periodic refresh: with requiresRepublish, kubelet republishes every volume about
   * every 2 minutes, and refetching each time would read Vault for every volume that often. A new
   * CSISecrets generation, a new mount or other arguments still fetch. */
  refreshIntervalMs: number;
  /** Volumes this node holds or is publishing for the first time, and its bound (--max-volumes). */
  volumes: number;
  maxVolumes: number;
}

export type PublishPlan =
  /** Another volume is published at the target (ALREADY_EXISTS). */
  | { action: 'conflict'; volumeId: string }
  /** Same publish, same CSISecrets, fetched recently: nothing to do. */
  | { action: 'skip' }
  /** A new volume on a node that holds its bound already (RESOURCE_EXHAUSTED). */
  | { action: 'exhausted'; max: number }
  /** Authorise and fetch; `samePublish` lets held items survive (planFetch). */
  | { action: 'publish'; samePublish: boolean };

const sameVersion = (a: SourceVersion | undefined, b: SourceVersion | undefined): boolean =>
  a !== undefined && b !== undefined && a.uid === b.uid && a.generation === b.generation;

export function planPublish(i: PublishPlanInput): PublishPlan {
  const { prev } = i;
  if (prev && prev.volumeId !== i.volumeId) return { action: 'conflict', volumeId: prev.volumeId };
  const samePublish = prev !== undefined && prev.fingerprint === i.fingerprint && i.mounted;
  if (samePublish) {
    const fresh = i.refreshIntervalMs <= 0 || i.nowMs - prev.fetchedAt < i.refreshIntervalMs;
    if (fresh && sameVersion(i.cached, prev.grant.csiSecrets)) return { action: 'skip' };
  }
  if (!prev && i.volumes >= i.maxVolumes) return { action: 'exhausted', max: i.maxVolumes };
  return { action: 'publish', samePublish };
}

export interface FetchPlan {
  /** Items of the previous publish kept as they are (held kinds of the same publish). */
  keep: RecordItem[];
  /** What to fetch from Vault. */
  fetch: ItemRef[];
  /** Held items of the previous publish that the new one no longer has: revoked once it is written. */
  release: RecordItem[];
}

/** What a publish fetches: everything the grant names, except the held items (leases,
 * certificates, secret-ids) of the same publish of the same CSISecrets generation, which it keeps. */
export function planFetch(
  prev: Pick<VolumeRecord, 'items' | 'grant'> | undefined,
  samePublish: boolean,
  grant: Pick<Grant, 'csiSecrets'>,
  refs: ItemRef[],
): FetchPlan {
  const keep =
    prev && samePublish && sameVersion(prev.grant.csiSecrets, grant.csiSecrets)
      ? prev.items.filter((i) => isHeldKind(i.ref.kind))
      : [];
  const kept = new Set(keep.map((i) => itemKey(i.ref)));
  return {
    keep,
    fetch: refs.filter((r) => !kept.has(itemKey(r))),
    release: (prev?.items ?? []).filter((i) => i.held && !kept.has(itemKey(i.ref))),
  };
}

export interface UpkeepState {
  items: readonly RecordItem[];
  /** A failed pass is retried then. */
  retryAt?: number | undefined;
  /** Check every lease now (a re-login or a restart: they may belong to an old Vault token). */
  recheck?: boolean | undefined;
  /** Items to fetch again now (a container restarted, syncConfig.containerState). */
  resync?: readonly ItemRef[] | undefined;
}

/** When a volume's upkeep is next due; undefined when it holds nothing to keep. A pending retry
 * postpones a recheck, so a failing check backs off instead of running again at once. */
export function upkeepDueAt(v: UpkeepState, nowMs: number): number | undefined {
  if (v.resync?.length) return nowMs;
  const dues = v.items.flatMap((i) => (i.held ? [heldDueAt(i.held, nowMs)] : []));
  if (v.retryAt !== undefined) dues.push(v.retryAt);
  else if (v.recheck) dues.push(nowMs);
  return dues.length > 0 ? Math.min(...dues) : undefined;
}

export interface UpkeepPlan {
  /** Leases to renew (`due`) or only to check (a recheck before they are due). */
  renew: { item: RecordItem; due: boolean }[];
  /** Items fetched again at once: certificates in their renewal window. */
  replace: ItemRef[];
}

/** What one upkeep pass does with a volume's held items. */
export function planUpkeep(items: readonly RecordItem[], recheck: boolean, nowMs: number): UpkeepPlan {
  const plan: UpkeepPlan = { renew: [], replace: [] };
  for (const item of items) {
    if (!item.held) continue;
    const due = heldDueAt(item.held, nowMs) <= nowMs;
    if (item.held.kind === 'cert') {
      if (due) plan.replace.push(item.ref);
    } else if (due || recheck) plan.renew.push({ item, due });
  }
  return plan;
}
