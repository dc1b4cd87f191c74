// Regressions for what the fuzz suite (test/fuzz/delivery.test.ts) found in secret-data shaping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SecretTransformation } from '../../../src/api/v1beta1/secrettransformation.ts';
import { goJson } from '../../../src/delivery/gojson.ts';
import { makeSecretData } from '../../../src/delivery/secret-data.ts';
import { shapeData } from '../../../src/delivery/transformation.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { createStore } from '../../../src/runtime/store.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('goJson orders integer-like keys byte-wise, as Go does (JS objects put them first)', () => {
  const v = JSON.parse('{"9":1,"10":2,"":3,"a":{"2":1,"1":2}}');
  assert.equal(goJson(v), '{"":3,"10":2,"9":1,"a":{"1":2,"2":1}}');
  // `_raw` is the same bytes VSO writes, so a migrated Secret keeps its MAC.
  assert.equal(makeSecretData(v, v)._raw, b64('{"":3,"10":2,"9":1,"a":{"1":2,"2":1}}'));
});

test('a key named __proto__ is kept, from Vault data and from a template', () => {
  const source = JSON.parse('{"__proto__":"p","a":"b"}');
  const out = makeSecretData(source, source, { excludeRaw: true });
  assert.deepEqual(Object.keys(out).sort(), ['__proto__', 'a']);
  assert.equal(JSON.stringify(out), `{"__proto__":"${b64('p')}","a":"${b64('b')}"}`);
  const { store } = createStore<SecretTransformation>();
  const templates = JSON.parse('{"__proto__":{"text":"t"}}');
  const shaping = shapeData(
    { transformations: store, globalExcludeRaw: true },
    'a',
    { templates },
    {
      secrets: {},
      metadata: {},
      annotations: {},
      labels: {},
    },
  );
  assert.deepEqual(Object.keys(shaping.rendered ?? {}), ['__proto__']);
});

test('data nested beyond 1000 levels is a SECRET_DATA error, not a stack overflow', () => {
  const deep = JSON.parse(`{"k":${'['.repeat(5000)}${']'.repeat(5000)}}`);
  assert.throws(
    () => makeSecretData(deep, deep),
    (e) => isFerryError(e) && e.code === CODES.SECRET_DATA && /nested deeper than 1000/.test(e.message),
  );
  const ok = JSON.parse(`{"k":${'['.repeat(900)}${']'.repeat(900)}}`);
  assert.equal(goJson(ok), `{"k":${'['.repeat(900)}${']'.repeat(900)}}`);
});
