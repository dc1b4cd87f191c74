// Arbitraries of Ferry's custom resources, generated from its own CRD schemas: the unit-level fuzz
// suite (crd.test.ts) runs them through the schema and the reconcilers' pure functions, the e2e one
// (test/e2e/fuzz-resources.test.ts) applies them to the real API server and operator.
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { buildCrd, type JsonSchema } from '../../src/api/crd.ts';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { API_VERSION } from '../../src/api/resources.ts';

// Values tenants write where Ferry parses: durations, paths, references, regexps, URLs, templates.
export const NASTY = [
  '',
  ' ',
  '0',
  '0s',
  '0.0001s',
  '1s',
  '1.5m',
  '24h',
  '7d',
  '99999999999999999999h',
  '1e400s',
  '-1s',
  'NaN',
  '/etc/ferry/ca/ca.pem',
  '/etc/ferry/ca/../../../etc/passwd',
  '../x',
  'relative/path',
  '/dev/zero',
  'a/b',
  'a/b/c',
  '/x',
  'x/',
  '//',
  'default',
  'ns/default',
  '*',
  '(',
  '[',
  'a{1000}{1000}',
  '(?P<x>',
  '.*',
  'http://127.0.0.1:8200',
  'https://[::1]:8200/proxy',
  'file:///etc/passwd',
  'javascript:x',
  'http://',
  'kubernetes',
  'jwt',
  'appRole',
  'aws',
  'gcp',
  'kv-v1',
  'kv-v2',
  'GET',
  'PUT',
  'POST',
  'DELETE',
  '__proto__',
  'constructor',
  '{{ .Secrets.x }}',
  '{{',
  '{{ template "x" }}',
  '\u0000',
  '🙂',
  'x'.repeat(300),
];

const compiledPatterns = new Map<string, fc.Arbitrary<string>>();
function matching(pattern: string): fc.Arbitrary<string> {
  let a = compiledPatterns.get(pattern);
  if (!a) {
    try {
      a = fc.stringMatching(new RegExp(pattern), { maxLength: 40 });
    } catch {
      a = fc.constantFrom(...NASTY);
    }
    compiledPatterns.set(pattern, a);
  }
  return a;
}

const anyJson = fc.jsonValue({ maxDepth: 2 });

/**
 * An arbitrary of values for a structural schema. `hostile` ones now and then put any JSON where the
 * schema wants something else and ignore patterns and bounds (the schema must refuse them); the
 * others mostly keep to the schema, so that enough objects reach the reconcilers.
 */
export function fromSchema(schema: JsonSchema, hostile: boolean, depth = 0): fc.Arbitrary<unknown> {
  const typed = typedValue(schema, hostile, depth);
  return hostile ? fc.oneof({ weight: 20, arbitrary: typed }, { weight: 1, arbitrary: anyJson }) : typed;
}

function typedValue(s: JsonSchema, hostile: boolean, depth: number): fc.Arbitrary<unknown> {
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  switch (s.type) {
    case 'string': {
      const pool = fc.oneof(fc.constantFrom(...NASTY), fc.string({ maxLength: 12 }));
      const str =
        typeof s.pattern === 'string'
          ? fc.oneof(
              { weight: hostile ? 1 : 4, arbitrary: matching(s.pattern) },
              { weight: 1, arbitrary: pool },
            )
          : pool;
      const max = s.maxLength;
      return hostile || typeof max !== 'number' ? str : str.filter((x) => x.length <= max);
    }
    case 'integer': {
      const min = typeof s.minimum === 'number' ? s.minimum : -10;
      const max = typeof s.maximum === 'number' ? s.maximum : 2 ** 53 - 1;
      return fc.oneof(
        fc.integer({ min, max: Math.min(max, 1000) }),
        hostile
          ? fc.constantFrom(0, -1, 2 ** 31, 2 ** 53 - 1, Number.MAX_SAFE_INTEGER + 2, 1e300)
          : fc.constantFrom(min, max),
      );
    }
    case 'number':
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
    case 'boolean':
      return fc.boolean();
    case 'array':
      if (depth > 6) return fc.constant([]);
      return fc.array(fromSchema((s.items ?? {}) as JsonSchema, hostile, depth + 1), { maxLength: 3 });
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, JsonSchema>;
      if (Object.keys(props).length === 0) {
        const extra = s.additionalProperties;
        if (typeof extra === 'object' && extra !== null && depth <= 6)
          return fc.dictionary(
            fc.oneof(fc.constantFrom(...NASTY), fc.string({ maxLength: 8 })),
            fromSchema(extra as JsonSchema, hostile, depth + 1),
            { maxKeys: 3 },
          );
        return fc.dictionary(fc.string({ maxLength: 8 }), anyJson, { maxKeys: 2 });
      }
      if (depth > 6) return fc.constant({});
      const required = (s.required ?? []) as string[];
      const record = Object.fromEntries(
        Object.entries(props).map(([k, v]) => [k, fromSchema(v, hostile, depth + 1)]),
      );
      return fc.record(record, { requiredKeys: required.filter((k) => k in props) });
    }
    default:
      // int-or-string and preserved unknown fields
      return anyJson;
  }
}

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; generation: number };
  spec?: unknown;
  status?: unknown;
}

export interface Kind {
  kind: string;
  validate: ValidateFunction;
  /** Valid and broken objects. */
  object: fc.Arbitrary<Obj>;
  /** Objects that mostly keep to the schema. */
  tame: fc.Arbitrary<Obj>;
}

const name = fc.oneof(fc.constantFrom('default', 'a', 'b'), fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/));
export const KINDS: Kind[] = ALL_KINDS.map((def) => {
  const schema = buildCrd(def).spec.versions[0]!.schema.openAPIV3Schema;
  const props = schema.properties as Record<string, JsonSchema>;
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: true,
    formats: { int64: true, 'date-time': true },
  });
  const kind = def.resource.kind;
  const objects = (spec: fc.Arbitrary<unknown>) =>
    fc
      .record({
        metadata: fc.record({
          name,
          namespace: fc.constantFrom('ferry', 'tenant-a', 'tenant-b'),
          generation: fc.nat(5),
        }),
        spec,
        status: fc.option(props.status ? fromSchema(props.status, true) : fc.constant({}), {
          nil: undefined,
        }),
      })
      .map((o): Obj => ({ apiVersion: API_VERSION, kind, ...o }));
  const tame = props.spec ? fromSchema(props.spec, false) : fc.constant(undefined);
  const hostile = props.spec ? fromSchema(props.spec, true) : fc.constant(undefined);
  return {
    kind,
    validate: ajv.compile(schema),
    object: objects(fc.oneof(tame, hostile)),
    tame: objects(tame),
  };
});
