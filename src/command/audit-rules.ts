// The pure half of `ferry audit`: which Vault paths a resource uses, which paths are worth asking
// Vault about, which namespace and environment a path belongs to, and the findings from the
// capabilities Vault reports. No I/O here; audit.ts asks Vault and the cluster.

import { requestMethod, requestPath } from '../vault/dynamic.ts';
import type { KVType } from '../vault/kv.ts';
import { kvReadPath } from '../vault/kv.ts';
import { issuePath } from '../vault/pki.ts';

/** What a resource needs on a path: `read` (GET) or `update` (PUT/POST: issue, credentials with params). */
export type Need = 'read' | 'update';

export interface PathUse {
  path: string;
  need: Need;
}

type Spec = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const arr = (v: unknown): Spec[] =>
  Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x) as Spec[]) : [];

/** A path builder's refusal (empty mount or path) leaves the entry out: lint reports it. */
function attempt(out: PathUse[], need: Need, build: () => string): void {
  try {
    out.push({ path: build(), need });
  } catch {
    // invalid spec, nothing Vault would be asked
  }
}

function kvUse(out: PathUse[], s: Spec): void {
  const type: KVType = s.type === 'kv-v1' ? 'kv-v1' : 'kv-v2';
  attempt(out, 'read', () => kvReadPath({ mount: str(s.mount), path: str(s.path), type }));
}

function dynamicUse(out: PathUse[], s: Spec): void {
  const params = s.params as Record<string, string> | undefined;
  const method = requestMethod({ requestHTTPMethod: str(s.requestHTTPMethod), params });
  attempt(out, method === 'GET' ? 'read' : 'update', () => requestPath(str(s.mount), str(s.path)));
}

function pkiUse(out: PathUse[], s: Spec): void {
  const issuerRef = str(s.issuerRef) || undefined;
  attempt(out, 'update', () => issuePath({ mount: str(s.mount), role: str(s.role), issuerRef }));
}

/** The Vault paths a VaultStaticSecret, VaultDynamicSecret, VaultPKISecret or CSISecrets requests,
 * built by the same functions the operator requests them with. */
export function pathUses(kind: string, spec: Spec): PathUse[] {
  const out: PathUse[] = [];
  if (kind === 'VaultStaticSecret') kvUse(out, spec);
  else if (kind === 'VaultDynamicSecret') dynamicUse(out, spec);
  else if (kind === 'VaultPKISecret') pkiUse(out, spec);
  else if (kind === 'CSISecrets') {
    const s = (spec.secrets ?? {}) as Spec;
    for (const x of arr(s.vaultStaticSecrets)) kvUse(out, x);
    for (const x of arr(s.vaultDynamicSecrets)) dynamicUse(out, x);
    for (const x of arr(s.vaultPKISecrets)) pkiUse(out, x);
    for (const x of arr(s.vaultAppRoleSecretIDs)) {
      const base = `auth/${str(x.mount).replace(/^\/+|\/+$/g, '')}/role/${str(x.role)}`;
      if (x.mount && x.role) {
        out.push({ path: `${base}/secret-id`, need: 'update' });
        if (x.syncRoleID) out.push({ path: `${base}/role-id`, need: 'read' });
      }
    }
  }
  return out;
}

// ---- environments -------------------------------------------------------------------------------

/** The default environments and the words that name them in namespace names and path segments. */
const DEFAULT_ENVIRONMENTS: Readonly<Record<string, readonly string[]>> = {
  prod: ['prod', 'production', 'prd', 'live'],
  staging: ['staging', 'stage', 'stg', 'preprod', 'uat'],
  test: ['test', 'testing', 'qa'],
  dev: ['dev', 'development', 'sandbox'],
};

export interface EnvironmentMap {
  /** Environment → the words that name it. */
  environments: Record<string, readonly string[]>;
  /** Namespace (or `*` glob) → environment, before any word match. */
  namespaces: Record<string, string>;
}

export const defaultEnvironmentMap = (): EnvironmentMap => ({
  environments: { ...DEFAULT_ENVIRONMENTS },
  namespaces: {},
});

const globRe = (glob: string): RegExp =>
  new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);

/** The environment a word-list names: each `-`, `_`, `.` separated word is looked up. */
function environmentOfWords(text: string, map: EnvironmentMap): string | undefined {
  const words = text.toLowerCase().split(/[-_.]/);
  for (const w of words) {
    for (const [env, names] of Object.entries(map.environments)) {
      if (names.includes(w) || w === env) return env;
    }
  }
  return undefined;
}

