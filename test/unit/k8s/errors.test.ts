import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { errorFromResponse, errorFromStatus, K8sApiError, parseRetryAfter } from '../../../src/k8s/errors.ts';

describe('K8sApiError', () => {
  it('is built from metav1.Status', () => {
    const body = JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message: 'configmaps "a" already exists',
      reason: 'AlreadyExists',
      details: { name: 'a', kind: 'configmaps' },
      code: 409,
    });
    const e = errorFromResponse('POST /api/v1/namespaces/ns/configmaps', 409, body);
    assert.ok(e instanceof K8sApiError && isFerryError(e));
    assert.equal(e.code, CODES.K8S_API);
    assert.equal(e.reason, 'AlreadyExists');
    assert.ok(e.isAlreadyExists());
    assert.ok(!e.isConflict(), 'AlreadyExists is not an optimistic-concurrency conflict');
    assert.equal(
      e.message,
      'POST /api/v1/namespaces/ns/configmaps: 409 AlreadyExists: configmaps "a" already exists',
    );
  });

  it('classifies statuses', () => {
    const of = (code: number, reason = '') => errorFromStatus('X', { kind: 'Status', code, reason });
    assert.ok(of(404).isNotFound());
    assert.ok(of(409, 'Conflict').isConflict());
    assert.ok(of(410, 'Expired').isGone());
    assert.ok(of(403).isForbidden());
    assert.ok(of(422).isInvalid());
    assert.ok(of(429).isTooManyRequests());
    assert.equal(of(404).reason, 'NotFound', 'reason falls back to the HTTP status name');
  });

  it('gives a create refused in a terminating namespace its own code', () => {
    // What the NamespaceLifecycle admission plugin answers.
    const body = JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message:
        'secrets "s" is forbidden: unable to create new content in namespace app because it is being terminated',
      reason: 'Forbidden',
      details: {
        name: 's',
        kind: 'secrets',
        causes: [
          {
            reason: 'NamespaceTerminating',
            message: 'namespace app is being terminated',
            field: 'metadata.namespace',
          },
        ],
      },
      code: 403,
    });
    const e = errorFromResponse('POST /api/v1/namespaces/app/secrets', 403, body);
    assert.equal(e.code, CODES.K8S_NAMESPACE_TERMINATING);
    assert.ok(e.isNamespaceTerminating() && e.isForbidden());
    const rbac = errorFromStatus('X', { kind: 'Status', code: 403, reason: 'Forbidden' });
    assert.equal(rbac.code, CODES.K8S_API);
    assert.ok(!rbac.isNamespaceTerminating());
  });

  it('uses the HTTP status when the body is not a Status, and never copies that body', () => {
    const e = errorFromResponse('GET /x', 503, '<html>token=abc</html>');
    assert.equal(e.status, 503);
    assert.equal(e.reason, 'ServiceUnavailable');
    assert.doesNotMatch(e.message, /token=abc/);
  });

  it('takes Retry-After from the header, else from details.retryAfterSeconds', () => {
    const status = JSON.stringify({ kind: 'Status', code: 429, details: { retryAfterSeconds: 5 } });
    assert.equal(errorFromResponse('X', 429, status).retryAfterSeconds, 5);
    assert.equal(errorFromResponse('X', 429, status, '2').retryAfterSeconds, 2);
    assert.equal(errorFromResponse('X', 500, '{}').retryAfterSeconds, undefined);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('10'), 10);
    assert.equal(
      parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', () => now),
      30,
    );
    assert.equal(
      parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', () => now),
      0,
    );
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });

  it('truncates very long server messages', () => {
    const e = errorFromStatus('X', { kind: 'Status', code: 500, message: 'm'.repeat(5000) });
    assert.ok(e.message.length < 1200);
  });
});
