// What `ferry lint` checks in one manifest, without side effects: the CRD schema the apiserver
// enforces (ajv on Ferry's generated CRDs), fields the apiserver would silently prune (with the real
// field when the name comes from a tutorial dialect), Ferry's own spec checks, and settings that are
// valid but costly or fragile. Checks that need the cluster are in lint.ts.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { type Document, isMap, isScalar } from 'yaml';
import { buildCrd, type JsonSchema } from '../api/crd.ts';
import { ALL_KINDS, type KindDefinition } from '../api/kinds.ts';
import { DURATION_PATTERN, DURATION_WITH_DAYS_PATTERN } from '../api/patterns.ts';
import {
  API_VERSION,
  GROUP,
  SecretTransformations,
  VaultAuthGlobals,
  VaultAuths,
  VaultConnections,
} from '../api/resources.ts';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import type { VaultAuthSpec } from '../api/v1beta1/vaultauth.ts';
import type { VaultConnectionSpec } from '../api/v1beta1/vaultconnection.ts';
import {
  type Problem,
  parseRef,
  refreshPeriodMs,
  validateCSISecrets,
  validateTransformation,
  validateVaultAuth,
  validateVaultConnection,
} from '../api/validate.ts';
import { type ResourceType, Secrets } from '../k8s/resources.ts';
import { humanDuration } from './output.ts';

export type Severity = 'error' | 'warning' | 'info';

/** A correction `--fix` applies to the YAML document (comments and order are kept). */
export type Fix = (doc: Document) => void;

export interface RuleFinding {
  severity: Severity;
  /** Stable rule name, e.g. `schema`, `dialect`, `refresh-load`. */
  rule: string;
  /** Field path below the object, e.g. `spec.rolloutRestartTargets[0].name`. */
  field?: string;
  message: string;
  fix?: Fix;
}

/** A Ferry object as lint sees it: kind, name, namespace, spec; only documents of Ferry's group. */
export interface FerryObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
  spec: Record<string, unknown>;
}

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const KINDS = new Map<string, KindDefinition>(ALL_KINDS.map((d) => [d.resource.kind, d]));

interface CompiledKind {
  validate: ValidateFunction;
  schema: JsonSchema;
}
const compiled = new Map<string, CompiledKind>();

/** The CRD schema of a kind, compiled on first use: what the apiserver enforces on create. */
function validator(kind: string): CompiledKind | undefined {
  const cached = compiled.get(kind);
  if (cached) return cached;
  const def = KINDS.get(kind);
  const schema = def ? buildCrd(def).spec.versions[0]?.schema.openAPIV3Schema : undefined;
  if (!schema) return undefined;
  // Defaults first, as the apiserver applies them before it validates.
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: true,
    formats: { int64: true, 'date-time': true },
  });
  const entry = { validate: ajv.compile(schema), schema };
  compiled.set(kind, entry);
  return entry;
}

/** ['spec', 'a', 'b', 0, 'c'] → the apiserver's field notation: spec.a.b[0].c */
const fieldName = (path: (string | number)[]): string =>
  path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');

// ajv's instancePath → the same notation
function fieldOf(e: ErrorObject): string {
  const segments = e.instancePath.split('/').slice(1);
  if (e.keyword === 'required') segments.push(String(e.params.missingProperty));
  return fieldName(segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s)));
}

