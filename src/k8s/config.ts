import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CODES, errorMessage, FerryError } from '../errors.ts';

/** Everything KubeClient needs to reach and authenticate to one apiserver. */
export interface KubeConnection {
  server: string;
  caPem?: string;
  /** A static bearer token. */
  token?: string;
  /** A bearer token file, re-read periodically because projected tokens rotate. */
  tokenFile?: string;
  certPem?: string;
  keyPem?: string;
  insecureSkipTLSVerify?: boolean;
  /** The namespace of the current context (or the pod's namespace in-cluster); 'default' otherwise. */
  namespace: string;
}

export interface LoadOptions {
  /** An explicit kubeconfig path; wins over $KUBECONFIG and ~/.kube/config. */
  kubeconfig?: string;
  /** A context name overriding current-context. */
  context?: string;
  /** The process environment; defaults to process.env at call time. */
  env?: Record<string, string | undefined>;
  /** The service account directory of in-cluster config; overridable for tests. */
  serviceAccountDir?: string;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Resolves the connection: an explicit kubeconfig, then $KUBECONFIG (a path list, merged with
 * first-wins semantics as kubectl does), then ~/.kube/config if it exists, else in-cluster config.
 */
export function loadKubeConnection(opts: LoadOptions = {}): KubeConnection {
  const env = opts.env ?? process.env;
  if (opts.kubeconfig !== undefined) return fromKubeconfigFiles([opts.kubeconfig], opts.context);
  const list = env.KUBECONFIG?.split(':').filter((p) => p !== '');
  if (list !== undefined && list.length > 0) return fromKubeconfigFiles(list, opts.context);
  const home = env.HOME ?? env.USERPROFILE;
  if (home !== undefined) {
    const path = join(home, '.kube', 'config');
    if (readOptional(path) !== undefined) return fromKubeconfigFiles([path], opts.context);
  }
  if (env.KUBERNETES_SERVICE_HOST !== undefined) return loadInCluster(env, opts.serviceAccountDir);
  throw new FerryError(
    CODES.KUBECONFIG,
    'no kubeconfig found ($KUBECONFIG, ~/.kube/config) and not running in a cluster',
  );
}

/** In-cluster config from the service account mount and KUBERNETES_SERVICE_HOST/PORT. */
export function loadInCluster(
  env: Record<string, string | undefined> = process.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new FerryError(CODES.KUBECONFIG, 'in-cluster config needs KUBERNETES_SERVICE_HOST and _PORT');
  }
  const tokenFile = join(dir, 'token');
  // Read once now so a missing mount fails at startup rather than on the first request.
  readRequired(tokenFile, 'service account token');
  const conn: KubeConnection = {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    tokenFile,
    caPem: readRequired(join(dir, 'ca.crt'), 'service account CA'),
    namespace: readOptional(join(dir, 'namespace'))?.trim() || 'default',
  };
  return conn;
}

interface Named<T> {
  name: string;
  value: T;
}
interface KubeconfigCluster {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
}
interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: string;
}
interface KubeconfigContext {
  cluster?: string;
  user?: string;
  namespace?: string;
}

interface Merged {
  currentContext?: string;
  clusters: Map<string, { value: KubeconfigCluster; dir: string }>;
  users: Map<string, { value: KubeconfigUser; dir: string }>;
  contexts: Map<string, KubeconfigContext>;
}

/** Parses and merges kubeconfig files (first file to define a name or current-context wins). */
function fromKubeconfigFiles(paths: string[], context?: string): KubeConnection {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map() };
  let found = 0;
  for (const p of paths) {
    const path = resolve(p);
    // kubectl skips missing entries of a $KUBECONFIG list; an explicit single path must exist.
    const text = paths.length === 1 ? readRequired(path, 'kubeconfig') : readOptional(path);
    if (text === undefined) continue;
    found++;
    mergeInto(merged, parseDoc(text, path), dirname(path));
  }
  if (found === 0)
    throw new FerryError(CODES.KUBECONFIG, `none of the kubeconfig files exist: ${paths.join(':')}`);
  return resolveContext(merged, context);
}

/** Parses one kubeconfig document; `baseDir` resolves relative file references. */
export function fromKubeconfigText(text: string, baseDir: string, context?: string): KubeConnection {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map() };
  mergeInto(merged, parseDoc(text, '<inline>'), baseDir);
  return resolveContext(merged, context);
}

interface Doc {
  currentContext?: string;
  clusters: Named<KubeconfigCluster>[];
  users: Named<KubeconfigUser>[];
  contexts: Named<KubeconfigContext>[];
}

// The YAML parser (72 modules, ~5 MB of RSS) is loaded on first use: a pod runs in-cluster and
// never reads a kubeconfig (docs/memory.md).
let yamlParse: ((text: string) => unknown) | undefined;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse;
  return yamlParse(text);
}

