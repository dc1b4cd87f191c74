import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  classify,
  classifyFinding,
  DEFAULT_CLEANUP_LIMITS,
  DESTINATION_POLL_MS,
  errorFor,
  findingAction,
  givesUp,
  reportFailure,
  secretKindErrorPolicy,
} from '../../../src/controllers/outcome.ts';
import { destinationMissing } from '../../../src/controllers/shared/destination.ts';
import { CODES, FerryError, TerminalError } from '../../../src/errors.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import type { ReconcileContext } from '../../../src/runtime/controller.ts';

const noAuth = new FerryError(CODES.INVALID_REF, 'VaultAuth a/b not found');
const vaultDown = new Error('connect ECONNREFUSED');

describe('classify', () => {
  it('polls for a missing create:false destination in every phase', () => {
    for (const phase of ['spec', 'destination', 'vault'] as const)
      assert.deepEqual(classify(destinationMissing('ns', 'd'), phase), {
        reason: 'InexistentDestination',
        requeueAfterMs: DESTINATION_POLL_MS,
      });
  });

  it('stops on a TerminalError and on invalid configuration read from the spec', () => {
    assert.deepEqual(classify(new TerminalError('spec is missing'), 'access'), {
      reason: 'InvalidConfiguration',
      terminal: true,
    });
    const invalid = new FerryError(CODES.INVALID_CONFIG, 'bad refreshAfter');
    assert.deepEqual(classify(invalid, 'spec'), { reason: 'InvalidConfiguration', terminal: true });
    assert.deepEqual(classify(invalid, 'access'), { reason: 'VaultClientConfigError', retry: true });
    // Shaping the Vault request from the spec (e.g. an empty mount) is the spec's fault too.
    assert.deepEqual(classify(invalid, 'vault'), { reason: 'InvalidConfiguration', terminal: true });
  });

  it('names the phase in the reason and retries with backoff', () => {
    assert.deepEqual(classify(vaultDown, 'vault'), { reason: 'VaultClientError', retry: true });
    assert.deepEqual(classify(vaultDown, 'renew'), { reason: 'SecretLeaseRenewalError', retry: true });
    assert.deepEqual(classify(new FerryError(CODES.SECRET_DATA, 'x'), 'vault'), {
      reason: 'SecretDataBuilderError',
      retry: true,
    });
  });

  it('gives a cleanup up sooner when the Vault session cannot be built, and at once for a gone Secret', () => {
    assert.deepEqual(classify(vaultDown, 'revokeLease'), {
      reason: 'SecretLeaseRevoke',
      giveUpAfterMs: DEFAULT_CLEANUP_LIMITS.giveUpMs,
    });
    const notAllowed = new FerryError(CODES.NAMESPACE_NOT_ALLOWED, 'VaultAuth a/b does not allow c');
    assert.deepEqual(classify(notAllowed, 'revokeCertificate'), {
      reason: 'CertificateRevocationError',
      giveUpAfterMs: DEFAULT_CLEANUP_LIMITS.giveUpNoAuthMs,
    });
    const gone = new K8sApiError(404, 'NotFound', 'gone');
    assert.deepEqual(classify(gone, 'clearDestination'), {
      reason: 'CertificateRevocationError',
      giveUpAfterMs: 0,
    });
  });
});

