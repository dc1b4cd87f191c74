// The Node service's behaviour, independent of gRPC: request validation, per-target serialisation,
// idempotent republish, mount setup, atomic write and teardown.
//
// Idempotency: a publish whose arguments (volume, target, pod, CSISecrets reference, read-only
// flag, mount group) equal those of the last successful publish at that target, while the
// CSISecrets is unchanged (same UID and generation in the cache) and the refresh interval has not
// passed, returns OK without touching Kubernetes or Vault. Otherwise the files are fetched again and
// swapped in place (kubelet's requiresRepublish refresh). A different volume at a target that is
// already published is ALREADY_EXISTS (CSI spec). Calls for one target never overlap; calls for
// different targets run concurrently.
import { createHash } from 'node:crypto';
import { isAbsolute, normalize, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.ts';
import type { Clock } from '../runtime/clock.ts';
import { systemClock } from '../runtime/clock.ts';
import { type PublishContext, parsePublishContext } from './access.ts';
import { writeAtomic } from './atomic-writer.ts';
import { CsiError, invalidArgument, toCsiError } from './errors.ts';
import type { Mounter } from './mounter.ts';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from './proto.ts';
import type { PublishInput, PublishResult } from './publisher.ts';

export interface PublishSource {
  publish(input: PublishInput, signal?: AbortSignal): Promise<PublishResult>;
  cachedSource(ns: string, name: string): { uid: string; generation: number } | undefined;
}

export interface NodeServiceOptions {
  nodeId: string;
  audience: string;
  mounter: Mounter;
  publisher: PublishSource;
  /** When set, every target path must lie below this directory (kubelet's pods dir on a node). */
  targetRoot?: string;
  /** A republish with unchanged arguments re-fetches after this long; 0 never does. */
  refreshIntervalMs: number;
  log: Logger;
  clock?: Clock;
}

export interface ValidPublish {
  volumeId: string;
  targetPath: string;
  readonly: boolean;
  mountGroup?: number;
  context: PublishContext;
}

interface Published {
  volumeId: string;
  fingerprint: string;
  source: { uid: string; generation: number };
  fetchedAt: number;
}

function checkTargetPath(path: string, root: string | undefined): string {
  if (!isAbsolute(path)) throw invalidArgument('target_path must be absolute');
  const norm = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (normalize(norm) !== norm) throw invalidArgument('target_path must be normalised');
  if (root !== undefined) {
    const rel = relative(root, norm);
    if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
      throw invalidArgument(`target_path must lie below ${root}`);
    }
  }
  return norm;
}

/** Validates a NodePublishVolume request in the order csi-sanity and kubelet expect. */
export function validatePublish(
  req: NodePublishVolumeRequest,
  opts: { audience: string; targetRoot?: string | undefined },
): ValidPublish {
  if (!req.volume_id) throw invalidArgument('volume_id is required');
  if (!req.target_path) throw invalidArgument('target_path is required');
  const cap = req.volume_capability;
  if (!cap) throw invalidArgument('volume_capability is required');
  if (cap.block || cap.access_type === 'block') throw invalidArgument('block volumes are not supported');
  if (!cap.mount && cap.access_type !== 'mount')
    throw invalidArgument('volume_capability must be a mount volume');
  const mode = cap.access_mode?.mode;
  if (mode === 'MULTI_NODE_SINGLE_WRITER' || mode === 'MULTI_NODE_MULTI_WRITER') {
    throw invalidArgument(`access mode ${mode} is not supported`);
  }
  const targetPath = checkTargetPath(req.target_path, opts.targetRoot);
  const group = cap.mount?.volume_mount_group ?? '';
  let mountGroup: number | undefined;
  if (group !== '') {
    if (!/^[0-9]{1,10}$/.test(group) || Number(group) > 0xffffffff) {
      throw invalidArgument('volume_mount_group must be a numeric group ID');
    }
    mountGroup = Number(group);
  }
  const context = parsePublishContext(req.volume_context ?? {}, opts.audience);
  return {
    volumeId: req.volume_id,
    targetPath,
    readonly: req.readonly === true,
    ...(mountGroup !== undefined ? { mountGroup } : {}),
    context,
  };
}

