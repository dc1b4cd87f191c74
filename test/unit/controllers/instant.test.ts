// Which VaultStaticSecrets a KV write reported by the audit stream wakes: same mount and path, and the
// same Vault namespace as the resource last read from (any, until it has been read).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VaultStaticSecret } from '../../../src/api/v1beta1/vaultstaticsecret.ts';
import {
  changedBy,
  INSTANT_INDEX,
  instantIndex,
  ReadNamespaces,
} from '../../../src/controllers/vaultstaticsecret/instant.ts';

const vss = (name: string, instantUpdates = true): VaultStaticSecret =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'VaultStaticSecret',
    metadata: { name, namespace: 'app' },
    spec: { mount: 'kvv2', path: 'x', type: 'kv-v2', syncConfig: { instantUpdates }, destination: { name } },
  }) as VaultStaticSecret;

describe('instant updates: the resources a change wakes', () => {
  const all = [vss('root'), vss('ns1'), vss('child'), vss('unread'), vss('polling', false)];
  const store = {
    byIndex: (index: string, value: string) =>
      index === INSTANT_INDEX ? all.filter((o) => instantIndex(o).includes(value)) : [],
  };
  const namespaces = new ReadNamespaces();
  namespaces.record({ namespace: 'app', name: 'root' }, undefined);
  namespaces.record({ namespace: 'app', name: 'ns1' }, 'ns1/');
  namespaces.record({ namespace: 'app', name: 'child' }, '/ns1/child');
  const woken = (namespace: string, keys = ['kvv2/data/x', 'kvv2/x']) =>
    changedBy(store, namespaces, { namespace, keys }).map((o) => o.metadata.name);

  it('wakes only the resources that read that namespace, and those not read yet', () => {
    assert.deepEqual(woken(''), ['root', 'unread']);
    assert.deepEqual(woken('ns1'), ['ns1', 'unread']);
    assert.deepEqual(woken('ns1/child'), ['child', 'unread']);
    assert.deepEqual(woken('ns2'), ['unread']);
    assert.deepEqual(woken('', ['kvv2/data/y', 'kvv2/y']), []);
  });

  it('forgets a deleted resource', () => {
    namespaces.forget({ namespace: 'app', name: 'ns1' });
    assert.deepEqual(woken(''), ['root', 'ns1', 'unread']);
  });
});
