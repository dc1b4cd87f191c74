import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CTX } from '../../../src/csi/access.ts';
import { CsiError } from '../../../src/csi/errors.ts';
import type { NodePublishVolumeRequest } from '../../../src/csi/proto.ts';
import { fingerprint, isValidTarget, validatePublish, validateUnpublish } from '../../../src/csi/validate.ts';

const AUD = 'csi.vso.hashicorp.com';
const ROOT = '/var/lib/kubelet/pods';
const good: NodePublishVolumeRequest = {
  volume_id: 'v1',
  target_path: `${ROOT}/uid-1/volumes/kubernetes.io~csi/secrets/mount`,
  volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
  readonly: true,
  volume_context: {
    [CTX.podName]: 'web',
    [CTX.podNamespace]: 'app',
    [CTX.podUid]: '0c5d6b8e-1f3a-4c3e-9a0b-2d4e6f8a0b1c',
    [CTX.serviceAccount]: 'web',
    [CTX.tokens]: JSON.stringify({ [AUD]: { token: 't' } }),
    [CTX.csiSecretsName]: 'db',
  },
};
const opts = { audience: AUD, targetRoot: ROOT };
const invalid = (req: NodePublishVolumeRequest, message: RegExp) =>
  assert.throws(
    () => validatePublish(req, opts),
    (e: unknown) => e instanceof CsiError && e.code === 'INVALID_ARGUMENT' && message.test(e.message),
  );

describe('validatePublish', () => {
  it('accepts a kubelet request and reads the mount group', () => {
    const v = validatePublish(
      {
        ...good,
        volume_capability: {
          mount: { volume_mount_group: '2000' },
          access_mode: { mode: 'SINGLE_NODE_WRITER' },
        },
      },
      opts,
    );
    assert.equal(v.mountGroup, 2000);
    assert.equal(v.context.csiSecrets.name, 'db');
  });

  it('refuses, in order, what csi-sanity and the CSI spec call invalid', () => {
    const cases: [Partial<NodePublishVolumeRequest>, RegExp][] = [
      [{ volume_id: '' }, /volume_id/],
      [{ target_path: '' }, /target_path is required/],
      [{ volume_capability: null }, /volume_capability/],
      [{ volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }, /block/],
      [{ volume_capability: { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } } }, /access mode/],
      [{ readonly: false }, /set `readOnly: true` on the pod's csi volume/],
      [{ target_path: 'relative/path' }, /absolute/],
      [{ target_path: `${ROOT}/../etc` }, /normalised/],
      [{ target_path: '/elsewhere/mount' }, /below/],
      [
        {
          volume_capability: {
            mount: { volume_mount_group: 'staff' },
            access_mode: { mode: 'SINGLE_NODE_WRITER' },
          },
        },
        /numeric/,
      ],
    ];
    for (const [over, message] of cases) invalid({ ...good, ...over } as NodePublishVolumeRequest, message);
    const { readonly: _, ...unset } = good;
    invalid(unset, /must be mounted read-only/);
  });

  it('fingerprints what identifies a publish, not the token', () => {
    const a = validatePublish(good, opts);
    const sameButToken = validatePublish(
      {
        ...good,
        volume_context: { ...good.volume_context, [CTX.tokens]: JSON.stringify({ [AUD]: { token: 'u' } }) },
      },
      opts,
    );
    const otherTarget = validatePublish({ ...good, target_path: `${good.target_path}2` }, opts);
    assert.equal(fingerprint(a), fingerprint(sameButToken));
    assert.notEqual(fingerprint(a), fingerprint(otherTarget));
  });
});

describe('isValidTarget', () => {
  it('accepts only a normalised path below the root, as a request could name it', () => {
    assert.ok(isValidTarget(`${ROOT}/uid/volumes/kubernetes.io~csi/secrets/mount`, ROOT));
    for (const bad of ['/etc', ROOT, `${ROOT}/../etc`, `${ROOT}/x/`, 'relative', `${ROOT}//x`])
      assert.ok(!isValidTarget(bad, ROOT), bad);
  });
});

describe('validateUnpublish', () => {
  it('needs the volume and a target below the root', () => {
    assert.deepEqual(validateUnpublish({ volume_id: 'v1', target_path: `${ROOT}/x/` }, opts), {
      volumeId: 'v1',
      targetPath: `${ROOT}/x`,
    });
    assert.throws(() => validateUnpublish({ volume_id: '', target_path: `${ROOT}/x` }, opts), CsiError);
  });
});
