// Writes a destination Secret with VSO's ownership rules (vso-api.md §4), and never writes when
// nothing would change — including for `create: false`, where VSO rewrites on every poll.
import { isDeepStrictEqual } from 'node:util';
import { API_VERSION } from '../../api/resources.ts';
import { ANNOTATION_ALLOW_SYNC, LABEL_OWNER_REF_UID, ownerLabels } from '../../consts/labels.ts';
import { CODES, FerryError } from '../../errors.ts';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { KubeObject, OwnerReference, Secret } from '../../k8s/types.ts';

export interface DestinationSpec {
  name: string;
  create?: boolean | undefined;
  overwrite?: boolean | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  type?: string | undefined;
}

export interface Owner {
  apiVersion: string;
  kind: string;
  /** `generation` absent: unknown, so a create looks for renamed destinations. */
  metadata: { name: string; namespace: string; uid: string; generation?: number };
}

export type SyncOutcome = 'created' | 'updated' | 'recreated' | 'unchanged';

export interface SyncResult {
  outcome: SyncOutcome;
  /** resourceVersion of the Secret Ferry wrote, so the watch event it causes can be told apart from
   * someone else's edit. */
  resourceVersion?: string;
  /** The Secret as Ferry wrote it (absent when unchanged), to write it again without reading it. */
  secret?: Secret;
}

/** Annotations Ferry itself owns on a destination, whatever `create` says: a string sets one,
 * undefined removes it. */
export type OwnAnnotations = Record<string, string | undefined>;

function withOwn(
  annotations: Record<string, string>,
  own: OwnAnnotations | undefined,
): Record<string, string> {
  const out = { ...annotations };
  for (const [k, v] of Object.entries(own ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** The destination's owner: the Ferry resource of `kind` that syncs it. */
export function destinationOwner(kind: string, obj: KubeObject): Owner {
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: {
      name: obj.metadata.name ?? '',
      namespace: obj.metadata.namespace ?? '',
      uid: obj.metadata.uid ?? '',
      ...(obj.metadata.generation !== undefined ? { generation: obj.metadata.generation } : {}),
    },
  };
}

/** A `create: false` destination that does not exist (yet): outcome.ts polls for it. */
export function destinationMissing(namespace: string, name: string): FerryError {
  return new FerryError(
    CODES.DESTINATION_MISSING,
    `destination Secret ${namespace}/${name} does not exist and create is false`,
  );
}

export function ownerReference(owner: Owner): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
  };
}

function ownedBy(secret: Secret, owner: Owner): boolean {
  const labels = secret.metadata.labels ?? {};
  const want = ownerLabels(owner.metadata.uid);
  return (
    Object.entries(want).every(([k, v]) => labels[k] === v) &&
    isDeepStrictEqual(secret.metadata.ownerReferences ?? [], [ownerReference(owner)])
  );
}

const sameData = (a: Record<string, string> | undefined, b: Record<string, string>): boolean =>
  isDeepStrictEqual(a ?? {}, b);

/**
 * Converges the destination to `data`. `existing` is the Secret as just read (undefined when absent),
 * so callers that already read it for drift detection do not read it twice.
 */