/** A namespace's environment: an explicit mapping (exact name first, then globs in order), else the
 * first word of its name that names an environment (`shop-prod` → prod), else unknown. */
export function namespaceEnvironment(namespace: string, map: EnvironmentMap): string | undefined {
  const exact = map.namespaces[namespace];
  if (exact !== undefined) return exact;
  for (const [glob, env] of Object.entries(map.namespaces)) {
    if (glob.includes('*') && globRe(glob).test(namespace)) return env;
  }
  return environmentOfWords(namespace, map);
}

/** A path's environment: the first segment (the mount's name included) with a word that names one:
 * `kv/data/prod/db` and `kv-prod/data/db` are prod. */
export function pathEnvironment(path: string, map: EnvironmentMap): string | undefined {
  for (const seg of path.split('/')) {
    if (seg === '') continue;
    const env = environmentOfWords(seg, map);
    if (env) return env;
  }
  return undefined;
}

/** Parses `--environments FILE` (YAML or JSON): `namespaces: {NS|GLOB: ENV}` and, replacing the
 * defaults, `environments: {ENV: [WORD...]}`. Returns the problems instead of throwing. */
export function parseEnvironmentMap(doc: unknown): { map: EnvironmentMap; problems: string[] } {
  const map = defaultEnvironmentMap();
  const problems: string[] = [];
  if (doc === null || doc === undefined) return { map, problems };
  if (typeof doc !== 'object' || Array.isArray(doc)) return { map, problems: ['must be a mapping'] };
  const d = doc as Spec;
  for (const key of Object.keys(d)) {
    if (key !== 'namespaces' && key !== 'environments')
      problems.push(`unknown key "${key}" (namespaces, environments)`);
  }
  if (d.environments !== undefined) {
    if (typeof d.environments !== 'object' || d.environments === null || Array.isArray(d.environments)) {
      problems.push('environments: must map an environment to a list of words');
    } else {
      map.environments = {};
      for (const [env, words] of Object.entries(d.environments as Spec)) {
        if (!Array.isArray(words) || !words.every((w) => typeof w === 'string'))
          problems.push(`environments.${env}: must be a list of words`);
        else map.environments[env] = (words as string[]).map((w) => w.toLowerCase());
      }
    }
  }
  if (d.namespaces !== undefined) {
    if (typeof d.namespaces !== 'object' || d.namespaces === null || Array.isArray(d.namespaces)) {
      problems.push('namespaces: must map a namespace to an environment');
    } else {
      for (const [ns, env] of Object.entries(d.namespaces as Spec)) {
        if (typeof env !== 'string') problems.push(`namespaces.${ns}: must be an environment name`);
        else map.namespaces[ns] = env;
      }
    }
  }
  return { map, problems };
}

// ---- candidate paths ----------------------------------------------------------------------------

export interface KvMount {
  /** Without trailing slash. */
  mount: string;
  version: 1 | 2;
}

/** A folder (`…/`) covers every path under it, as a policy's `…/*` glob does. */
const isFolder = (path: string): boolean => path.endsWith('/');

export function covers(candidate: string, path: string): boolean {
  return isFolder(candidate) ? path.startsWith(candidate) : candidate === path;
}

/** The data (and for kv-v2, metadata) paths of a KV folder or key, as listed under a mount. */
export function kvPaths(m: KvMount, key: string): string[] {
  if (m.version === 1) return [`${m.mount}/${key}`];
  return isFolder(key) || key === ''
    ? [`${m.mount}/data/${key}`, `${m.mount}/metadata/${key}`]
    : [`${m.mount}/data/${key}`];
}

/**
 * Probes of folders where other namespaces and environments usually keep their secrets: for each
 * KV mount, `<namespace>/` and `<environment word>/` at the top, and the mount's root. A policy
 * that reaches one of them shows in `sys/capabilities-self` even when nothing there is listed.
 */
export function folderProbes(mounts: readonly KvMount[], words: readonly string[]): string[] {
  const out = new Set<string>();
  for (const m of mounts) {
    for (const p of kvPaths(m, '')) out.add(p);
    for (const w of words) for (const p of kvPaths(m, `${w}/`)) out.add(p);
  }
  return [...out];
}

/** The folders under which other secrets engines hand out credentials and certificates (database
 * `creds/`, `static-creds/`; PKI `issue/`, `sign/`; AWS `creds/`, `sts/`), and the mount itself: a
 * role that may request any of them shows here even when no resource in the cluster names one. */
