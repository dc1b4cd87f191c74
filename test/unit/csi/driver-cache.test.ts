// The CSI driver's Vault session cache is shared by every namespace whose pods mount CSISecrets on
// the node: like the operator's, each namespace holds at most its quota (--client-cache-namespace-
// quota, default a tenth of --client-cache-size), so a hostile namespace's pods cannot evict the
// sessions of another namespace's pods. The driver is built as the CLI builds it, never started.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { CsiDriver, type CsiDriverConfig } from '../../../src/csi/driver.ts';
import { DirMounter } from '../../../src/csi/mounter.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import type { CacheKeyInput } from '../../../src/vault/cache.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import { VaultSession } from '../../../src/vault/session.ts';
import { authBody } from '../vault/helpers.ts';

const vault = new VaultClient({ address: 'http://127.0.0.1:9' });
after(() => vault.close());
// No request leaves the process: the login is answered in memory, with a token that never renews.
const login = () =>
  VaultSession.login({
    client: vault,
    auth: { method: 'kubernetes', mount: 'kubernetes', login: async () => authBody('t').auth },
  });
const key = (ns: string, i: number): CacheKeyInput => ({
  method: 'kubernetes',
  authUID: `auth-${ns}`,
  authGeneration: 1,
  connectionUID: 'conn',
  connectionGeneration: 1,
  providerUID: `sa-${ns}-${i}`,
});

function driver(over: Partial<CsiDriverConfig>): CsiDriver {
  return new CsiDriver({
    // Never called: the driver is not started and the cache logs in through `login`.
    client: {} as KubeClient,
    logger: pino({ level: 'silent' }),
    driverName: 'csi.vso.hashicorp.com',
    nodeId: 'n1',
    operatorNamespace: 'ferry',
    mounter: new DirMounter(),
    healthAddress: null,
    events: { warning: async () => {} },
    ...over,
  });
}

describe("the CSI driver's client cache", () => {
  it("a hostile namespace's sessions never evict another namespace's (default quota: a tenth)", async () => {
    const cache = driver({ clientCacheSize: 20 }).vaultClients;
    const victims = await Promise.all(
      [0, 1].map((i) => cache.get(key('team-b', i), login, { namespace: 'team-b' })),
    );
    for (let i = 0; i < 200; i++) await cache.get(key('hostile', i), login, { namespace: 'hostile' });
    assert.equal(cache.held('hostile'), 2, 'a tenth of 20');
    assert.deepEqual(
      victims.map((s) => s.closed),
      [false, false],
    );
    assert.equal(cache.held('team-b'), 2);
    await cache.clear({ revoke: false });
  });

  it('takes the quota from --client-cache-namespace-quota', async () => {
    const cache = driver({ clientCacheSize: 20, clientCacheNamespaceQuota: 5 }).vaultClients;
    const victim = await cache.get(key('team-b', 0), login, { namespace: 'team-b' });
    for (let i = 0; i < 50; i++) await cache.get(key('hostile', i), login, { namespace: 'hostile' });
    assert.equal(cache.held('hostile'), 5);
    assert.equal(victim.closed, false);
    await cache.clear({ revoke: false });
  });
});
