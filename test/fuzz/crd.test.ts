// Custom resources (src/api, and the pure parts of the controllers that read them): objects of every
// kind generated from Ferry's own CRD schemas (mostly valid, some broken on purpose), with the
// strings tenants try (huge durations, `..` paths, bad regexps, references with extra slashes). The
// CRD schema (ajv, as the apiserver applies it) accepts or refuses each; whatever it accepts goes
// through the runtime validation and the plan, timing and shape functions the reconcilers call, which
// return a result or a FerryError, never another exception, and never schedule a busy loop. `ferry
// lint` takes any of them, valid or not, without throwing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { buildCrd, type JsonSchema } from '../../src/api/crd.ts';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { API_VERSION } from '../../src/api/resources.ts';
import type { CSISecrets } from '../../src/api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../../src/api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from '../../src/api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../src/api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../../src/api/v1beta1/vaultconnection.ts';
import type { VaultDynamicSecretStatus } from '../../src/api/v1beta1/vaultdynamicsecret.ts';
import {
  MIN_REFRESH_AFTER_MS,
  parseRef,
  refreshPeriodMs,
  validateCSISecrets,
  validateTransformation,
  validateVaultAuth,
  validateVaultConnection,
} from '../../src/api/validate.ts';
import { lintManifests } from '../../src/command/lint.ts';
import { parseManifests } from '../../src/command/manifests.ts';
import { checkCSISecrets, csiTransformationRefKeys } from '../../src/controllers/csisecrets/reconcile.ts';
import { validateSecretTransformation } from '../../src/controllers/secrettransformation/reconcile.ts';
import { decideSync } from '../../src/controllers/vaultdynamicsecret/plan.ts';
import { instantIndex } from '../../src/controllers/vaultstaticsecret/instant.ts';
import { effectiveAuth } from '../../src/delivery/auth-config.ts';
import { expiryOffsetMs } from '../../src/delivery/pki-data.ts';
import { transformationRefKeys } from '../../src/delivery/transformation.ts';
import { csiSecretsConsumer } from '../../src/delivery/vault-access.ts';
import { isFerryError } from '../../src/errors.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { createStore } from '../../src/runtime/store.ts';
import { requestMethod, requestPath } from '../../src/vault/dynamic.ts';
import { kvReadPath } from '../../src/vault/kv.ts';
import { issuePath, issueRequestBody, MIN_HORIZON_MS, renewalWindow } from '../../src/vault/pki.ts';
import { budget } from './budget.ts';

// Values tenants write where Ferry parses: durations, paths, references, regexps, URLs, templates.
const NASTY = [
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
function fromSchema(schema: JsonSchema, hostile: boolean, depth = 0): fc.Arbitrary<unknown> {
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

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; generation: number };
  spec?: unknown;
  status?: unknown;
}

interface Kind {
  kind: string;
  validate: ValidateFunction;
  /** Valid and broken objects. */
  object: fc.Arbitrary<Obj>;
  /** Objects that mostly keep to the schema. */
  tame: fc.Arbitrary<Obj>;
}

