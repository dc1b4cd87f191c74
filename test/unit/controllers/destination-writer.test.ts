// DestinationWriter: when a destination write may skip the read (the watch shows the Secret as Ferry
// last left it and the desired Secret is the same), and when it must not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DestinationWriter } from '../../../src/controllers/shared/destination-writer.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Secrets } from '../../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../../src/k8s/types.ts';
import { FakeKube } from './harness.ts';

const owner = (uid: string) => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultStaticSecret',
  metadata: { name: 's', namespace: 'app', uid },
});
const dest = { name: 'out', create: true, overwrite: false };
const data = { password: Buffer.from('one').toString('base64') };

/** A writer whose watch shows `seen` (what the metadata store currently holds). */
function setup() {
  const kube = new FakeKube();
  let seen: KubeObject | undefined;
  const writer = new DestinationWriter(kube as unknown as KubeClient);
  writer.observe({ get: () => seen });
  const catchUp = () => {
    seen = kube.objects.get('secrets/app/out');
  };
  return { kube, writer, catchUp, reads: () => kube.reads.length };
}

describe('DestinationWriter', () => {
  it("knows Ferry's write by the version it wrote, and by the version it replaces while in flight", async () => {
    const { kube, writer } = setup();
    const rv = () => kube.objects.get('secrets/app/out')?.metadata.resourceVersion as string;
    assert.equal(writer.isOwn('app', 'out', 'rv-9', 'rv-8'), false);
    await writer.write(owner('u1'), dest, data);
    const created = rv();
    assert.equal(writer.isOwn('app', 'out', created), true);
    const replace = kube.replace.bind(kube);
    let inFlight: boolean | undefined;
    kube.replace = async (rt, obj) => {
      // The watch event arrived before the write's response.
      inFlight = writer.isOwn('app', 'out', 'rv-next', created);
      return replace(rt, obj);
    };
    await writer.write(owner('u1'), dest, { password: Buffer.from('two').toString('base64') });
    assert.equal(inFlight, true);
    const updated = rv();
    assert.equal(writer.isOwn('app', 'out', updated, created), true);
    // Someone else's edit after Ferry's write; another Secret.
    assert.equal(writer.isOwn('app', 'out', 'rv-99', updated), false);
    assert.equal(writer.isOwn('app', 'other', updated, created), false);
  });

  it('reads while the watch has not caught up with its own write, then no more', async () => {
    const { writer, catchUp, reads } = setup();
    assert.equal((await writer.write(owner('u1'), dest, data)).outcome, 'created');
    assert.equal(reads(), 0, 'never seen in the watch: created without a read');
    // The watch lags: the create is refused (AlreadyExists), then the Secret is read.
    assert.equal((await writer.write(owner('u1'), dest, data)).outcome, 'unchanged', 'watch lags: read');
    assert.equal(reads(), 1);
    catchUp();
    assert.equal((await writer.write(owner('u1'), dest, data)).outcome, 'skipped');
    assert.equal(reads(), 1);
    assert.equal(writer.untouched(owner('u1'), 'out'), true);
  });

  it('reads when the desired Secret differs, for another owner, or when the caller read it', async () => {
    const { kube, writer, catchUp, reads } = setup();
    await writer.write(owner('u1'), dest, data);
    catchUp();
    await writer.write(owner('u1'), { ...dest, labels: { team: 'a' } }, data);
    assert.equal(reads(), 1, 'labels changed');
    catchUp();
    assert.equal(writer.untouched(owner('u2'), 'out'), false, 'another owner');
    await assert.rejects(writer.write(owner('u2'), dest, data), /not owned by this resource/);
    assert.equal(reads(), 2);
    const existing = kube.peek<Secret>(Secrets, 'out', 'app');
    const { outcome } = await writer.write(owner('u1'), { ...dest, labels: { team: 'a' } }, data, {
      read: { existing },
    });
    assert.equal(outcome, 'unchanged', 'a caller that read decides from what it read');
  });

  it("creates a Secret the watch has not shown without reading it; one that is not Ferry's is read and refused", async () => {
    const { kube, writer, reads } = setup();
    await kube.create(Secrets, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'out', namespace: 'app' },
      data: { mine: 'eA==' },
    });
    const writes = kube.writes.length;
    await assert.rejects(writer.write(owner('u1'), dest, data), /not owned by this resource/);
    assert.equal(reads(), 1, 'the refused create is followed by a read');
    assert.equal(kube.writes.length, writes, 'nothing written');
    assert.deepEqual(kube.peek<Secret>(Secrets, 'out', 'app')?.data, { mine: 'eA==' });
    // Without the watch (no store to ask), every write reads first.
    const bare = new DestinationWriter(kube as unknown as KubeClient);
    await assert.rejects(bare.write(owner('u1'), dest, data), /not owned by this resource/);
    assert.equal(reads(), 2);
  });
});
