import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { VaultDynamicSecretStatus } from '../../../src/api/v1beta1/vaultdynamicsecret.ts';
import {
  decideSync,
  macData,
  renewalDueAt,
  type SyncInput,
} from '../../../src/controllers/vaultdynamicsecret/plan.ts';
import { requestMethod, requestPath } from '../../../src/vault/dynamic.ts';

const T0 = 1_700_000_000; // seconds

function leased(over: Partial<VaultDynamicSecretStatus> = {}): VaultDynamicSecretStatus {
  return {
    lastGeneration: 1,
    lastRenewalTime: T0,
    secretLease: { id: 'db/creds/app/abc', duration: 600, renewable: true, requestID: 'r' },
    secretMAC: 'mac',
    vaultClientMeta: { cacheKey: 'kubernetes-aaa', id: 'client-1' },
    ...over,
  };
}

/** Lease-less credentials (no lease id, duration 0). */
const leaseless = (over: Partial<VaultDynamicSecretStatus> = {}): VaultDynamicSecretStatus =>
  leased({ secretLease: { id: '', duration: 0, renewable: false, requestID: '' }, ...over });

/** Static credentials: lease-less, rotated by Vault 10 s ago with 50 s left. */
const staticCreds = (): VaultDynamicSecretStatus =>
  leaseless({ staticCredsMetaData: { lastVaultRotation: T0 - 10, rotationPeriod: 60, ttl: 50 } });

function input(over: Partial<SyncInput> = {}): SyncInput {
  return {
    generation: 1,
    status: leased(),
    destinationExists: true,
    destinationDrifted: false,
    allowStaticCreds: false,
    nowMs: T0 * 1000 + 1_000,
    ...over,
  };
}

describe('VaultDynamicSecret sync decision', () => {
  const due = renewalDueAt(leased(), undefined);

  const table: [string, Partial<SyncInput>, ReturnType<typeof decideSync>['action'], string?][] = [
    ['no status', { status: undefined }, 'sync', 'InitialSync'],
    ['lastGeneration 0', { status: leased({ lastGeneration: 0 }) }, 'sync', 'InitialSync'],
    ['spec changed', { generation: 2 }, 'sync', 'ResourceUpdated'],
    ['destination deleted', { destinationExists: false }, 'sync', 'InexistentDestination'],
    ['destination edited', { destinationDrifted: true }, 'sync', 'SecretDataDrift'],
    ['before the horizon', {}, 'wait'],
    [
      'token rotated (new client id) before the horizon: no new credentials',
      { status: leased({ vaultClientMeta: { cacheKey: 'kubernetes-aaa', id: 'client-2' } }) },
      'wait',
    ],
    [
      'client config changed before the horizon: no new credentials',
      { status: leased({ vaultClientMeta: { cacheKey: 'kubernetes-bbb', id: 'client-9' } }) },
      'wait',
    ],
    ['at the horizon, renewable', { nowMs: due }, 'renew'],
    [
      'at the horizon, not renewable',
      {
        nowMs: due,
        status: leased({
          secretLease: { id: 'db/creds/app/abc', duration: 600, renewable: false, requestID: '' },
        }),
      },
      'sync',
      'LeaseNotRenewable',
    ],
    ['lease already expired', { nowMs: (T0 + 600) * 1000 }, 'sync', 'LeaseExpired'],
    ['lease-less without refreshAfter', { status: leaseless() }, 'idle'],
    [
      'lease-less with refreshAfter, not due',
      {
        status: leaseless(),
        refreshAfterMs: 60_000,
      },
      'wait',
    ],
    [
      'lease-less with refreshAfter, due',
      {
        status: leaseless(),
        refreshAfterMs: 60_000,
        nowMs: (T0 + 60) * 1000,
      },
      'poll',
    ],
    [
      'static creds drifted: read again, no new credentials',
      {
        allowStaticCreds: true,
        destinationDrifted: true,
        status: staticCreds(),
      },
      'poll',
    ],
    [
      'static creds before the rotation',
      {
        allowStaticCreds: true,
        status: staticCreds(),
      },
      'wait',
    ],
    [
      'static creds after the TTL ran out',
      {
        allowStaticCreds: true,
        nowMs: (T0 + 51) * 1000,
        status: staticCreds(),
      },
      'poll',
    ],
  ];
  for (const [name, over, action, reason] of table) {
    it(name, () => {
      const d = decideSync(input(over));
      assert.equal(d.action, action);
      if (reason) assert.equal((d as { reason?: string }).reason, reason);
    });
  }

  it('the order of reasons follows VSO: generation before destination', () => {
    const d = decideSync(input({ generation: 3, destinationExists: false }));
    assert.deepEqual(d, { action: 'sync', reason: 'ResourceUpdated' });
  });

  it('the horizon is the same on every recomputation (restart-safe) and before expiry', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e6 }),
        fc.integer({ min: 0, max: 90 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (duration, pct, id) => {
          const s = leased({ secretLease: { id, duration, renewable: true, requestID: '' } });
          const a = renewalDueAt(s, pct);
          assert.equal(a, renewalDueAt(s, pct));
          assert.ok(a >= T0 * 1000 && a <= (T0 + 0.9 * duration) * 1000 + 1e-3);
          // With the precise start known, the horizon moves by the sub-second offset only.
          const precise = renewalDueAt(s, pct, T0 * 1000 + 400);
          assert.ok(Math.abs(precise - a - 400) < 1e-3);
        },
      ),
    );
  });

  it('waiting never ends past the lease: before the horizon always wait, after it act', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 1e5 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (duration, f) => {
          const s = leased({ secretLease: { id: 'l', duration, renewable: true, requestID: '' } });
          const now = T0 * 1000 + f * duration * 1000;
          const d = decideSync(input({ status: s, nowMs: now }));
          if (d.action === 'wait') assert.ok(d.dueAt < (T0 + duration) * 1000);
          else assert.ok(d.action === 'renew' || (d.action === 'sync' && d.reason === 'LeaseExpired'));
        },
      ),
    );
  });
});

describe('VaultDynamicSecret request', () => {
  it('params force PUT, POST means PUT, GET otherwise', () => {
    assert.equal(requestMethod({}), 'GET');
    assert.equal(requestMethod({ requestHTTPMethod: 'GET' }), 'GET');
    assert.equal(requestMethod({ requestHTTPMethod: 'POST' }), 'PUT');
    assert.equal(requestMethod({ requestHTTPMethod: 'PUT' }), 'PUT');
    assert.equal(requestMethod({ requestHTTPMethod: 'GET', params: { ttl: '1h' } }), 'PUT');
    assert.equal(requestMethod({ params: {} }), 'GET');
  });

  it('joins mount and path', () => {
    assert.equal(requestPath('/db/', '/creds/app'), 'db/creds/app');
    assert.throws(() => requestPath('', 'x'));
  });

  it('static credentials leave rotation metadata and _raw out of the MAC', () => {
    const data = {
      username: 'u',
      password: 'p',
      ttl: '5',
      last_vault_rotation: 't',
      rotation_period: '5',
      rotation_schedule: '',
      _raw: 'r',
    };
    assert.deepEqual(macData(data, true), { username: 'u', password: 'p' });
    assert.deepEqual(macData(data, false), data);
  });
});
