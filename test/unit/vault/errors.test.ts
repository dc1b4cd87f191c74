import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { redact, VaultError, vaultErrorFromBody, vaultTransportError } from '../../../src/vault/errors.ts';

describe('redact', () => {
  it('scrubs Vault and OpenBao token shapes', () => {
    for (const tok of [
      'hvs.CAESIJ1kYW5nZXJvdXNseXJlYWxsb29raW5n',
      'hvb.AAAAAQJ0aGlzaXNhYmF0Y2h0b2tlbg',
      's.AbCdEfGhIjKlMnOpQrStUvWx',
      'b.AAAAAQKKsomebatchtoken123',
    ]) {
      const out = redact(`permission denied for ${tok} here`);
      assert.equal(out, 'permission denied for <redacted> here');
    }
  });

  it('leaves ordinary text alone', () => {
    for (const s of ['Vault is sealed', 'no handler for route "s.t"', 'version 1.2.3', 'lease not found']) {
      assert.equal(redact(s), s);
    }
  });

  it('truncates very long strings', () => {
    assert.ok(redact('x'.repeat(5000)).length <= 513);
  });
});

describe('VaultError', () => {
  it('is built from an errors body and keeps only the error strings', () => {
    const err = vaultErrorFromBody('GET', 'secret/data/app', 403, {
      errors: ['permission denied', 42, 'token hvs.CAESIJ1kYW5nZXJvdXNseXJlYWxsb29raW5n revoked'],
      data: { password: 'hunter2' },
    });
    assert.equal(err.code, CODES.VAULT_API);
    assert.ok(isFerryError(err));
    assert.equal(err.status, 403);
    assert.deepEqual(err.errors, ['permission denied', 'token <redacted> revoked']);
    assert.equal(
      err.message,
      'Vault GET secret/data/app failed with status 403: permission denied; token <redacted> revoked',
    );
    assert.ok(!err.message.includes('hunter2'));
    assert.ok(err.isForbidden());
    assert.ok(!err.isNotFound());
  });

  it('tolerates bodies that are not Vault error documents', () => {
    for (const body of [undefined, null, 'oops', { errors: 'x' }, [1, 2]]) {
      const err = vaultErrorFromBody('PUT', 'a/b', 500, body);
      assert.deepEqual(err.errors, []);
      assert.equal(err.message, 'Vault PUT a/b failed with status 500');
    }
  });

  it('recognises sealed, not found and lease-not-found answers', () => {
    assert.ok(vaultErrorFromBody('GET', 'p', 503, { errors: ['Vault is sealed'] }).isSealed());
    assert.ok(vaultErrorFromBody('GET', 'p', 503, { errors: ['OpenBao is sealed'] }).isSealed());
    assert.ok(vaultErrorFromBody('GET', 'p', 503, {}).isSealed());
    assert.ok(!vaultErrorFromBody('GET', 'p', 503, { errors: ['rate limited upstream'] }).isSealed());
    assert.ok(!vaultErrorFromBody('GET', 'p', 500, { errors: ['internal error'] }).isSealed());
    assert.ok(vaultErrorFromBody('GET', 'p', 404, {}).isNotFound());
    assert.ok(
      vaultErrorFromBody('PUT', 'sys/leases/renew', 400, { errors: ['lease not found'] }).isLeaseNotFound(),
    );
    assert.ok(
      vaultErrorFromBody('PUT', 'sys/leases/renew', 400, { errors: ['invalid lease ID'] }).isLeaseNotFound(),
    );
    assert.ok(!vaultErrorFromBody('PUT', 'x', 400, { errors: ['missing role'] }).isLeaseNotFound());
  });

  it('redacts token-looking path segments too', () => {
    const err = new VaultError({ method: 'GET', path: 'cubbyhole/s.AbCdEfGhIjKlMnOpQrStUvWx', status: 404 });
    assert.equal(err.path, 'cubbyhole/<redacted>');
    assert.ok(!err.message.includes('AbCdEf'));
  });
});

describe('vaultTransportError', () => {
  it('carries the cause and its code', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const err = vaultTransportError('GET', 'sys/seal-status', cause);
    assert.equal(err.code, CODES.VAULT_TRANSPORT);
    assert.equal(err.cause, cause);
    assert.equal(err.message, 'Vault GET sys/seal-status: connect ECONNREFUSED 127.0.0.1:1');
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    assert.match(vaultTransportError('GET', 'x', tls).message, /\(DEPTH_ZERO_SELF_SIGNED_CERT\)$/);
  });
});