describe('a namespace being deleted', () => {
  const refused = new K8sApiError(403, 'Forbidden', 'being terminated', {
    causes: [{ reason: 'NamespaceTerminating' }],
  });
  // What a destination write throws after redactError: the code alone.
  const redacted = new FerryError(CODES.K8S_NAMESPACE_TERMINATING, 'being terminated');

  it('stops a sync (the object goes with its namespace) and keeps the code for the controller loop', () => {
    for (const err of [refused, redacted]) {
      const outcome = classify(err, 'destination');
      assert.deepEqual(outcome, { reason: 'SecretSyncError', terminal: true, quiet: true });
      const thrown = errorFor(err, outcome);
      assert.ok(thrown instanceof TerminalError);
      assert.equal(thrown.code, CODES.K8S_NAMESPACE_TERMINATING);
      assert.equal(thrown.expected, true, 'not an error for the controller loop');
    }
  });

  it('a VaultAuth deleted before the object: quiet in a terminating namespace or a cleanup, an error otherwise', () => {
    assert.deepEqual(classify(noAuth, 'access'), { reason: 'VaultClientConfigError', retry: true });
    const quiet = classify(noAuth, 'access', DEFAULT_CLEANUP_LIMITS, { namespaceTerminating: true });
    assert.deepEqual(quiet, { reason: 'VaultClientConfigError', terminal: true, quiet: true });
    assert.equal((errorFor(noAuth, quiet) as TerminalError).expected, true);
    // Its token was revoked with it, and the leases with the token: nothing is left to revoke.
    assert.deepEqual(classify(noAuth, 'revokeLease'), {
      reason: 'SecretLeaseRevoke',
      giveUpAfterMs: 0,
      quiet: true,
    });
    // A certificate is not revoked with the token: giving up on it is said.
    assert.equal(classify(noAuth, 'revokeCertificate').quiet, undefined);
    // Only a missing reference: Vault being down while the namespace goes is still reported.
    assert.deepEqual(classify(vaultDown, 'vault', DEFAULT_CLEANUP_LIMITS, { namespaceTerminating: true }), {
      reason: 'VaultClientError',
      retry: true,
    });
  });

  it('reportFailure: the Warning Event, unless the namespace refuses it as terminating', async () => {
    const obj = { apiVersion: 'v1', kind: 'K', metadata: { name: 'x', namespace: 'ns' } };
    const recorder = (refuses: boolean, known = false) => {
      let terminating = known;
      const sent: string[] = [];
      return {
        sent,
        refusedAsTerminating: () => terminating,
        warning: async (_o: unknown, reason: string) => {
          if (refuses) terminating = true;
          else sent.push(reason);
        },
      };
    };
    const live = recorder(false);
    assert.deepEqual(await reportFailure(live, obj, 'access', noAuth), {
      reason: 'VaultClientConfigError',
      retry: true,
    });
    assert.deepEqual(live.sent, ['VaultClientConfigError']);
    // The first failure learns it from the refused Event, later ones do not try.
    for (const r of [recorder(true), recorder(true, true)]) {
      assert.equal((await reportFailure(r, obj, 'access', noAuth)).quiet, true);
      assert.deepEqual(r.sent, []);
    }
  });

  it('releases a clearing cleanup at once, so the namespace is never held up', () => {
    assert.deepEqual(classify(redacted, 'clearDestination'), {
      reason: 'CertificateRevocationError',
      giveUpAfterMs: 0,
    });
  });
});

describe('givesUp', () => {
  const deleted = '2026-01-01T00:00:00Z';
  const at = Date.parse(deleted);
  it('holds a failing cleanup until its limit has passed since deletion', () => {
    const o = classify(vaultDown, 'revokeLease', { giveUpMs: 60_000, giveUpNoAuthMs: 1_000 });
    assert.equal(givesUp(o, deleted, at + 59_999), false);
    assert.equal(givesUp(o, deleted, at + 60_000), true);
    assert.equal(givesUp(classify(vaultDown, 'vault'), deleted, at + 1e9), false);
  });
});

describe('errorFor and the errorPolicy', () => {
  it('turns terminal outcomes into a TerminalError and keeps others', () => {
    const invalid = new FerryError(CODES.INVALID_CONFIG, 'bad');
    const thrown = errorFor(invalid, classify(invalid, 'spec'));
    assert.ok(thrown instanceof TerminalError);
    assert.equal(errorFor(vaultDown, classify(vaultDown, 'vault')), vaultDown);
  });

  it('polls (jittered down) for a missing destination, else leaves the backoff to the controller', () => {
    const policy = secretKindErrorPolicy(() => 0);
    const ctx = {} as ReconcileContext;
    const action = policy(destinationMissing('ns', 'd'), ctx);
    assert.ok(action && 'requeueAfterMs' in action && action.requeueAfterMs <= DESTINATION_POLL_MS);
    assert.equal(policy(vaultDown, ctx), undefined);
  });
});

describe('classifyFinding (the status-only kinds)', () => {
  it('waits for a change on spec and reference problems, re-checks an unreachable Vault', () => {
    assert.deepEqual(classifyFinding('CSISecrets', 'config'), {
      reason: 'InvalidConfiguration',
      terminal: true,
    });
    assert.deepEqual(classifyFinding('CSISecrets', 'reference'), {
      reason: 'InvalidResourceRef',
      terminal: true,
    });
    assert.deepEqual(classifyFinding('SecretTransformation', 'transformation'), {
      reason: 'TransformationError',
      terminal: true,
    });
    assert.deepEqual(classifyFinding('VaultConnection', 'config'), {
      reason: 'VaultClientConfigError',
      terminal: true,
    });
    assert.deepEqual(classifyFinding('VaultConnection', 'unreachable', 60_000), {
      reason: 'VaultClientError',
      requeueAfterMs: 60_000,
    });
  });

  it("keeps VSO's Accepted reason for every VaultAuth finding", () => {
    for (const f of ['config', 'reference'] as const)
      assert.equal(classifyFinding('VaultAuth', f).reason, 'Accepted');
  });

  it('turns a finding into awaitChange or a recheck jittered into (0.8, 0.9] of the period', () => {
    assert.deepEqual(
      findingAction(classifyFinding('VaultAuth', 'reference'), () => 0.5),
      { awaitChange: true },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 86_400_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (ms, r) => {
          const a = findingAction(classifyFinding('VaultConnection', 'unreachable', ms), () => r);
          assert.ok(
            'requeueAfterMs' in a &&
              a.requeueAfterMs > 0.8 * ms - 1e-6 &&
              a.requeueAfterMs <= 0.9 * ms + 1e-6,
          );
        },
      ),
    );
  });
});
