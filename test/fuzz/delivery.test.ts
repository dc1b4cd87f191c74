// Secret-data shaping (src/delivery): Vault decides the data, the tenant the templates and filters.
// goJson writes what Go's encoding/json writes (keys in byte order, <>& escaped) and parses back to
// the value; makeSecretData keeps every key the filters let through (a key named `__proto__`
// included), base64 of the exact value, templates winning, `_raw` the Go JSON of the response;
// shapeData renders what the templates name. Failures are FerryErrors that quote no value.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RE2JS } from 're2js';
import type { SecretTransformation } from '../../src/api/v1beta1/secrettransformation.ts';
import { goJson } from '../../src/delivery/gojson.ts';
import { makeSecretData } from '../../src/delivery/secret-data.ts';
import { shapeData } from '../../src/delivery/transformation.ts';
import { CODES, isFerryError } from '../../src/errors.ts';
import { createStore } from '../../src/runtime/store.ts';
import { budget, CANARY } from './budget.ts';

const key = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.constantFrom(
    '__proto__',
    'constructor',
    'toString',
    '_raw',
    'a',
    'b',
    'tls.crt',
    '<&>',
    '\u2028',
    '\ud83d\ude00',
  ),
);
const value: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 8 }).map((s) => `${CANARY}${s}`),
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(key, tie('v'), { maxKeys: 3 }),
  ),
})).v;
/** Data as JSON.parse gives it (a `__proto__` key is an own key there). */
const data = fc
  .dictionary(key, value, { maxKeys: 6 })
  .map((d) => JSON.parse(JSON.stringify(d)) as Record<string, unknown>);

const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

/** encoding/json.Marshal as its documentation states it, written independently of goJson. */
function goMarshal(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(goMarshal).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${goString(k)}:${goMarshal((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return typeof v === 'string' ? goString(v) : JSON.stringify(v);
}
const goString = (s: string): string =>
  JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );

test('goJson writes what encoding/json.Marshal writes, and parses back to the value', () => {
  fc.assert(
    fc.property(value, (v) => {
      const plain = JSON.parse(JSON.stringify(v));
      const text = goJson(plain);
      assert.equal(text, goMarshal(plain));
      assert.deepEqual(JSON.parse(text), plain);
    }),
    budget(2000),
  );
});

test('deeply nested data is shaped or refused as SECRET_DATA, never a stack overflow', () => {
  fc.assert(
    fc.property(fc.nat(3000), fc.constantFrom('[', '{"a":'), (depth, open) => {
      const close = open === '[' ? ']' : '}';
      const source = JSON.parse(`{"k":${open.repeat(depth)}1${close.repeat(depth)}}`);
      try {
        makeSecretData(source, source);
      } catch (e) {
        assert.ok(isFerryError(e) && e.code === CODES.SECRET_DATA, String(e));
        assert.ok(depth >= 999, `refused at depth ${depth}`);
      }
    }),
    budget(100),
  );
});

const pattern = fc.oneof(
  fc.constantFrom('^a', 'b$', '_raw', '^_', '.', 'proto', '(', '[', '\\'),
  fc.string({ maxLength: 3 }),
);

test('makeSecretData keeps every key the filters let through, each with its exact value', () => {
  fc.assert(
    fc.property(
      data,
      fc
        .dictionary(key, fc.string({ maxLength: 6 }), { maxKeys: 2 })
        .map((d) => JSON.parse(JSON.stringify(d)) as Record<string, string>),
      fc.array(pattern, { maxLength: 2 }),
      fc.array(pattern, { maxLength: 2 }),
      fc.boolean(),
      (source, rendered, includes, excludes, excludeRaw) => {
        let out: Record<string, string>;
        try {
          out = makeSecretData(source, source, { rendered, includes, excludes, excludeRaw });
        } catch (e) {
          assert.ok(isFerryError(e), String(e));
          assert.ok(!e.message.includes(CANARY), e.message);
          return;
        }
        const re = (p: string) => RE2JS.compile(p);
        const rawOut = !excludeRaw && !excludes.some((p) => re(p).test('_raw'));
        for (const [k, v] of Object.entries(rendered)) assert.equal(unb64(out[k]!), utf8(v), `rendered ${k}`);
        if (rawOut && !Object.hasOwn(rendered, '_raw')) assert.equal(unb64(out._raw!), utf8(goJson(source)));
        for (const [k, v] of Object.entries(source)) {
          if (k === '_raw' || Object.hasOwn(rendered, k)) continue;
          const kept =
            !excludes.some((p) => re(p).test(k)) &&
            (includes.length === 0 || includes.some((p) => re(p).test(k)));
          assert.equal(
            Object.hasOwn(out, k),
            kept,
            `key ${JSON.stringify(k)} kept: ${Object.hasOwn(out, k)}`,
          );
          if (kept) assert.equal(unb64(out[k]!), utf8(typeof v === 'string' ? v : goJson(v, source, k)), k);
        }
        const allowed = new Set([...Object.keys(source), ...Object.keys(rendered), '_raw']);
        for (const k of Object.keys(out)) assert.ok(allowed.has(k), `invented key ${k}`);
        // What is written to the API server: the same keys survive JSON.
        assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(out))).sort(), Object.keys(out).sort());
      },
    ),
    budget(1500),
  );
});

test('shapeData renders each template over the data, or fails with a FerryError quoting no value', () => {
  const { store } = createStore<SecretTransformation>();
  fc.assert(
    fc.property(
      data,
      fc
        .dictionary(
          key,
          fc.oneof(
            key.map((k) => `{{ get .Secrets ${JSON.stringify(k)} }}`),
            fc.constantFrom('{{ .Secrets | toJson }}', '{{ fail "x" }}', '{{', '{{ .Secrets.nope.deeper }}'),
          ),
          { maxKeys: 3 },
        )
        .map((d) => JSON.parse(JSON.stringify(d)) as Record<string, string>),
      (secrets, texts) => {
        const templates = Object.fromEntries(Object.entries(texts).map(([k, text]) => [k, { text }]));
        let rendered: Record<string, string> | undefined;
        try {
          rendered = shapeData(
            { transformations: store, globalExcludeRaw: false },
            'a',
            { templates },
            { secrets, metadata: {}, annotations: {}, labels: {} },
          ).rendered;
        } catch (e) {
          assert.ok(isFerryError(e), String(e));
          assert.ok(!e.message.includes(CANARY), e.message);
          return;
        }
        assert.deepEqual(Object.keys(rendered ?? {}).sort(), Object.keys(texts).sort());
        for (const [k, text] of Object.entries(texts)) {
          const m = /^\{\{ get \.Secrets (".*") \}\}$/.exec(text);
          if (!m) continue;
          const v = secrets[JSON.parse(m[1]!) as string];
          if (typeof v === 'string') assert.equal(rendered?.[k], v, `${text}`);
        }
      },
    ),
    budget(800),
  );
});