export function engineProbes(mounts: readonly string[]): string[] {
  return mounts.flatMap((m) =>
    ['', 'creds/', 'static-creds/', 'sts/', 'issue/', 'sign/'].map((f) => `${m}/${f}`),
  );
}

/** Paths of policy rules (HCL or JSON), with their capabilities. */
export interface PolicyRule {
  path: string;
  capabilities: string[];
}

export function parsePolicy(text: string): PolicyRule[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const doc = JSON.parse(trimmed) as { path?: Record<string, { capabilities?: unknown }> };
      return Object.entries(doc.path ?? {}).map(([path, r]) => ({
        path,
        capabilities: Array.isArray(r.capabilities) ? r.capabilities.map(String) : [],
      }));
    } catch {
      return [];
    }
  }
  const out: PolicyRule[] = [];
  for (const m of trimmed.matchAll(/path\s+"([^"]+)"\s*\{([^}]*)\}/g)) {
    const caps = /capabilities\s*=\s*\[([^\]]*)\]/.exec(m[2] ?? '')?.[1] ?? '';
    out.push({ path: m[1] ?? '', capabilities: [...caps.matchAll(/"([^"]+)"/g)].map((c) => c[1] ?? '') });
  }
  return out;
}

/** The concrete paths to ask about for a policy path pattern: a trailing `*` becomes the folder (or
 * prefix) it globs, a `+` segment each of `words` (namespaces and environment words). */
export function policyProbes(pattern: string, words: readonly string[], limit = 100): string[] {
  const segs = (pattern.endsWith('*') ? pattern.slice(0, -1) : pattern).split('/');
  // One pass over the pattern's segments: a word is never expanded again, whatever it holds.
  let paths: string[][] = [[]];
  for (const seg of segs) {
    paths = (
      seg === '+' ? paths.flatMap((p) => words.map((w) => [...p, w])) : paths.map((p) => [...p, seg])
    ).slice(0, limit);
  }
  return paths.map((p) => p.join('/')).filter((p) => p !== '');
}

// ---- findings -----------------------------------------------------------------------------------

export type Severity = 'error' | 'warning' | 'info';
export type Rule = 'other-namespace' | 'other-environment' | 'beyond-own' | 'own-folder' | 'write';

const WRITE_CAPS = new Set(['create', 'update', 'patch', 'delete', 'root', 'sudo']);

const canWrite = (caps: readonly string[]): boolean => caps.some((c) => WRITE_CAPS.has(c));
const grantsAnything = (caps: readonly string[]): boolean =>
  caps.length > 0 && !caps.every((c) => c === 'deny');

export interface AuditSubject {
  namespace: string;
  environment: string | undefined;
  /** The paths the namespace's own resources use (through this VaultAuth or any other). */
  uses: readonly PathUse[];
}

export interface World {
  /** Every path a resource in the cluster uses, with the namespaces that use it. */
  usedBy: ReadonlyMap<string, ReadonlySet<string>>;
  /** Namespaces of the cluster: a path segment equal to one attributes the path to it. */
  namespaces: ReadonlySet<string>;
  environments: EnvironmentMap;
}

export interface PathReport {
  path: string;
  capabilities: string[];
  /** Used by the subject's own resources. */
  own: boolean;
  /** Other namespaces whose paths this reaches. */
  namespaces: string[];
  /** Environments this reaches other than the subject's. */
  environments: string[];
  /** Granted paths under this folder with the same capabilities, folded into it. */
  includes?: string[];
  finding?: { severity: Severity; rule: Rule; message: string };
}

/** Where a layout names a namespace: the mount (`team-a/…`) or the first folder under it
 * (`kv/team-a/…`, `kv/data/team-a/…`). Deeper segments are secret names, not owners. */
export function namespaceSegments(path: string): string[] {
  const [mount = '', first = '', second = ''] = path.split('/');
  return [mount, first === 'data' || first === 'metadata' ? second : first].filter((s) => s !== '');
}

/** What a capability grants in words, for messages. */
function access(caps: readonly string[]): string {
  const read = caps.some((c) => c === 'read' || c === 'root' || c === 'sudo');
  const list = caps.includes('list');
  const words = [read ? 'read' : list ? 'list' : '', canWrite(caps) ? 'write' : ''].filter((w) => w);
  return words.join(' and ') || 'access';
}