export function validateUnpublish(
  req: NodeUnpublishVolumeRequest,
  opts: { targetRoot?: string | undefined },
): { volumeId: string; targetPath: string } {
  if (!req.volume_id) throw invalidArgument('volume_id is required');
  if (!req.target_path) throw invalidArgument('target_path is required');
  return { volumeId: req.volume_id, targetPath: checkTargetPath(req.target_path, opts.targetRoot) };
}

function fingerprint(v: ValidPublish): string {
  const c = v.context;
  return createHash('sha256')
    .update(
      JSON.stringify([
        v.volumeId,
        v.targetPath,
        v.readonly,
        v.mountGroup ?? null,
        c.pod.namespace,
        c.pod.name,
        c.pod.uid,
        c.pod.serviceAccount,
        c.csiSecrets.namespace,
        c.csiSecrets.name,
      ]),
    )
    .digest('hex');
}

export interface NodeStats {
  publishes: number;
  fetches: number;
  skipped: number;
}

export class NodeService {
  readonly #o: NodeServiceOptions;
  readonly #clock: Clock;
  readonly #published = new Map<string, Published>();
  readonly #locks = new Map<string, Promise<void>>();
  readonly stats: NodeStats = { publishes: 0, fetches: 0, skipped: 0 };

  constructor(opts: NodeServiceOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
  }

  get nodeId(): string {
    return this.#o.nodeId;
  }

  /** Runs `fn` once every earlier call for the same target has finished. */
  async #serial<T>(target: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(target) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const chained = prev.then(() => mine);
    this.#locks.set(target, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(target) === chained) this.#locks.delete(target);
    }
  }

  async publish(req: NodePublishVolumeRequest, signal?: AbortSignal): Promise<void> {
    const o = this.#o;
    const v = validatePublish(req, { audience: o.audience, targetRoot: o.targetRoot });
    const log = o.log.child({
      volumeId: v.volumeId,
      pod: `${v.context.pod.namespace}/${v.context.pod.name}`,
      csiSecrets: `${v.context.csiSecrets.namespace}/${v.context.csiSecrets.name}`,
    });
    return this.#serial(v.targetPath, async () => {
      this.stats.publishes++;
      const fp = fingerprint(v);
      const prev = this.#published.get(v.targetPath);
      if (prev && prev.volumeId !== v.volumeId) {
        throw new CsiError('ALREADY_EXISTS', `target_path is already published for volume ${prev.volumeId}`);
      }
      if (prev && prev.fingerprint === fp) {
        const cur = o.publisher.cachedSource(v.context.csiSecrets.namespace, v.context.csiSecrets.name);
        const fresh = o.refreshIntervalMs <= 0 || this.#clock.now() - prev.fetchedAt < o.refreshIntervalMs;
        if (
          fresh &&
          cur?.uid === prev.source.uid &&
          cur.generation === prev.source.generation &&
          (await o.mounter.isSetUp(v.targetPath))
        ) {
          this.stats.skipped++;
          log.debug('already published');
          return;
        }
      }
      const input: PublishInput = {
        ...v.context,
        ...(v.mountGroup !== undefined ? { mountGroup: v.mountGroup } : {}),
      };
      const result = await o.publisher.publish(input, signal);
      this.stats.fetches++;
      const existed = await o.mounter.isSetUp(v.targetPath);
      try {
        await o.mounter.setup(v.targetPath);
        await writeAtomic(v.targetPath, result.files, result.ownership);
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'writing the volume failed');
        if (!existed) await o.mounter.teardown(v.targetPath).catch(() => {});
        throw new CsiError('INTERNAL', `writing the volume failed: ${errorMessage(err)}`, { cause: err });
      }
      this.#published.set(v.targetPath, {
        volumeId: v.volumeId,
        fingerprint: fp,
        source: result.source,
        fetchedAt: this.#clock.now(),
      });
      log.info({ files: result.files.length, refreshed: prev !== undefined }, 'volume published');
    });
  }

  async unpublish(req: NodeUnpublishVolumeRequest): Promise<void> {
    const o = this.#o;
    const v = validateUnpublish(req, { targetRoot: o.targetRoot });
    return this.#serial(v.targetPath, async () => {
      // Works after a driver restart too (no bookkeeping needed): whatever is at the target goes.
      try {
        await o.mounter.teardown(v.targetPath);
      } catch (err) {
        throw toCsiError(err);
      }
      this.#published.delete(v.targetPath);
      o.log.info({ volumeId: v.volumeId }, 'volume unpublished');
    });
  }
}