const name = fc.oneof(fc.constantFrom('default', 'a', 'b'), fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/));
const KINDS: Kind[] = ALL_KINDS.map((def) => {
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

/** Runs `f`; a FerryError is a result (the resource's status reports it), anything else a bug. */
function typed<T>(what: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    assert.ok(isFerryError(e), `${what}: ${e instanceof Error ? e.stack : String(e)}`);
    return undefined;
  }
}

type Spec = Record<string, unknown>;

/** What the reconcilers compute from an accepted object, by kind. */
function reconcilePure(kind: string, o: Obj, other: Obj): void {
  const ns = o.metadata.namespace;
  const ctx = { namespace: ns, operatorNamespace: 'ferry' };
  const ref = (r: unknown) => typeof r === 'string' && typed('parseRef', () => parseRef(r, ctx));
  const refresh = (r: unknown) => {
    const ms = typed('refreshPeriodMs', () => refreshPeriodMs(r as string | undefined));
    if (ms !== undefined)
      assert.ok(Number.isSafeInteger(ms) && ms >= MIN_REFRESH_AFTER_MS, `refreshAfter ${r}: ${ms}`);
    return ms;
  };
  const s = (o.spec ?? {}) as Spec;
  switch (kind) {
    case 'VaultConnection':
      assert.ok(Array.isArray(validateVaultConnection(s as never)));
      break;
    case 'VaultAuth':
      assert.ok(Array.isArray(validateVaultAuth(s as never)));
      ref(s.vaultConnectionRef);
      typed('effectiveAuth', () => effectiveAuth(s as never));
      typed('effectiveAuth with a global', () => effectiveAuth(s as never, (other.spec ?? {}) as never));
      break;
    case 'VaultAuthGlobal':
      typed('effectiveAuth', () => effectiveAuth((other.spec ?? {}) as never, s as never));
      break;
    case 'VaultStaticSecret':
      ref(s.vaultAuthRef);
      refresh(s.refreshAfter);
      typed('kvReadPath', () => kvReadPath(s as never));
      assert.ok(
        Array.isArray(
          validateTransformation('t', (s.destination as Spec | undefined)?.transformation as never),
        ),
      );
      transformationRefKeys(ns, (s.destination as Spec | undefined)?.transformation as never);
      instantIndex(o as never);
      break;
    case 'VaultDynamicSecret': {
      ref(s.vaultAuthRef);
      const refreshAfterMs = refresh(s.refreshAfter);
      typed('requestPath', () => requestPath(s.mount as string, s.path as string));
      requestMethod(s as never);
      const nowMs = 1_700_000_000_000;
      const status = o.status as VaultDynamicSecretStatus | undefined;
      const decision = typed('decideSync', () =>
        decideSync({
          generation: o.metadata.generation,
          status,
          destinationExists: true,
          destinationDrifted: false,
          allowStaticCreds: s.allowStaticCreds === true,
          renewalPercent: s.renewalPercent as number | undefined,
          refreshAfterMs,
          nowMs,
        }),
      );
      // A wait that is already due would requeue at once, forever.
      if (decision?.action === 'wait')
        assert.ok(decision.dueAt > nowMs, `wait until ${decision.dueAt} ≤ now for ${JSON.stringify(status)}`);
      break;
    }
    case 'VaultPKISecret': {
      ref(s.vaultAuthRef);
      const offset = expiryOffsetMs(s.expiryOffset as string | undefined);
      assert.ok(Number.isFinite(offset));
      typed('issuePath', () => issuePath(s as never));
      typed('issueRequestBody', () => issueRequestBody(s as never));
      const nowMs = 1_700_000_000_000;
      for (const expiration of [0, nowMs / 1000 - 10, nowMs / 1000 + 3600, 2 ** 40]) {
        const w = renewalWindow(
          { nowMs, expiration, expiryOffsetMs: offset, lastRotation: nowMs / 1000 - 60 },
          () => 0.5,
        );
        assert.ok(Number.isFinite(w.horizonMs) && w.horizonMs >= MIN_HORIZON_MS, `horizon ${w.horizonMs}`);
      }
      break;
    }
    case 'SecretTransformation': {
      const verdict = validateSecretTransformation(o as unknown as SecretTransformation);
      assert.ok(verdict === undefined || typeof verdict === 'string');
      break;
    }
    case 'CSISecrets': {
      assert.ok(Array.isArray(validateCSISecrets(s as never)));
      csiSecretsConsumer(ns, s as never);
      csiTransformationRefKeys(o as unknown as CSISecrets);
      const auths = createStore<VaultAuth>();
      const globals = createStore<VaultAuthGlobal>();
      const conns = createStore<VaultConnection>();
      const transformations = createStore<SecretTransformation>();
      const verdict = checkCSISecrets(o as unknown as CSISecrets, {
        operatorNamespace: 'ferry',
        allowDefaultGlobals: true,
        auths: auths.store,
        authGlobals: globals.store,
        connections: conns.store,
        transformations: transformations.store,
      });
      assert.equal(typeof verdict.ready, 'boolean');
      break;
    }
  }
}

for (const k of KINDS) {
  test(`${k.kind}: the schema accepts or refuses, and whatever it accepts reconciles to a result`, async () => {
    const other = KINDS.find((x) => x.kind === (k.kind === 'VaultAuth' ? 'VaultAuthGlobal' : 'VaultAuth'))!;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(k.object, other.object, async (obj, otherObj) => {
        // `ferry lint` reads any manifest, valid or not.
        const text = fc.sample(fc.boolean(), 1)[0] ? JSON.stringify(obj) : stringify(obj);
        const result = await lintManifests([parseManifests('fuzz.yaml', text)]);
        for (const f of result.findings) assert.equal(typeof f.message, 'string');
        // The apiserver applies defaults and validates; only what it accepts reaches a reconciler.
        const stored = structuredClone(obj);
        if (!k.validate(stored)) return;
        accepted++;
        other.validate(otherObj);
        reconcilePure(k.kind, stored, otherObj);
      }),
      budget(k.kind === 'SecretTransformation' || k.kind === 'CSISecrets' ? 120 : 200),
    );
    // The generator must reach the reconcilers, or the property tests nothing.
    process.stderr.write(`fuzz: ${k.kind}: ${accepted} accepted by the schema\n`);
    assert.ok(accepted > 0, `${k.kind}: no generated object passed the schema`);
  });
}

// The stores are filled with objects of the kinds the CSISecrets names, so the check walks its chain.
test('CSISecrets: references resolve through whatever the stores hold', () => {
  const kind = (n: string) => KINDS.find((x) => x.kind === n)!;
  let reached = 0;
  fc.assert(
    fc.property(
      kind('CSISecrets').tame,
      kind('VaultAuth').tame,
      kind('VaultConnection').tame,
      kind('VaultAuthGlobal').tame,
      (cs, auth, conn, global) => {
        const kinds = ['CSISecrets', 'VaultAuth', 'VaultConnection', 'VaultAuthGlobal'].map(kind);
        if (![cs, auth, conn, global].every((o, i) => kinds[i]!.validate(o))) return;
        reached++;
        const fill = <T extends KubeObject>(o: Obj) => {
          const s = createStore<T>();
          s.writer.apply({ type: 'apply', object: o as unknown as T });
          return s.store;
        };
        const verdict = checkCSISecrets(cs as unknown as CSISecrets, {
          operatorNamespace: 'ferry',
          allowDefaultGlobals: true,
          auths: fill<VaultAuth>({
            ...auth,
            metadata: { ...auth.metadata, name: 'default', namespace: 'ferry' },
          }),
          authGlobals: fill<VaultAuthGlobal>(global),
          connections: fill<VaultConnection>({
            ...conn,
            metadata: { ...conn.metadata, name: 'default', namespace: 'ferry' },
          }),
          transformations: createStore<SecretTransformation>().store,
        });
        assert.equal(typeof verdict.ready, 'boolean');
        assert.equal(typeof verdict.message, 'string');
      },
    ),
    budget(400),
  );
  process.stderr.write(`fuzz: CSISecrets chains: ${reached} accepted\n`);
  assert.ok(reached > 0, 'no generated set of objects passed the schemas');
});
