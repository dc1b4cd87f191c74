// The Node and Identity services over a real unix socket, with the publisher (Kubernetes and Vault)
// replaced by an in-process fake: validation, status codes, idempotency, concurrency, unpublish.
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { CTX } from '../../../src/csi/access.ts';
import { CsiClient, grpcCodeName } from '../../../src/csi/client.ts';
import { CsiError } from '../../../src/csi/errors.ts';
import { DirMounter } from '../../../src/csi/mounter.ts';
import { NodeService } from '../../../src/csi/node.ts';
import type { NodePublishVolumeRequest } from '../../../src/csi/proto.ts';
import type { PublishSource } from '../../../src/csi/publish.ts';
import type { Grant, PublishInput } from '../../../src/csi/publisher.ts';
import type { Held, Item, ItemRef } from '../../../src/csi/secrets.ts';
import { CsiServer } from '../../../src/csi/server.ts';
import { runningTasks, testGrant } from './grant.ts';

const AUD = 'csi.vso.hashicorp.com';
const log = pino({ level: 'silent' });

class FakeSource implements PublishSource {
  calls: PublishInput[] = [];
  generation = 1;
  delayMs = 0;
  fail: CsiError | undefined;
  inFlight = 0;
  maxInFlight = 0;
  async authorize(input: PublishInput): Promise<Grant> {
    this.calls.push(input);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.fail) throw this.fail;
      return testGrant(this.generation, {
        vaultStaticSecrets: [{ mount: 'kv', path: 'db', type: 'kv-v2' }],
      });
    } finally {
      this.inFlight--;
    }
  }
  async fetch(_grant: Grant, who: string, refs: ItemRef[] = []): Promise<Item[]> {
    const pod = who.split('/')[1];
    return refs.map((ref) => ({
      ref,
      files: [{ name: 'static_secret_0_password', data: Buffer.from(`pw-${pod}-${this.calls.length}`) }],
    }));
  }
  async renew(): Promise<Held | undefined> {
    return undefined;
  }
  async release(): Promise<void> {}
  cachedSource() {
    return { uid: 'u1', generation: this.generation };
  }
}

function ctx(pod: string): Record<string, string> {
  return {
    [CTX.podName]: pod,
    [CTX.podNamespace]: 'team-a',
    [CTX.podUid]: `uid-${pod}`,
    [CTX.serviceAccount]: 'web',
    [CTX.ephemeral]: 'true',
    [CTX.tokens]: JSON.stringify({ [AUD]: { token: 'tok', expirationTimestamp: '2030-01-01T00:00:00Z' } }),
    csiSecretsName: 'db',
  };
}

const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

