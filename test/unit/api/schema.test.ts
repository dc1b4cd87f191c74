import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv, type ErrorObject } from 'ajv';
import { buildCrd, type JsonSchema } from '../../../src/api/crd.ts';
import { ALL_KINDS } from '../../../src/api/kinds.ts';
import { INVALID_CASES, invalidManifest, loadFixture } from '../../fixtures/api/fixtures.ts';

// The CRD schema is what the apiserver enforces, so samples are checked against it, with defaults
// applied the way the server applies them.
const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  strict: true,
  formats: { int64: true, 'date-time': true },
});
const validators = new Map(
  ALL_KINDS.map((def) => {
    const [version] = buildCrd(def).spec.versions;
    assert.ok(version);
    return [def.resource.kind, ajv.compile(version.schema.openAPIV3Schema)];
  }),
);

function validate(kind: string, obj: unknown): string[] {
  const v = validators.get(kind);
  assert.ok(v, kind);
  return v(obj) ? [] : (v.errors ?? []).map(fieldOf);
}

// ajv error → the apiserver's field notation: spec.a.b[0].c
function fieldOf(e: ErrorObject): string {
  const segments = e.instancePath.split('/').slice(1);
  if (e.keyword === 'required') segments.push(String(e.params.missingProperty));
  return segments.map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

// Field coverage is tracked per declaring `properties` object, so a shared type (Destination,
// Transformation, ...) counts as covered once any fixture uses each of its fields. The TypeBox
// schemas are walked because their shared types keep object identity.
type Declared = Map<object, Map<string, string>>; // properties object → field name → example path

function mapValues(schema: JsonSchema): JsonSchema | undefined {
  const pp = schema.patternProperties as Record<string, JsonSchema> | undefined;
  return pp?.['^.*$'];
}

function declare(schema: JsonSchema, path: string, into: Declared): void {
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  if (props) {
    if (into.has(props)) return;
    const fields = new Map<string, string>();
    into.set(props, fields);
    for (const [name, sub] of Object.entries(props)) {
      fields.set(name, `${path}.${name}`);
      declare(sub, `${path}.${name}`, into);
    }
  }
  if (schema.items) declare(schema.items as JsonSchema, `${path}[]`, into);
  const values = mapValues(schema);
  if (values) declare(values, `${path}{}`, into);
}

function use(value: unknown, schema: JsonSchema, seen: Map<object, Set<string>>): void {
  if (Array.isArray(value)) {
    for (const v of value) use(v, schema.items as JsonSchema, seen);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  const values = mapValues(schema);
  for (const [k, v] of Object.entries(value)) {
    const sub = props?.[k];
    if (props && sub) {
      if (!seen.has(props)) seen.set(props, new Set());
      seen.get(props)?.add(k);
      use(v, sub, seen);
    } else if (values) {
      use(v, values, seen);
    }
  }
}
describe('sample manifests (test/fixtures/api)', () => {
  for (const def of ALL_KINDS) {
    const kind = def.resource.kind;
    const docs = loadFixture(kind);

    it(`${kind}: every document validates against the CRD schema`, () => {
      for (const doc of docs) {
        assert.equal(doc.kind, kind);
        assert.equal(doc.apiVersion, 'secrets.hashicorp.com/v1beta1');
        assert.deepEqual(validate(kind, structuredClone(doc)), [], doc.metadata.name);
      }
    });
  }

  it('the documents together use every field of every type', () => {
    const declared: Declared = new Map();
    const seen = new Map<object, Set<string>>();
    for (const def of ALL_KINDS) {
      const spec = ((def.schema as JsonSchema).properties as Record<string, JsonSchema>).spec;
      assert.ok(spec);
      declare(spec, `${def.resource.kind}.spec`, declared);
      for (const doc of loadFixture(def.resource.kind)) use(doc.spec, spec, seen);
    }
    const missing = [...declared].flatMap(([props, fields]) =>
      [...fields].filter(([name]) => !seen.get(props)?.has(name)).map(([, path]) => path),
    );
    assert.deepEqual(missing, []);
  });
});

describe('defaults', () => {
  const withDefaults = (kind: string, spec: Record<string, unknown>) => {
    const obj = { apiVersion: 'secrets.hashicorp.com/v1beta1', kind, metadata: { name: 'x' }, spec };
    assert.deepEqual(validate(kind, obj), []);
    return obj.spec;
  };
  const dest = { name: 'out' };

  it('VaultConnection.skipTLSVerify defaults to false', () => {
    assert.equal(withDefaults('VaultConnection', { address: 'http://v:8200' }).skipTLSVerify, false);
  });
  it('VaultDynamicSecret.renewalPercent defaults to 67', () => {
    assert.equal(
      withDefaults('VaultDynamicSecret', { mount: 'db', path: 'creds/x', destination: dest }).renewalPercent,
      67,
    );
  });
  it('VaultStaticSecret.hmacSecretData defaults to true and destination.create/overwrite to false', () => {
    const spec = withDefaults('VaultStaticSecret', {
      mount: 'kv',
      path: 'p',
      type: 'kv-v2',
      destination: { name: 'o' },
    });
    assert.equal(spec.hmacSecretData, true);
    assert.deepEqual(spec.destination, { name: 'o', create: false, overwrite: false });
  });
  it('tokenExpirationSeconds defaults to 600 for kubernetes and jwt', () => {
    const spec = withDefaults('VaultAuth', { kubernetes: { role: 'r' }, jwt: { role: 'r' } });
    assert.equal((spec.kubernetes as Record<string, unknown>).tokenExpirationSeconds, 600);
    assert.equal((spec.jwt as Record<string, unknown>).tokenExpirationSeconds, 600);
  });
  it('HCP defaults: method servicePrincipal, refreshAfter 600s, renewalPercent 67', () => {
    assert.equal(withDefaults('HCPAuth', { organizationID: 'o', projectID: 'p' }).method, 'servicePrincipal');
    const app = withDefaults('HCPVaultSecretsApp', {
      appName: 'a',
      destination: dest,
      syncConfig: { dynamic: {} },
    });
    assert.equal(app.refreshAfter, '600s');
    assert.deepEqual(app.syncConfig, { dynamic: { renewalPercent: 67 } });
  });
  it('CSISecrets.accessControl.matchPolicy defaults to all', () => {
    const spec = withDefaults('CSISecrets', { accessControl: { serviceAccountPattern: '.*' }, secrets: {} });
    assert.equal((spec.accessControl as Record<string, unknown>).matchPolicy, 'all');
  });
});

describe('duration patterns', () => {
  const vss = (refreshAfter: string) => ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'VaultStaticSecret',
    metadata: { name: 'x' },
    spec: { mount: 'kv', path: 'p', type: 'kv-v2', destination: { name: 'o' }, refreshAfter },
  });
  for (const ok of ['1s', '30s', '1.5m', '24h', '0s', '10.25h']) {
    it(`accepts ${ok}`, () => assert.deepEqual(validate('VaultStaticSecret', vss(ok)), []));
  }
  for (const bad of ['', '1', '1d', '1h30m', '-1s', '.5s', '1.s', '1ms', ' 1s', '1S']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.deepEqual(validate('VaultStaticSecret', vss(bad)), ['spec.refreshAfter']));
  }
  it('VaultPKISecret.ttl also accepts days', () => {
    const [pki] = loadFixture('VaultPKISecret');
    assert.ok(pki);
    pki.spec.ttl = '7d';
    assert.deepEqual(validate('VaultPKISecret', pki), []);
  });
});