function parseDoc(text: string, source: string): Doc {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new FerryError(CODES.KUBECONFIG, `${source}: not valid YAML: ${errorMessage(err)}`);
  }
  if (raw === null || raw === undefined) return { clusters: [], users: [], contexts: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FerryError(CODES.KUBECONFIG, `${source}: kubeconfig must be a mapping`);
  }
  const doc = raw as Record<string, unknown>;
  const out: Doc = {
    clusters: namedList(doc.clusters, 'cluster', source),
    users: namedList(doc.users, 'user', source),
    contexts: namedList(doc.contexts, 'context', source),
  };
  const cc = doc['current-context'];
  if (typeof cc === 'string' && cc !== '') out.currentContext = cc;
  return out;
}

function namedList<T>(v: unknown, field: string, source: string): Named<T>[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FerryError(CODES.KUBECONFIG, `${source}: ${field}s must be a list`);
  return v.map((entry: unknown) => {
    const e = entry as Record<string, unknown> | null;
    if (typeof e?.name !== 'string') {
      throw new FerryError(CODES.KUBECONFIG, `${source}: every ${field} needs a name`);
    }
    const value = e[field] ?? {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new FerryError(CODES.KUBECONFIG, `${source}: ${field} ${e.name} must be a mapping`);
    }
    return { name: e.name, value: value as T };
  });
}

function mergeInto(m: Merged, doc: Doc, dir: string): void {
  if (m.currentContext === undefined && doc.currentContext !== undefined)
    m.currentContext = doc.currentContext;
  for (const c of doc.clusters) if (!m.clusters.has(c.name)) m.clusters.set(c.name, { value: c.value, dir });
  for (const u of doc.users) if (!m.users.has(u.name)) m.users.set(u.name, { value: u.value, dir });
  for (const c of doc.contexts) if (!m.contexts.has(c.name)) m.contexts.set(c.name, c.value);
}

function resolveContext(m: Merged, override: string | undefined): KubeConnection {
  const name = override ?? m.currentContext;
  if (name === undefined) throw new FerryError(CODES.KUBECONFIG, 'kubeconfig has no current-context');
  const ctx = m.contexts.get(name);
  if (ctx === undefined) throw new FerryError(CODES.KUBECONFIG, `kubeconfig context ${name} not found`);
  const cluster = ctx.cluster === undefined ? undefined : m.clusters.get(ctx.cluster);
  if (cluster === undefined) {
    throw new FerryError(
      CODES.KUBECONFIG,
      `kubeconfig context ${name}: cluster ${ctx.cluster ?? ''} not found`,
    );
  }
  const c = cluster.value;
  if (typeof c.server !== 'string' || c.server === '') {
    throw new FerryError(CODES.KUBECONFIG, `kubeconfig cluster ${ctx.cluster}: server is missing`);
  }
  const conn: KubeConnection = {
    server: c.server.replace(/\/+$/, ''),
    namespace: ctx.namespace || 'default',
  };
  const ca = dataOrFile(c['certificate-authority-data'], c['certificate-authority'], cluster.dir, 'CA');
  if (ca !== undefined) conn.caPem = ca;
  if (c['insecure-skip-tls-verify'] === true) conn.insecureSkipTLSVerify = true;

  // A context may legitimately have no user (e.g. an unauthenticated local apiserver).
  if (ctx.user !== undefined && ctx.user !== '') {
    const user = m.users.get(ctx.user);
    if (user === undefined) throw new FerryError(CODES.KUBECONFIG, `kubeconfig user ${ctx.user} not found`);
    const u = user.value;
    if (u.exec !== undefined || u['auth-provider'] !== undefined) {
      throw new FerryError(
        CODES.KUBECONFIG,
        `kubeconfig user ${ctx.user}: exec and auth-provider are not supported`,
      );
    }
    if (typeof u.token === 'string' && u.token !== '') conn.token = u.token;
    else if (typeof u.tokenFile === 'string' && u.tokenFile !== '')
      conn.tokenFile = abs(u.tokenFile, user.dir);
    const cert = dataOrFile(
      u['client-certificate-data'],
      u['client-certificate'],
      user.dir,
      'client certificate',
    );
    const key = dataOrFile(u['client-key-data'], u['client-key'], user.dir, 'client key');
    if ((cert === undefined) !== (key === undefined)) {
      throw new FerryError(
        CODES.KUBECONFIG,
        `kubeconfig user ${ctx.user}: client certificate and key go together`,
      );
    }
    if (cert !== undefined && key !== undefined) {
      conn.certPem = cert;
      conn.keyPem = key;
    }
  }
  return conn;
}

// `*-data` fields are base64 PEM and win over file references, as in client-go.
function dataOrFile(data: unknown, file: unknown, dir: string, what: string): string | undefined {
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64').toString('utf8');
  if (typeof file === 'string' && file !== '') return readRequired(abs(file, dir), what);
  return undefined;
}

function abs(p: string, dir: string): string {
  return isAbsolute(p) ? p : resolve(dir, p);
}

function readRequired(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FerryError(CODES.KUBECONFIG, `cannot read ${what} ${path}`, { cause: err });
  }
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
