import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { macEqual, secretMAC } from '../../../src/controllers/shared/hmac.ts';
import { goJson } from '../../../src/delivery/gojson.ts';
import { makeSecretData } from '../../../src/delivery/secret-data.ts';
import { isFerryError } from '../../../src/errors.ts';

const decode = (d: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

describe('goJson', () => {
  it('sorts keys byte-wise and escapes like encoding/json', () => {
    assert.equal(
      goJson({ b: 1, a: '<x & y>', c: ['\u2028'] }),
      '{"a":"\\u003cx \\u0026 y\\u003e","b":1,"c":["\\u2028"]}',
    );
    assert.equal(goJson({ Z: 1, a: 2, é: 3 }), '{"Z":1,"a":2,"é":3}');
    assert.equal(goJson(JSON.parse('{"__proto__":{"x":1}}')), '{"__proto__":{"x":1}}');
  });
  it('round-trips through JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) =>
        assert.deepEqual(JSON.parse(goJson(v)), JSON.parse(JSON.stringify(v))),
      ),
    );
  });
});

describe('makeSecretData', () => {
  const raw = { data: { user: 'u', pass: 'p' }, metadata: { version: 3 } };
  it('writes strings as-is, other values as JSON, and _raw', () => {
    const out = decode(makeSecretData({ user: 'u', n: 5, obj: { b: 1, a: 2 } }, raw));
    assert.deepEqual(out, { user: 'u', n: '5', obj: '{"a":2,"b":1}', _raw: goJson(raw) });
  });
  it('applies excludes before includes and never filters templated keys', () => {
    const out = decode(
      makeSecretData({ user: 'u', pass: 'p', port: '5432' }, raw, {
        rendered: { url: 'postgres://u@h', user: 'templated' },
        excludes: ['^pass$'],
        includes: ['^p'],
        excludeRaw: true,
      }),
    );
    assert.deepEqual(out, { url: 'postgres://u@h', user: 'templated', port: '5432' });
  });
  it('drops _raw when an exclude matches it', () => {
    assert.deepEqual(Object.keys(makeSecretData({ a: 'b' }, raw, { excludes: ['.*'] })), []);
  });
  it('refuses a source key named _raw unless _raw is excluded', () => {
    assert.throws(
      () => makeSecretData({ _raw: 'x' }, raw),
      (e) => isFerryError(e) && !e.message.includes('"x"'),
    );
    assert.deepEqual(decode(makeSecretData({ _raw: 'x', a: 'b' }, raw, { excludeRaw: true })), { a: 'b' });
  });
  it('reports a bad pattern without crashing', () => {
    assert.throws(
      () => makeSecretData({ a: 'b' }, raw, { includes: ['(('] }),
      (e) => isFerryError(e),
    );
  });
  it('supports RE2 syntax such as (?i)', () => {
    assert.deepEqual(
      Object.keys(
        makeSecretData({ PASS: 'x', user: 'y' }, raw, { includes: ['(?i)^pass'], excludeRaw: true }),
      ),
      ['PASS'],
    );
  });
});

describe('secretMAC', () => {
  const key = Buffer.alloc(16, 7);
  it('is stable under key order and changes with the data', () => {
    const a = secretMAC(key, { a: 'YQ==', b: 'Yg==' });
    assert.ok(macEqual(a, secretMAC(key, { b: 'Yg==', a: 'YQ==' })));
    assert.ok(!macEqual(a, secretMAC(key, { a: 'YQ==', b: 'Yw==' })));
    assert.ok(!macEqual(a, undefined));
  });
});
