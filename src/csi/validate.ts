// Validation of the Node service's requests, in the order csi-sanity and kubelet expect (CSI spec:
// INVALID_ARGUMENT for a missing or malformed field), and the fingerprint that makes a republish
// with unchanged arguments idempotent. Pure: no I/O.
import { createHash } from 'node:crypto';
import { isAbsolute, normalize, relative, sep } from 'node:path';
import { type PublishContext, parsePublishContext } from './access.ts';
import { invalidArgument } from './errors.ts';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from './proto.ts';

export interface ValidPublish {
  volumeId: string;
  targetPath: string;
  mountGroup?: number;
  context: PublishContext;
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

/** Whether a target path recorded in the state directory is one a request could have named. */
export function isValidTarget(path: string, root: string | undefined): boolean {
  try {
    return checkTargetPath(path, root) === path;
  } catch {
    return false;
  }
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
  // The driver never lets a pod write its volume (docs/security.md): a read-write publish is refused.
  if (req.readonly !== true) {
    throw invalidArgument(
      "the volume must be mounted read-only: set `readOnly: true` on the pod's csi volume",
    );
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

/** What identifies a publish: equal fingerprints at one target make a republish a no-op. */
export function fingerprint(v: ValidPublish): string {
  const c = v.context;
  return createHash('sha256')
    .update(
      JSON.stringify([
        v.volumeId,
        v.targetPath,
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
