// syncDestination's rename pruning: a renamed destination's old Secret is deleted, and a first
// create (generation 1, so never renamed) costs no LIST.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Owner, syncDestination } from '../../../src/controllers/shared/destination.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Secrets } from '../../../src/k8s/resources.ts';
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