function schemaMessage(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required':
      return 'is required';
    case 'enum':
      return `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      if (e.params.pattern === DURATION_PATTERN) return 'must be a duration such as 30s, 1.5m or 24h';
      if (e.params.pattern === DURATION_WITH_DAYS_PATTERN) return 'must be a duration such as 30s, 24h or 7d';
      return `must match ${e.params.pattern}`;
    default:
      return e.message ?? e.keyword;
  }
}

export function schemaFindings(obj: unknown, kind: string): RuleFinding[] {
  const v = validator(kind);
  if (!v || v.validate(structuredClone(obj))) return [];
  const seen = new Set<string>();
  const out: RuleFinding[] = [];
  for (const e of v.validate.errors ?? []) {
    // anyOf/oneOf repeat their branches' errors; the branch errors say more.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
    const field = fieldOf(e);
    const message = schemaMessage(e);
    if (seen.has(`${field} ${message}`)) continue;
    seen.add(`${field} ${message}`);
    out.push({ severity: 'error', rule: 'schema', field, message });
  }
  return out;
}

// ── Fields the apiserver would prune ─────────────────────────────────────────────────────────────

interface Dialect {
  /** The real field, named in the message. */
  use: string;
  why: string;
  fix?: (doc: Document, parent: (string | number)[], key: string) => void;
}

/** Renames the key in place, so the field keeps its position and comments. */
function renameKey(to: string): NonNullable<Dialect['fix']> {
  return (doc, parent, key) => {
    const map = parent.length === 0 ? doc.contents : doc.getIn(parent, true);
    if (!isMap(map) || map.has(to)) return;
    const pair = map.items.find((p) => isScalar(p.key) && p.key.value === key);
    if (pair) pair.key = doc.createNode(to);
  };
}

/** Field names that circulate in tutorials and generated manifests, with what VSO's API calls them. */
const DIALECT: Record<string, Dialect> = {
  rollout: {
    use: 'spec.rolloutRestartTargets',
    why: 'Ferry restarts workloads, not pods: list them as rolloutRestartTargets: [{kind: Deployment, name: <workload>}]',
  },
  revocationDuration: {
    use: 'spec.revoke',
    why: 'the lease TTL comes from the Vault role (default_ttl, max_ttl); revoke: true revokes the lease when the resource is deleted, renewalPercent sets when it is renewed',
    fix: (doc, parent, key) => {
      doc.deleteIn([...parent, key]);
      if (!doc.hasIn([...parent, 'revoke'])) doc.setIn([...parent, 'revoke'], true);
    },
  },
  allowedKubernetesNamespaces: {
    use: 'allowedNamespaces',
    why: 'the namespaces whose resources may use this VaultAuth',
    fix: renameKey('allowedNamespaces'),
  },
  tlsSecretRef: {
    use: 'caCertSecretRef',
    why: 'the Secret holding the CA certificate (key ca.crt) that verifies the Vault server',
    fix: renameKey('caCertSecretRef'),
  },
  tokenReviewerServiceAccount: {
    use: 'spec.kubernetes.serviceAccount',
    why: "the ServiceAccount Ferry logs in as; the token reviewer is Vault's auth/kubernetes/config (token_reviewer_jwt), not a VaultAuth field",
    fix: (doc, parent, key) => {
      const target = ['spec', 'kubernetes', 'serviceAccount'];
      if (doc.hasIn(target)) return;
      const value = doc.getIn([...parent, key], true);
      doc.deleteIn([...parent, key]);
      doc.setIn(target, value);
    },
  },
  refreshInterval: {
    use: 'refreshAfter',
    why: 'how often Vault is read again',
    fix: renameKey('refreshAfter'),
  },
};

/** Edit distance, for "did you mean" among a field's siblings. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(
        cur + 1,
        (row[j - 1] ?? 0) + 1,
        prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1),
      );
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

/** Every field the schema does not declare: the apiserver drops these without a word. */
export function unknownFieldFindings(obj: unknown, kind: string): RuleFinding[] {
  const v = validator(kind);
  if (!v || !isObj(obj)) return [];
  const out: RuleFinding[] = [];
  const walk = (value: unknown, schema: JsonSchema, path: (string | number)[]): void => {
    if (Array.isArray(value)) {
      const items = schema.items;
      if (isObj(items)) for (const [i, item] of value.entries()) walk(item, items, [...path, i]);
      return;
    }
    if (!isObj(value)) return;
    const props = schema.properties as Record<string, JsonSchema> | undefined;
    const extra = schema.additionalProperties;
    for (const [key, sub] of Object.entries(value)) {
      const declared = props?.[key];
      if (declared) walk(sub, declared, [...path, key]);
      else if (isObj(extra)) walk(sub, extra, [...path, key]);
      else if (props && extra !== true && !(path.length === 0 && key === 'status')) {
        out.push(unknownField(path, key, Object.keys(props)));
      }
    }
  };
  // metadata is the apiserver's, not the CRD's: only spec (and the top level) are walked.
  const { metadata: _metadata, ...rest } = obj;
  walk(rest, v.schema, []);
  return out;
}

function unknownField(parent: (string | number)[], key: string, siblings: string[]): RuleFinding {
  const field = fieldName([...parent, key]);
  const dialect = DIALECT[key];
  if (dialect) {
    const fix = dialect.fix;
    return {
      severity: 'error',
      rule: 'dialect',
      field,
      message: `"${key}" is not a field of this API (the apiserver drops it): use ${dialect.use} — ${dialect.why}`,
      ...(fix ? { fix: (doc: Document) => fix(doc, parent, key) } : {}),
    };
  }
  const near = siblings
    .map((s) => ({ s, d: distance(key, s) }))
    .filter(({ d }) => d <= Math.max(2, Math.floor(key.length / 4)))
    .sort((a, b) => a.d - b.d)[0];
  return {
    severity: 'error',
    rule: 'unknown-field',
    field,
    message: `unknown field (the apiserver drops it)${near ? `: did you mean "${near.s}"?` : ''}`,
  };
}

// ── Kinds and API versions ───────────────────────────────────────────────────────────────────────

/** Kinds from tutorials, with the kind of VSO's API that does the job. */
const KIND_DIALECT: Record<string, { use: string; why: string }> = {
  VaultSecret: {
    use: 'VaultStaticSecret',
    why: 'KV secrets are VaultStaticSecret (mount, path, type: kv-v2); leased credentials are VaultDynamicSecret',
  },
};

/** The kind and version checks; undefined when the document is not for Ferry at all. */
export function kindFindings(doc: { apiVersion?: unknown; kind?: unknown }): RuleFinding[] | undefined {
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== 'string' || !apiVersion.startsWith(`${GROUP}/`)) return undefined;
  const out: RuleFinding[] = [];
  if (apiVersion !== API_VERSION) {
    out.push({
      severity: 'error',
      rule: 'api-version',
      field: 'apiVersion',
      message: `${apiVersion} is not served: use ${API_VERSION}`,
      fix: (d) => d.set('apiVersion', API_VERSION),
    });
  }
  if (typeof kind === 'string' && KIND_DIALECT[kind]) {
    const { use, why } = KIND_DIALECT[kind];
    out.push({
      severity: 'error',
      rule: 'dialect',
      field: 'kind',
      message: `there is no kind ${kind} in ${API_VERSION}: use ${use} — ${why}`,
      fix: (d) => d.set('kind', use),
    });
  } else if (typeof kind !== 'string' || !KINDS.has(kind)) {
    out.push({
      severity: 'error',
      rule: 'schema',
      field: 'kind',
      message: `unknown kind ${JSON.stringify(kind)}: ${API_VERSION} has ${[...KINDS.keys()].join(', ')}`,
    });
  }
  return out;
}

/** What the kind would be after the kind fix: lint goes on to check the rest against it. */
export function effectiveKind(kind: unknown): string | undefined {
  if (typeof kind !== 'string') return undefined;
  return KIND_DIALECT[kind]?.use ?? (KINDS.has(kind) ? kind : undefined);
}

// ── Ferry's own checks and costly settings ───────────────────────────────────────────────────────

const fromProblems = (problems: Problem[]): RuleFinding[] =>
  problems.map((p) => ({ severity: 'error', rule: 'spec', field: p.field, message: p.message }));

/** Below this, a periodic refresh is a noticeable Vault load for one object. */
const STATIC_REFRESH_FLOOR_MS = 30_000;
/** A VaultDynamicSecret refresh re-reads the path: for most engines a new credential each time. */
const DYNAMIC_REFRESH_FLOOR_MS = 5 * 60_000;

/** The polling period refreshAfter sets, in ms (as the operator floors it); undefined when none. */
function refreshPeriod(o: FerryObject): number | undefined {
  const value = o.spec.refreshAfter;
  if (typeof value !== 'string') return undefined;
  try {
    return refreshPeriodMs(value);
  } catch {
    return undefined; // the schema finding says it
  }
}

/** How often an object makes the operator ask Vault, per hour, from refreshAfter alone. */
export function vaultPollsPerHour(o: FerryObject): number {
  const ms = refreshPeriod(o);
  return ms === undefined || (o.kind !== 'VaultStaticSecret' && o.kind !== 'VaultDynamicSecret')
    ? 0
    : 3_600_000 / ms;
}

function refreshFinding(o: FerryObject): RuleFinding | undefined {
  const ms = refreshPeriod(o);
  if (ms === undefined) return undefined;
  const dynamic = o.kind === 'VaultDynamicSecret';
  const floor = dynamic ? DYNAMIC_REFRESH_FLOOR_MS : STATIC_REFRESH_FLOOR_MS;
  if (ms >= floor) return undefined;
  const perHour = Math.round(vaultPollsPerHour(o));
  const what = dynamic
    ? `${perHour} new credentials an hour (each refresh of a VaultDynamicSecret asks the engine again)`
    : `${perHour} Vault reads an hour for this one object`;
  return {
    severity: 'warning',
    rule: 'refresh-load',
    field: 'spec.refreshAfter',
    message: `refreshAfter ${String(o.spec.refreshAfter)} means ${what}; use at least ${humanDuration(floor)}${
      dynamic
        ? ', or leave it unset and let the lease drive renewal'
        : ', or instant updates (spec.syncConfig.instantUpdates, docs/instant-updates.md)'
    }`,
  };
}

/** The object-local checks after the schema passed (the spec then has the declared types). */
export function specFindings(o: FerryObject): RuleFinding[] {
  const out: RuleFinding[] = [];
  switch (o.kind) {
    case 'VaultConnection':
      out.push(...fromProblems(validateVaultConnection(o.spec as unknown as VaultConnectionSpec)));
      break;
    case 'VaultAuth': {
      const spec = o.spec as unknown as VaultAuthSpec;
      // Method and mount may come from a VaultAuthGlobal; only a standalone VaultAuth is checked whole.
      if (!spec.vaultAuthGlobalRef) out.push(...fromProblems(validateVaultAuth(spec)));
      break;
    }
    case 'CSISecrets': {
      const spec = o.spec as unknown as CSISecretsSpec;
      out.push(...fromProblems(validateCSISecrets(spec)));
      const ac = spec.accessControl;
      const podRules = (ac.podNamePatterns ?? []).length > 0 || Object.keys(ac.podLabels ?? {}).length > 0;
      if (ac.matchPolicy === 'any' && (ac.namespacePatterns ?? []).length > 0 && podRules) {
        out.push({
          severity: 'warning',
          rule: 'csi-namespaces',
          field: 'spec.accessControl.matchPolicy',
          message:
            'any: a pod in a namespace of namespacePatterns is admitted whatever its name and labels, and its name and labels never admit it from another namespace (VSO lets them), so podNamePatterns and podLabels have no effect; use matchPolicy all',
        });
      }
      break;
    }
    case 'VaultStaticSecret':
    case 'VaultDynamicSecret':
    case 'VaultPKISecret': {
      const dest = o.spec.destination;
      if (isObj(dest)) {
        out.push(
          ...fromProblems(
            validateTransformation('spec.destination.transformation', dest.transformation as never),
          ),
        );
      }
      const refresh = refreshFinding(o);
      if (refresh) out.push(refresh);
      break;
    }
  }
  return out;
}

/** The destination Secret a `create: false` object expects to exist. */
export function expectedSecret(o: FerryObject): string | undefined {
  const dest = o.spec.destination;
  return isObj(dest) && dest.create === false && typeof dest.name === 'string' ? dest.name : undefined;
}

/** An object a manifest refers to by name. */
export interface Reference {
  field: string;
  kind: 'VaultAuth' | 'VaultConnection' | 'VaultAuthGlobal' | 'SecretTransformation' | 'Secret';
  namespace: string;
  name: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * What `o` refers to, resolved as the operator resolves it: `"<ns>/<name>"` or `"<name>"` (the
 * object's namespace); an empty VaultAuth/VaultConnection reference means `default` in the operator
 * namespace, listed only when that namespace is known.
 */
export function references(
  o: FerryObject,
  namespace: string,
  operatorNamespace: string | undefined,
): Reference[] {
  const out: Reference[] = [];
  const byString = (field: string, kind: Reference['kind'], value: unknown): void => {
    const v = str(value);
    if (v === undefined && operatorNamespace === undefined) return;
    try {
      const r = parseRef(v, { namespace, operatorNamespace: operatorNamespace ?? '' });
      out.push({ field, kind, ...r });
    } catch {
      // an invalid reference string is the spec check's finding
    }
  };
  const byObject = (field: string, kind: Reference['kind'], value: unknown): void => {
    if (!isObj(value) || !str(value.name)) return;
    out.push({
      field: `${field}.name`,
      kind,
      namespace: str(value.namespace) ?? namespace,
      name: value.name as string,
    });
  };
  const spec = o.spec;
  switch (o.kind) {
    case 'VaultStaticSecret':
    case 'VaultDynamicSecret':
    case 'VaultPKISecret':
      byString('spec.vaultAuthRef', 'VaultAuth', spec.vaultAuthRef);
      break;
    case 'CSISecrets':
      if (spec.vaultAuthRef === undefined) byString('spec.vaultAuthRef', 'VaultAuth', undefined);
      else byObject('spec.vaultAuthRef', 'VaultAuth', spec.vaultAuthRef);
      break;
    case 'VaultAuth':
      // With a VaultAuthGlobal, the connection may come from it.
      if (!isObj(spec.vaultAuthGlobalRef) || spec.vaultConnectionRef) {
        byString('spec.vaultConnectionRef', 'VaultConnection', spec.vaultConnectionRef);
      }
      byObject('spec.vaultAuthGlobalRef', 'VaultAuthGlobal', spec.vaultAuthGlobalRef);
      break;
    case 'VaultConnection':
      if (str(spec.caCertSecretRef)) {
        out.push({
          field: 'spec.caCertSecretRef',
          kind: 'Secret',
          namespace,
          name: spec.caCertSecretRef as string,
        });
      }
      break;
  }
  const refs =
    isObj(spec.destination) && isObj(spec.destination.transformation)
      ? spec.destination.transformation.transformationRefs
      : undefined;
  if (Array.isArray(refs)) {
    for (const [i, r] of refs.entries()) {
      byObject(`spec.destination.transformation.transformationRefs[${i}]`, 'SecretTransformation', r);
    }
  }
  return out;
}

/** Where each kind of reference lives in the API. */
export const REFERENCE_RESOURCES: Record<Reference['kind'], ResourceType> = {
  VaultAuth: VaultAuths,
  VaultConnection: VaultConnections,
  VaultAuthGlobal: VaultAuthGlobals,
  SecretTransformation: SecretTransformations,
  Secret: Secrets,
};

export interface RolloutTarget {
  kind: string;
  name: string;
}

export function rolloutTargets(o: FerryObject): RolloutTarget[] {
  const list = o.spec.rolloutRestartTargets;
  return Array.isArray(list)
    ? list.filter(
        (t): t is RolloutTarget => isObj(t) && typeof t.kind === 'string' && typeof t.name === 'string',
      )
    : [];
}
