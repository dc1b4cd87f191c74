import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  csiLoginIdentity,
  MAX_POD_SERVICE_ACCOUNTS,
  podLoginFix,
} from '../../../src/command/csi-identity.ts';

const sas = [
  { namespace: 'demo', name: 'web' },
  { namespace: 'demo', name: 'default' },
  { namespace: 'other', name: 'web' },
  { namespace: 'team-a', name: 'web' },
];
const base = {
  namespace: 'demo',
  spec: { accessControl: { serviceAccountPattern: 'web' } },
  tokenRequestLogin: false,
  podLogin: true,
  audiences: undefined,
  serviceAccounts: sas,
};

describe('csiLoginIdentity: who the CSI driver logs in to Vault as', () => {
  it("the pod's ServiceAccount in the CSISecrets' namespace, with the API server's default audience", () => {
    const id = csiLoginIdentity(base);
    assert.equal(id.kind, 'pod');
    assert.ok(id.kind === 'pod');
    assert.deepEqual(id.serviceAccounts, [{ namespace: 'demo', name: 'web' }]);
    assert.equal(id.audience, '');
    assert.match(id.why, /pod's ServiceAccount .* API server’s default audience/);
  });

  it("the VaultAuth's first audience; namespace patterns widen, anchored", () => {
    const id = csiLoginIdentity({
      ...base,
      audiences: ['vault', 'other'],
      spec: { accessControl: { serviceAccountPattern: 'we', namespacePatterns: ['team-.*', 'demo'] } },
    });
    assert.equal(id.kind, 'none'); // `we` matches no whole name
    const id2 = csiLoginIdentity({
      ...base,
      audiences: ['vault', 'other'],
      spec: { accessControl: { serviceAccountPattern: 'w.*', namespacePatterns: ['team-.*', 'demo'] } },
    });
    assert.ok(id2.kind === 'pod');
    assert.equal(id2.audience, 'vault');
    assert.deepEqual(id2.serviceAccounts, [
      { namespace: 'demo', name: 'web' },
      { namespace: 'team-a', name: 'web' },
    ]);
  });

  it('a pattern matching many ServiceAccounts is bounded and says so', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ namespace: 'demo', name: `sa-${i}` }));
    const id = csiLoginIdentity({
      ...base,
      spec: { accessControl: { serviceAccountPattern: 'sa-.*' } },
      serviceAccounts: many,
    });
    assert.ok(id.kind === 'pod');
    assert.equal(id.serviceAccounts.length, MAX_POD_SERVICE_ACCOUNTS);
    assert.match(id.why, /7 more matching ServiceAccount\(s\) not tried/);
  });

  it('no matching ServiceAccount: the check explains it needs a concrete one', () => {
    const id = csiLoginIdentity({ ...base, spec: { accessControl: { serviceAccountPattern: 'api-.*' } } });
    assert.equal(id.kind, 'none');
    assert.match(id.why, /no ServiceAccount in namespace demo matches .*"api-\.\*".*needs a concrete one/);
  });

  it("the first of the VaultAuth's audiences the CSIDriver requests a pod token for, as the driver picks it", () => {
    const driver = { name: 'csi.vso.hashicorp.com', audiences: ['csi.vso.hashicorp.com', '', 'vault'] };
    const id = csiLoginIdentity({ ...base, audiences: ['sts', 'vault'], driver });
    assert.ok(id.kind === 'pod');
    assert.equal(id.audience, 'vault');
    assert.ok(
      csiLoginIdentity({ ...base, driver }).kind === 'pod',
      'no audiences: the API server’s, requested',
    );
  });

  it('an audience the CSIDriver does not request: no login can work, and the fix names the chart value', () => {
    const driver = { name: 'csi.ferry.example', audiences: ['csi.ferry.example', 'vault'] };
    for (const audiences of [['sts'], undefined]) {
      const id = csiLoginIdentity({ ...base, audiences, driver });
      assert.ok(id.kind === 'none');
      assert.match(id.why, /CSIDriver csi\.ferry\.example requests no pod token for audience/);
      assert.match(id.fix, /add "(sts)?" to the chart value csi\.driver\.tokenAudiences/);
    }
    // Without a CSIDriver to read, the VaultAuth's first audience, as before.
    const unknown = csiLoginIdentity({ ...base, audiences: ['sts'] });
    assert.ok(unknown.kind === 'pod' && unknown.audience === 'sts');
  });

  it("--token-request-login, or a method without a ServiceAccount token: the VaultAuth's identity", () => {
    const tr = csiLoginIdentity({ ...base, tokenRequestLogin: true });
    assert.equal(tr.kind, 'vaultAuth');
    assert.match(tr.why, /--token-request-login/);
    const approle = csiLoginIdentity({ ...base, podLogin: false });
    assert.equal(approle.kind, 'vaultAuth');
    assert.match(approle.why, /VaultAuth's own credentials/);
  });

  it('the fix names the role, the ServiceAccount, the audience and the opt-in', () => {
    const fix = podLoginFix('demo', { namespace: 'demo', name: 'web' }, 'vault');
    assert.match(fix, /role demo must accept ServiceAccount demo\/web/);
    assert.match(fix, /bound_service_account_names/);
    assert.match(fix, /audience to "vault"/);
    assert.match(fix, /csi.driver.tokenRequestLogin=true/);
  });
});
