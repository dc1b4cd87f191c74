// syncDestination's rename pruning: a renamed destination's old Secret is deleted, and a first
// create (generation 1, so never renamed) costs no LIST; Ferry's own annotations, whatever `create`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Owner, syncDestination } from '../../../src/controllers/shared/destination.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Secrets } from '../../../src/k8s/resources.ts';
import type { Secret } from '../../../src/k8s/types.ts';
import { FakeKube } from './harness.ts';

const owner = (generation?: number): Owner => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultStaticSecret',
  metadata: { name: 's', namespace: 'app', uid: 'u1', ...(generation !== undefined ? { generation } : {}) },
});
const data = { password: Buffer.from('one').toString('base64') };

function setup() {
  const kube = new FakeKube();
  let lists = 0;
  const list = kube.list.bind(kube);
  kube.list = (...args: Parameters<FakeKube['list']>) => {
    lists++;
    return list(...args);
  };
  return { kube, client: kube as unknown as KubeClient, lists: () => lists };
}

describe('syncDestination rename pruning', () => {
  it('lists nothing on the first create at generation 1', async () => {
    const { client, lists } = setup();
    assert.equal(
      (await syncDestination(client, owner(1), { name: 'out', create: true }, data, undefined)).outcome,
      'created',
    );
    assert.equal(lists(), 0);
  });

  for (const generation of [2, undefined]) {
    it(`deletes the Secret of the old name after a rename (generation ${generation})`, async () => {
      const { kube, client, lists } = setup();
      await syncDestination(client, owner(1), { name: 'old', create: true }, data, undefined);
      kube.put(Secrets, { metadata: { name: 'other', namespace: 'app' } });
      await syncDestination(client, owner(generation), { name: 'new', create: true }, data, undefined);
      assert.equal(lists(), 1);
      assert.equal(kube.peek(Secrets, 'old', 'app'), undefined, 'old name pruned');
      assert.ok(kube.peek(Secrets, 'new', 'app'));
      assert.ok(kube.peek(Secrets, 'other', 'app'), 'a Secret it does not own is kept');
    });
  }
});

describe("syncDestination: Ferry's own annotations", () => {
  const own = (v: string | undefined) => ({ annotations: { 'ferry.secrets.hashicorp.com/leases': v } });
  const annotations = (kube: FakeKube, name: string) =>
    kube.peek<Secret>(Secrets, name, 'app')?.metadata.annotations ?? {};

  it('create: true: set beside the spec annotations, removed with undefined', async () => {
    const { kube, client } = setup();
    const dest = { name: 'out', create: true, annotations: { team: 'a' } };
    await syncDestination(client, owner(1), dest, data, undefined, own('r1'));
    assert.deepEqual(annotations(kube, 'out'), { team: 'a', 'ferry.secrets.hashicorp.com/leases': 'r1' });
    const existing = kube.peek<Secret>(Secrets, 'out', 'app');
    assert.equal(
      (await syncDestination(client, owner(1), dest, data, existing, own('r1'))).outcome,
      'unchanged',
    );
    await syncDestination(client, owner(1), dest, data, existing, own(undefined));
    assert.deepEqual(annotations(kube, 'out'), { team: 'a' });
  });

  it("create: false: added to the Secret's own annotations, which are kept; unchanged when already there", async () => {
    const { kube, client } = setup();
    kube.put<Secret>(Secrets, {
      metadata: { name: 'theirs', namespace: 'app', annotations: { keep: 'me' } },
    });
    const dest = { name: 'theirs', create: false };
    const read = () => kube.peek<Secret>(Secrets, 'theirs', 'app');
    assert.equal((await syncDestination(client, owner(1), dest, data, read(), own('r1'))).outcome, 'updated');
    assert.deepEqual(annotations(kube, 'theirs'), { keep: 'me', 'ferry.secrets.hashicorp.com/leases': 'r1' });
    assert.equal(
      (await syncDestination(client, owner(1), dest, data, read(), own('r1'))).outcome,
      'unchanged',
    );
    assert.equal((await syncDestination(client, owner(1), dest, data, read(), own('r2'))).outcome, 'updated');
    await syncDestination(client, owner(1), dest, data, read(), own(undefined));
    assert.deepEqual(annotations(kube, 'theirs'), { keep: 'me' });
    assert.equal((await syncDestination(client, owner(1), dest, data, read())).outcome, 'unchanged');
  });
});
