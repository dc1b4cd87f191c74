// Regressions for what the fuzz suite (test/fuzz/vault.test.ts) found in Vault response parsing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIssueResponse } from '../../../src/vault/pki.ts';

test('a PKI expiration that is no Unix time in seconds is malformed', () => {
  const data = { serial_number: '1a:2b', certificate: 'CERT', expiration: 1_800_000_000 };
  assert.equal(parseIssueResponse('pki/issue/web', data).expiration, 1_800_000_000);
  // 1e300 was kept (and written to status as 1e+300, which no integer field takes); 0.5 became 0.
  for (const expiration of [1e300, 2 ** 53, 0.5, 5e-324, '1e400']) {
    assert.throws(
      () => parseIssueResponse('pki/issue/web', { ...data, expiration }),
      /no valid expiration/,
      String(expiration),
    );
  }
});