describe('CSI node service over gRPC', () => {
  let dir: string;
  let root: string;
  let source: FakeSource;
  let server: CsiServer;
  let client: CsiClient;
  let now = 1_000_000;
  const clock = { now: () => now, setTimeout: () => ({ cancel() {} }) };
  const queue = runningTasks(clock);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-node-'));
    root = join(dir, 'pods');
    source = new FakeSource();
    const node = new NodeService({
      nodeId: 'node-1',
      audience: AUD,
      mounter: new DirMounter(),
      publisher: source,
      targetRoot: root,
      stagingDir: join(dir, 'staging'),
      refreshIntervalMs: 60_000,
      log,
      clock,
      tasks: queue.tasks,
    });
    server = new CsiServer({ driverName: AUD, version: '0.1.0', node, ready: () => true, log });
    const sock = await server.listen(`unix://${join(dir, 'csi.sock')}`);
    client = new CsiClient(sock);
  });
  after(async () => {
    client.close();
    await server.close(1000);
    await queue.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    source.calls = [];
    source.fail = undefined;
    source.delayMs = 0;
  });

  const publish = (pod: string, over: Record<string, unknown> = {}) =>
    client.node('NodePublishVolume', {
      volume_id: `vol-${pod}`,
      target_path: join(root, pod, 'volumes/kubernetes.io~csi/secrets/mount'),
      volume_capability: mountCap,
      readonly: true,
      volume_context: ctx(pod),
      ...over,
    });
  const codeOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'OK';
    } catch (err) {
      return grpcCodeName(err);
    }
  };

  it('identity: name, no plugin capabilities, probe ready', async () => {
    const info = await client.identity<{ name: string; vendor_version: string }>('GetPluginInfo');
    assert.equal(info.name, AUD);
    assert.equal(info.vendor_version, '0.1.0');
    assert.deepEqual(await client.identity('GetPluginCapabilities'), { capabilities: [] });
    assert.deepEqual(await client.identity('Probe'), { ready: { value: true } });
  });

  it('node: capabilities and info', async () => {
    const caps = await client.node<{ capabilities: { rpc: { type: string } }[] }>('NodeGetCapabilities');
    assert.deepEqual(
      caps.capabilities.map((c) => c.rpc.type),
      ['VOLUME_MOUNT_GROUP'],
    );
    const info = await client.node<{ node_id: string; max_volumes_per_node: string }>('NodeGetInfo');
    assert.equal(info.node_id, 'node-1');
  });

  it('validation failures are INVALID_ARGUMENT and never reach the publisher', async () => {
    const bad: Record<string, unknown>[] = [
      { volume_id: '' },
      { target_path: '' },
      { volume_capability: null },
      { volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } },
      { volume_capability: { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } } },
      { volume_capability: { mount: { volume_mount_group: 'wheel' } } },
      { target_path: 'relative/path' },
      { target_path: '/etc/outside-the-root' },
      { target_path: `${root}/../escape` },
      { volume_context: {} },
    ];
    for (const over of bad) {
      assert.equal(await codeOf(publish('p', over)), 'INVALID_ARGUMENT', JSON.stringify(over));
    }
    assert.equal(await codeOf(client.node('NodeUnpublishVolume', {})), 'INVALID_ARGUMENT');
    assert.equal(await codeOf(client.node('NodeUnpublishVolume', { volume_id: 'v' })), 'INVALID_ARGUMENT');
    assert.equal(source.calls.length, 0);
  });

  it('unimplemented RPCs', async () => {
    for (const path of [
      '/csi.v1.Node/NodeStageVolume',
      '/csi.v1.Node/NodeUnstageVolume',
      '/csi.v1.Node/NodeGetVolumeStats',
      '/csi.v1.Node/NodeExpandVolume',
      '/csi.v1.Controller/CreateVolume',
      '/csi.v1.Controller/ControllerPublishVolume',
    ]) {
      assert.equal(await codeOf(client.raw(path)), 'UNIMPLEMENTED', path);
    }
  });

  it('publishes, then an identical republish does not fetch again; a change or the interval does', async () => {
    await publish('a');
    const target = join(root, 'a', 'volumes/kubernetes.io~csi/secrets/mount');
    assert.equal(await readFile(join(target, 'static_secret_0_password'), 'utf8'), 'pw-a-1');
    await publish('a');
    assert.equal(source.calls.length, 1, 'same arguments: no re-fetch');
    source.generation = 2; // CSISecrets edited
    await publish('a');
    assert.equal(source.calls.length, 2);
    assert.equal(await readFile(join(target, 'static_secret_0_password'), 'utf8'), 'pw-a-2');
    now += 61_000; // refresh interval passed
    await publish('a');
    assert.equal(source.calls.length, 3);
  });

  it('a different volume at a published target is ALREADY_EXISTS', async () => {
    await publish('b');
    assert.equal(await codeOf(publish('b', { volume_id: 'vol-other' })), 'ALREADY_EXISTS');
  });

  it('passes the mount group through and maps publisher errors to their codes', async () => {
    await publish('c', { volume_capability: { mount: { volume_mount_group: '2000' } } });
    assert.equal(source.calls.at(-1)?.mountGroup, 2000);
    source.fail = new CsiError('PERMISSION_DENIED', 'not authorized for secret sync: x');
    assert.equal(await codeOf(publish('d')), 'PERMISSION_DENIED');
    source.fail = new CsiError('INTERNAL', 'csisecrets team-a/db not found');
    assert.equal(await codeOf(publish('d')), 'INTERNAL');
    await assert.rejects(lstat(join(root, 'd', 'volumes/kubernetes.io~csi/secrets/mount')), {
      code: 'ENOENT',
    });
  });

  it('serialises calls for one target, runs different targets concurrently', async () => {
    source.delayMs = 50;
    source.maxInFlight = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, (_, i) => publish(`many-${i}`)));
    const parallel = performance.now() - t0;
    assert.ok(source.maxInFlight > 1, 'different targets overlap');
    assert.ok(parallel < 20 * 50, `took ${parallel} ms`);
    source.maxInFlight = 0;
    source.generation++;
    await Promise.all(Array.from({ length: 5 }, () => publish('same')));
    assert.equal(source.maxInFlight, 1, 'one target never has two fetches in flight');
    assert.equal(
      source.calls.filter((c) => c.pod.name === 'same').length,
      1,
      'the others found it published',
    );
  });

  it('unpublish removes files and the target; it is idempotent', async () => {
    await publish('e');
    const target = join(root, 'e', 'volumes/kubernetes.io~csi/secrets/mount');
    await client.node('NodeUnpublishVolume', { volume_id: 'vol-e', target_path: target });
    await assert.rejects(lstat(target), { code: 'ENOENT' });
    await client.node('NodeUnpublishVolume', { volume_id: 'vol-e', target_path: target });
    // Published again afterwards: fetched anew (no stale bookkeeping).
    const before = source.calls.length;
    await publish('e');
    assert.equal(source.calls.length, before + 1);
  });
});

