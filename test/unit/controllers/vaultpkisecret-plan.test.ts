import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VaultPKISecretStatus } from '../../../src/api/v1beta1/vaultpkisecret.ts';
import { decideIssue, type IssueInput } from '../../../src/controllers/vaultpkisecret/plan.ts';
import type { RenewalWindow } from '../../../src/vault/pki.ts';

const issued: VaultPKISecretStatus = {
  serialNumber: '01',
  lastGeneration: 2,
  lastRotation: 1,
  valid: true,
  error: '',
  secretMAC: 'mac',
};
const window = (inWindow: boolean): RenewalWindow => ({
  horizonMs: 10_000,
  inWindow,
  rotationAtMs: 0,
  offsetClamped: false,
});
const steady: IssueInput = {
  status: issued,
  generation: 2,
  fingerprintChanged: false,
  destinationExists: true,
  drifted: async () => false,
  window: () => window(false),
};

describe('decideIssue', () => {
  it('checks in VSO order and stops at the first reason', async () => {
    const cases: [Partial<IssueInput>, string | undefined][] = [
      [{ status: undefined, fingerprintChanged: true }, 'InitialSync'],
      [{ fingerprintChanged: true, generation: 3 }, 'ForceSync'],
      [{ generation: 3, destinationExists: false }, 'ResourceUpdated'],
      [{ destinationExists: false, drifted: async () => true }, 'InexistentDestination'],
      [{ drifted: async () => true, window: () => window(true) }, 'SecretDataDrift'],
      [{ window: () => window(true) }, 'InRenewalWindow'],
      [{}, undefined],
    ];
    for (const [over, reason] of cases)
      assert.equal((await decideIssue({ ...steady, ...over })).reason, reason, JSON.stringify(over));
  });

  it('asks the probes only when their turn comes, and returns the window to wait for', async () => {
    let probed = 0;
    const probe = {
      drifted: async () => {
        probed++;
        return false;
      },
      window: () => {
        probed++;
        return window(false);
      },
    };
    await decideIssue({ ...steady, ...probe, generation: 3 });
    assert.equal(probed, 0);
    const idle = await decideIssue({ ...steady, ...probe });
    assert.equal(probed, 2);
    assert.equal(idle.window?.horizonMs, 10_000);
  });
});