export async function syncDestination(
  client: KubeClient,
  owner: Owner,
  dest: DestinationSpec,
  data: Record<string, string>,
  existing: Secret | undefined,
  opts: { signal?: AbortSignal; strict?: boolean | undefined; annotations?: OwnAnnotations | undefined } = {},
): Promise<SyncResult> {
  const namespace = owner.metadata.namespace;
  const { signal } = opts;
  if (!dest.create) {
    if (!existing) throw destinationMissing(namespace, dest.name);
    if (opts.strict) requireOptIn(existing, 'destination.create is false');
    const annotations = withOwn(existing.metadata.annotations ?? {}, opts.annotations);
    if (sameData(existing.data, data) && isDeepStrictEqual(existing.metadata.annotations ?? {}, annotations))
      return { outcome: 'unchanged' };
    const metadata = { ...existing.metadata, annotations };
    return written(
      'updated',
      await client.replace<Secret>(Secrets, { ...existing, metadata, data }, { signal }),
    );
  }

  const desired: Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: dest.name,
      namespace,
      labels: { ...(dest.labels ?? {}), ...ownerLabels(owner.metadata.uid) },
      annotations: withOwn(dest.annotations ?? {}, opts.annotations),
      ownerReferences: [ownerReference(owner)],
    },
    type: dest.type || 'Opaque',
    data,
  };
  if (!existing) {
    const created = await client.create<Secret>(Secrets, desired, { signal });
    // Only a changed spec can have renamed the destination: at generation 1 there is nothing to prune,
    // which spares a LIST per create in the initial sync.
    if ((owner.metadata.generation ?? 2) > 1) await pruneRenamed(client, owner, dest.name, signal);
    return written('created', created);
  }
  if (!ownedBy(existing, owner)) {
    const hasOwnerLabel = existing.metadata.labels?.[LABEL_OWNER_REF_UID] !== undefined;
    if (!dest.overwrite || hasOwnerLabel) {
      throw new FerryError(
        CODES.NOT_OWNER,
        `destination Secret ${namespace}/${dest.name} exists and is not owned by this resource; set destination.overwrite to take it over`,
      );
    }
    if (opts.strict) requireOptIn(existing, 'destination.overwrite would take it over');
  }
  if ((existing.type ?? 'Opaque') !== desired.type) {
    // Secret type is immutable: replace the object, guarded by its UID so a concurrent recreate is not lost.
    await client.delete(Secrets, dest.name, namespace, {
      preconditions: { uid: existing.metadata.uid ?? '' },
      signal,
    });
    return written('recreated', await client.create<Secret>(Secrets, desired, { signal }));
  }
  const unchanged =
    sameData(existing.data, data) &&
    isDeepStrictEqual(existing.metadata.labels ?? {}, desired.metadata.labels) &&
    isDeepStrictEqual(existing.metadata.annotations ?? {}, desired.metadata.annotations) &&
    isDeepStrictEqual(existing.metadata.ownerReferences ?? [], desired.metadata.ownerReferences);
  if (unchanged) return { outcome: 'unchanged' };
  const updated = await client.replace<Secret>(
    Secrets,
    {
      ...existing,
      // desired.metadata carries no resourceVersion, so the existing one guards the update.
      metadata: { ...existing.metadata, ...desired.metadata },
      data,
    },
    { signal },
  );
  return written('updated', updated);
}

/** Under strict ownership, a Secret Ferry did not create is written only with its owner's opt-in. */
function requireOptIn(existing: Secret, why: string): void {
  if (existing.metadata.annotations?.[ANNOTATION_ALLOW_SYNC] === 'true') return;
  const { namespace, name } = existing.metadata;
  throw new FerryError(
    CODES.DESTINATION_NOT_OPTED_IN,
    `destination Secret ${namespace}/${name} was not created by this resource and ${why}, but it lacks the annotation ${ANNOTATION_ALLOW_SYNC}: "true" that this operator requires (--strict-destination-ownership); annotate the Secret to allow it`,
  );
}

function written(outcome: SyncOutcome, secret: Secret): SyncResult {
  const rv = secret.metadata.resourceVersion;
  return rv ? { outcome, resourceVersion: rv, secret } : { outcome, secret };
}

/** After a destination rename, delete the Secrets this owner created under other names. */
async function pruneRenamed(
  client: KubeClient,
  owner: Owner,
  keep: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const list = await client.list<Secret>(Secrets, {
    namespace: owner.metadata.namespace,
    labelSelector: `${LABEL_OWNER_REF_UID}=${owner.metadata.uid}`,
    metadataOnly: true,
    ...(signal ? { signal } : {}),
  });
  for (const s of list.items) {
    const name = s.metadata.name;
    if (!name || name === keep) continue;
    if (!(s.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid)) continue;
    try {
      await client.delete(Secrets, name, owner.metadata.namespace, {
        preconditions: { uid: s.metadata.uid ?? '' },
        signal,
      });
    } catch (err) {
      if (!(isK8sApiError(err) && err.isNotFound())) throw err;
    }
  }
}
