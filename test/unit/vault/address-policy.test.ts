// The operator's Vault address allowlist: each pattern form, the tricks a tenant would try against
// it, and the VaultConnection status a refused address ends in.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { VaultConnections } from '../../../src/api/resources.ts';
import type { VaultConnection } from '../../../src/api/v1beta1/vaultconnection.ts';
import { vaultConnectionReconciler } from '../../../src/controllers/vaultconnection/reconcile.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { AddressAllowlist, setVaultAddressAllowlist } from '../../../src/vault/address-policy.ts';
import { harness } from '../controllers/harness.ts';

describe('AddressAllowlist', () => {
  const cases: [string[], string, boolean][] = [
    [[], 'http://10.0.0.1:8200', true],
    [['https://vault.example.com:8200'], 'https://vault.example.com:8200', true],
    [['https://vault.example.com:8200'], 'https://vault.example.com:8200/', true],
    [['https://vault.example.com'], 'https://vault.example.com:443/', true],
    [['https://vault.example.com'], 'https://vault.example.com.evil.test', false],
    [['https://vault.example.com'], 'https://vault.example.com@evil.test', false],
    [['https://vault.example.com'], 'http://vault.example.com', false],
    [['https://vault.example.com'], 'https://vault.example.com:8200', false],
    [['https://proxy.example.com/vault'], 'https://proxy.example.com/vault/team-a', true],
    [['https://proxy.example.com/vault'], 'https://proxy.example.com/vault-other', false],
    [['https://proxy.example.com/vault'], 'https://proxy.example.com/', false],
    [['10.0.0.0/8'], 'http://10.1.2.3:8200', true],
    [['10.0.0.0/8'], 'http://11.1.2.3:8200', false],
    // WHATWG URL parsing normalises numeric hosts, as the client will when it connects.
    [['10.0.0.0/8'], 'http://167772161:8200', true],
    [['127.0.0.0/8'], 'http://0x7f.1:8200', true],
    [['10.0.0.0/8'], 'http://vault.internal:8200', false],
    [['fd00::/8'], 'http://[fd00::1]:8200', true],
    [['fd00::/8'], 'http://[fe80::1]:8200', false],
    [['vault.example.com'], 'https://VAULT.example.com:8200', true],
    [['vault.example.com'], 'https://a.vault.example.com', false],
    [['*.example.com'], 'https://vault.team-a.example.com', true],
    [['*.example.com'], 'https://example.com', false],
    [['*.example.com'], 'https://evilexample.com', false],
    [['vault.example.com:8200'], 'https://vault.example.com:8200', true],
    [['vault.example.com:8200'], 'https://vault.example.com:8201', false],
    [['vault.example.com:443'], 'https://vault.example.com', true],
    [['vault.example.com'], 'not a url', false],
  ];
  for (const [patterns, address, want] of cases) {
    it(`${JSON.stringify(patterns)} ${want ? 'allows' : 'refuses'} ${address}`, () => {
      assert.equal(new AddressAllowlist(patterns).allows(address), want);
    });
  }

  it('refuses a pattern of none of the three forms at start-up', () => {
    for (const p of ['ftp://vault', '10.0.0.0/33', 'not/a/cidr', 'spaces in host', 'https://v?x=1']) {
      assert.throws(
        () => new AddressAllowlist([p]),
        (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG && e.message.includes(p),
      );
    }
  });
});

describe('VaultConnection with an address outside the allowlist', () => {
  after(() => setVaultAddressAllowlist([]));

  it('is reported in status.conditions with a stable reason and a Warning Event, never a crash', async () => {
    setVaultAddressAllowlist(['https://vault.example.com']);
    const h = harness<VaultConnection>(VaultConnections, (h) => {
      (h.ctx.informers as unknown as Record<string, unknown>).connections = { store: h.store };
      return vaultConnectionReconciler(h.ctx);
    });
    h.apply({
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'scan', namespace: 'app', uid: 'u1', generation: 1 },
      spec: { address: 'http://10.0.0.1:22', skipTLSVerify: false },
    });
    assert.deepEqual(await h.run('scan'), { awaitChange: true });
    const conn = h.store.get('app', 'scan');
    assert.equal(conn?.status?.valid, false);
    const cond = conn?.status?.conditions?.find((c) => c.type === 'VaultClient');
    assert.equal(cond?.status, 'False');
    assert.equal(cond?.reason, 'VaultAddressNotAllowed');
    assert.match(cond?.message ?? '', /^Vault address http:\/\/10\.0\.0\.1:22 is not in the operator's/);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.reason]),
      [['Warning', 'VaultAddressNotAllowed']],
    );
  });
});