describe('destination.name', () => {
  const vss = (name: string) => ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'VaultStaticSecret',
    metadata: { name: 'x' },
    spec: { mount: 'kv', path: 'p', type: 'kv-v2', destination: { name } },
  });
  // Every Secret name Kubernetes accepts stays accepted: only names no write could ever use are refused.
  for (const ok of [
    'a',
    '0',
    'app-creds',
    'db.creds.v2',
    'a-b.c-d',
    `${'a'.repeat(63)}.${'b'.repeat(189)}`,
  ]) {
    it(`accepts ${ok.length > 20 ? `a name of ${ok.length} characters` : ok}`, () =>
      assert.deepEqual(validate('VaultStaticSecret', vss(ok)), []));
  }
  for (const bad of [
    '',
    'App',
    'a_b',
    '-a',
    'a-',
    'a..b',
    '.a',
    'a.',
    'a/b',
    'a b',
    '..',
    'ä',
    'a'.repeat(254),
  ]) {
    it(`refuses ${bad.length > 20 ? `a name of ${bad.length} characters` : JSON.stringify(bad)}`, () =>
      assert.deepEqual(validate('VaultStaticSecret', vss(bad)), ['spec.destination.name']));
  }
});

describe('invalid manifests are refused', () => {
  for (const c of INVALID_CASES) {
    it(c.name, () => {
      const errors = validate(c.kind, invalidManifest(c));
      assert.ok(errors.includes(c.field), `expected an error at ${c.field}, got ${JSON.stringify(errors)}`);
    });
  }
});