/** `a, b, c and 4 more`: a finding stays one line however many namespaces a glob reaches. */
function some(items: readonly string[], max = 3): string {
  return items.length <= max
    ? items.join(', ')
    : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/**
 * Judges one path the subject's token has capabilities on. Reaching another namespace's or another
 * environment's paths is an error; anything else beyond what its resources use is a warning, except
 * its own namespace's folder (`kv/data/<ns>/…`), which is reported as info; write access to a path
 * its resources only read is a warning.
 */
export function judgePath(
  subject: AuditSubject,
  path: string,
  caps: string[],
  world: World,
  /** Other granted paths under this folder, folded into it (their namespaces and environments count). */
  alsoCovers: readonly string[] = [],
): PathReport {
  const ownUse = subject.uses.filter((u) => u.path === path);
  const covered = [...world.usedBy].filter(([p]) => covers(path, p));
  const owners = new Set<string>();
  for (const [, nss] of covered) for (const ns of nss) owners.add(ns);
  const all = [path, ...alsoCovers, ...covered.map(([p]) => p)];
  for (const p of all) {
    const folder = namespaceSegments(p);
    for (const ns of world.namespaces) if (folder.includes(ns)) owners.add(ns);
  }
  const others = [...owners].filter((ns) => ns !== subject.namespace).sort();
  const envs = new Set<string>();
  for (const p of all) {
    const e = pathEnvironment(p, world.environments);
    if (e) envs.add(e);
  }
  for (const ns of owners) {
    const e = namespaceEnvironment(ns, world.environments);
    if (e && ns !== subject.namespace) envs.add(e);
  }
  const otherEnvs =
    subject.environment === undefined ? [] : [...envs].filter((e) => e !== subject.environment).sort();
  const report: PathReport = {
    path,
    capabilities: caps,
    own: ownUse.length > 0,
    namespaces: others,
    environments: otherEnvs,
    ...(alsoCovers.length > 0 ? { includes: [...alsoCovers] } : {}),
  };
  const what = access(caps);
  if (others.length > 0) {
    const alsoEnv = otherEnvs.length > 0 ? ` (${otherEnvs.join(', ')})` : '';
    report.finding = {
      severity: 'error',
      rule: 'other-namespace',
      message: `${what} on paths of namespace${others.length > 1 ? 's' : ''} ${some(others)}${alsoEnv}`,
    };
  } else if (otherEnvs.length > 0) {
    report.finding = {
      severity: 'error',
      rule: 'other-environment',
      message: `${what} on ${otherEnvs.join(', ')} paths from a ${subject.environment} namespace`,
    };
  } else if (ownUse.length > 0) {
    if (ownUse.every((u) => u.need === 'read') && canWrite(caps)) {
      report.finding = {
        severity: 'warning',
        rule: 'write',
        message: `may ${caps.filter((c) => WRITE_CAPS.has(c)).join(', ')} a path its resources only read`,
      };
    }
  } else if (owners.has(subject.namespace) && !canWrite(caps)) {
    report.finding = {
      severity: 'info',
      rule: 'own-folder',
      message: `${what} in its own namespace's folder beyond the paths its resources use`,
    };
  } else {
    report.finding = {
      severity: 'warning',
      rule: 'beyond-own',
      message: `${what} on a path none of its resources use`,
    };
  }
  return report;
}

/**
 * Judges every path the token has capabilities on, folding a path into the granted folder above it
 * when both have the same capabilities (the folder's glob is what grants it): one line per grant,
 * not one per probe. Paths its resources use are always kept.
 */
export function judgePaths(
  subject: AuditSubject,
  granted: ReadonlyMap<string, string[]>,
  world: World,
): PathReport[] {
  const own = new Set(subject.uses.map((u) => u.path));
  const same = (a: readonly string[], b: readonly string[]): boolean =>
    a.length === b.length && a.every((c) => b.includes(c));
  const entries = [...granted].filter(([, c]) => grantsAnything(c)).sort(([a], [b]) => a.localeCompare(b));
  const parentOf = new Map<string, string>();
  for (const [path, caps] of entries) {
    if (own.has(path)) continue;
    // The shortest granted folder above it with the same capabilities.
    const parent = entries.find(([f, c]) => f !== path && isFolder(f) && covers(f, path) && same(c, caps));
    if (parent) parentOf.set(path, parent[0]);
  }
  const children = new Map<string, string[]>();
  for (const [child, parent] of parentOf) children.set(parent, [...(children.get(parent) ?? []), child]);
  return entries
    .filter(([path]) => !parentOf.has(path))
    .map(([path, caps]) => judgePath(subject, path, caps, world, children.get(path) ?? []));
}
