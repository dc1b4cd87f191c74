import assert from 'node:assert/strict';
import { it } from 'node:test';
import { redactSecretValues } from '../../../src/controllers/shared/redact.ts';

it('replaces every string and number of the secret data, longest first', () => {
  const msg = 'bad value hunter2-long at key pass: hunter2 (port 5432)';
  assert.equal(
    redactSecretValues(msg, { a: 'hunter2', b: { c: ['hunter2-long'] }, port: 5432, x: 'ab' }),
    'bad value <redacted> at key pass: <redacted> (port <redacted>)',
  );
});

it('replaces the base64 form of each value too (what a Secret holds)', () => {
  const msg = `denied: data.password is ${Buffer.from('hunter2').toString('base64')}`;
  assert.equal(redactSecretValues(msg, { password: 'hunter2' }), 'denied: data.password is <redacted>');
});