describe('CSI node service bounds', () => {
  let dir: string;
  const queue = runningTasks();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-bounds-'));
  });
  after(async () => {
    await queue.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const node = (maxVolumes: number) =>
    new NodeService({
      nodeId: 'node-1',
      audience: AUD,
      mounter: new DirMounter(),
      publisher: new FakeSource(),
      targetRoot: join(dir, 'pods'),
      stagingDir: join(dir, 'staging'),
      refreshIntervalMs: 60_000,
      maxVolumes,
      log,
      tasks: queue.tasks,
    });
  const req = (pod: string, readonly = true): NodePublishVolumeRequest => ({
    volume_id: `vol-${pod}`,
    target_path: join(dir, 'pods', pod, 'mount'),
    volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
    readonly,
    volume_context: ctx(pod),
  });
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'OK',
      (err: unknown) => (err instanceof CsiError ? err.code : String(err)),
    );

  it('refuses a volume beyond maxVolumes with RESOURCE_EXHAUSTED; a republish and an unpublish still work', async () => {
    const n = node(2);
    await n.publish(req('a'));
    await n.publish(req('b'));
    assert.equal(await code(n.publish(req('c'))), 'RESOURCE_EXHAUSTED');
    assert.equal(await code(n.publish(req('a'))), 'OK', 'a republish is not a new volume');
    await n.unpublish({ volume_id: 'vol-b', target_path: req('b').target_path });
    assert.equal(await code(n.publish(req('c'))), 'OK');
  });

  it('refuses a read-write publish, naming the fix', async () => {
    await assert.rejects(node(1).publish(req('rw', false)), (e: unknown) => {
      assert.ok(e instanceof CsiError);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, /readOnly: true/);
      return true;
    });
  });

  it('writes only below the staging directory; the target is a view of it', async () => {
    const n = node(4);
    await n.publish(req('v'));
    const target = req('v').target_path;
    assert.ok((await lstat(target)).isSymbolicLink(), 'the plain-directory stand-in links to staging');
    assert.match(await readFile(join(target, 'static_secret_0_password'), 'utf8'), /^pw-/);
    await n.unpublish({ volume_id: 'vol-v', target_path: target });
    await assert.rejects(lstat(target), { code: 'ENOENT' });
  });
});
