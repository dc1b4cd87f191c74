// What end-to-end tests and the demo do to the real stack: administer Vault with the root token,
// apply manifests with the admin identity, and wait for conditions. Never a stand-in for either.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { Agent, request } from 'undici';
import { parseAllDocuments } from 'yaml';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { loadKubeConnection } from '../../src/k8s/config.ts';
import type { ResourceType } from '../../src/k8s/resources.ts';
import * as builtin from '../../src/k8s/resources.ts';
import { apiVersionOf } from '../../src/k8s/resources.ts';
import type { CoreEvent, KubeObject, Secret } from '../../src/k8s/types.ts';
import { operatorLog } from './operator-log.ts';
import { eventually } from './proc.ts';
import type { StackEnv } from './stack.ts';

/** Where a VaultAdmin points: the stack's server by default, or a private dev server. */
export interface VaultTarget {
  addr: string;
  token: string;
  caPem?: string;
}

export class VaultAdmin {
  readonly #env: StackEnv;
  readonly #target: VaultTarget;
  readonly #agent: Agent | undefined;
  constructor(env: StackEnv, target?: VaultTarget) {
    this.#env = env;
    this.#target = target ?? { addr: env.vaultAddr, token: env.vaultToken };
    this.#agent = this.#target.caPem ? new Agent({ connect: { ca: this.#target.caPem } }) : undefined;
  }

  async call(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown> | undefined> {
    const res = await request(`${this.#target.addr}/v1/${path}`, {
      method,
      headers: { 'x-vault-token': this.#target.token, 'content-type': 'application/json' },
      ...(this.#agent ? { dispatcher: this.#agent } : {}),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300 && !(method === 'GET' && res.statusCode === 404)) {
      throw new Error(`${this.#env.flavor} ${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
    }
    return text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  }

  /** Vault CE: an audit device that never fails, so that requests go on while the socket device
   * cannot write (OpenBao takes it from its configuration instead: stack.ts). */
  async enableAlwaysAudit(): Promise<void> {
    await this.call('PUT', 'sys/audit/always', { type: 'file', options: { file_path: 'discard' } });
  }

  /** Vault CE: the socket audit device for the operator's listener, which must be listening. */
  async enableAuditStream(port: number): Promise<void> {
    await this.call('PUT', 'sys/audit/ferry', {
      type: 'socket',
      options: { address: `127.0.0.1:${port}`, socket_type: 'tcp', write_timeout: '1s' },
    });
  }

  /** Kubernetes auth pointed at the stack's API server (TokenReview as the reviewer identity), and
   * the KV mounts the tests use. */
  async setup(): Promise<void> {
    const mount = this.#env.vaultKubernetesMount;
    await this.call('POST', `sys/auth/${mount}`, { type: 'kubernetes' });
    await this.call('POST', `auth/${mount}/config`, {
      kubernetes_host: this.#env.apiServer,
      kubernetes_ca_cert: readFileSync(this.#env.caFile, 'utf8'),
      token_reviewer_jwt: this.#env.reviewerToken,
      disable_local_ca_jwt: true,
    });
    await this.call('POST', 'sys/mounts/kvv1', { type: 'kv', options: { version: '1' } });
    await this.call('POST', 'sys/mounts/kvv2', { type: 'kv', options: { version: '2' } });
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }

  policy(name: string, hcl: string): Promise<unknown> {
    return this.call('PUT', `sys/policies/acl/${name}`, { policy: hcl });
  }

  /** A Kubernetes auth role bound to one ServiceAccount, with a periodic token (VSO #285 advice). */
  kubernetesRole(
    name: string,
    o: {
      serviceAccount: string | string[];
      namespace: string;
      policies: string[];
      audience?: string;
      period?: string;
    },
  ): Promise<unknown> {
    return this.call('POST', `auth/${this.#env.vaultKubernetesMount}/role/${name}`, {
      bound_service_account_names: [o.serviceAccount].flat(),
      bound_service_account_namespaces: [o.namespace],
      token_policies: o.policies,
      token_period: o.period ?? '1h',
      ...(o.audience ? { audience: o.audience } : {}),
    });
  }

  /** A database secrets engine at `mount`: connection `pg` to the stack's PostgreSQL and role `dyn`,
   * which creates login roles with these TTLs. */
  async postgresEngine(mount: string, ttl: { defaultTtl: string; maxTtl: string }): Promise<void> {
    await this.call('POST', `sys/mounts/${mount}`, { type: 'database' });
    await this.call('POST', `${mount}/config/pg`, pgConnection(this.#env));
    await this.call('POST', `${mount}/roles/dyn`, pgRole(this.#env, 'pg', ttl.defaultTtl, ttl.maxTtl));
  }

  /** A PKI engine at `mount` with a root issuer (24 h) and role `web` with these settings. */
  async pkiEngine(mount: string, role: Record<string, unknown>): Promise<void> {
    await this.call('POST', `sys/mounts/${mount}`, { type: 'pki' });
    await this.call('POST', `sys/mounts/${mount}/tune`, { max_lease_ttl: '24h' });
    await this.call('POST', `${mount}/root/generate/internal`, {
      common_name: `Ferry test root ${mount}`,
      key_type: 'ec',
      ttl: '24h',
    });
    await this.call('POST', `${mount}/roles/web`, { key_type: 'ec', ...role });
  }

  kvPut(mount: string, path: string, data: Record<string, unknown>, version: 1 | 2 = 2): Promise<unknown> {
    return version === 2
      ? this.call('POST', `${mount}/data/${path}`, { data })
      : this.call('POST', `${mount}/${path}`, data);
  }
}

/** Policy lines for leased secrets: credentials of database engine `db`, certificates of PKI role
 * `web` at `pki`, renewing and revoking their leases and serials. */
export const leasedSecretsPolicy = (db: string, pki: string): string[] => [
  `path "${db}/creds/*" { capabilities = ["read"] }`,
  'path "sys/leases/renew" { capabilities = ["update"] }',
  'path "sys/leases/revoke" { capabilities = ["update"] }',
  `path "${pki}/issue/web" { capabilities = ["update"] }`,
  `path "${pki}/revoke" { capabilities = ["update"] }`,
];

/** The database engine's connection to the stack's PostgreSQL (on `port`, the real one by default). */
export const pgConnection = (env: StackEnv, port = env.postgres.port) => ({
  plugin_name: 'postgresql-database-plugin',
  connection_url: `postgresql://{{username}}:{{password}}@127.0.0.1:${port}/${env.postgres.database}?sslmode=disable`,
  username: env.postgres.user,
  password: env.postgres.password,
  allowed_roles: '*',
});

/** A database engine role creating PostgreSQL login roles that can connect to the stack's database. */
export const pgRole = (env: StackEnv, db: string, defaultTtl: string, maxTtl: string) => ({
  db_name: db,
  creation_statements: [
    `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
    `GRANT CONNECT ON DATABASE "${env.postgres.database}" TO "{{name}}";`,
  ],
  default_ttl: defaultTtl,
  max_ttl: maxTtl,
});

const KINDS = new Map<string, ResourceType>();
for (const r of [...Object.values(builtin).filter(isResourceType), ...ALL_KINDS.map((k) => k.resource)]) {
  KINDS.set(`${apiVersionOf(r)}/${r.kind}`, r);
}
function isResourceType(v: unknown): v is ResourceType {
  return typeof v === 'object' && v !== null && 'plural' in v && 'kind' in v;
}

export function resourceOf(obj: { apiVersion?: string; kind?: string }): ResourceType {
  const r = KINDS.get(`${obj.apiVersion}/${obj.kind}`);
  if (!r) throw new Error(`no resource mapping for ${obj.apiVersion} ${obj.kind}`);
  return r;
}

export function adminClient(env: StackEnv, kubeconfig = env.kubeconfig): KubeClient {
  return new KubeClient(loadKubeConnection({ kubeconfig, env: {} }));
}

export type Manifest = KubeObject & { apiVersion: string; kind: string };

export function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null && typeof d === 'object');
}

/** Server-side apply, as `kubectl apply --server-side --force-conflicts` would. */
export async function apply(client: KubeClient, obj: Manifest): Promise<KubeObject> {
  return client.patch(resourceOf(obj), obj.metadata.name ?? '', obj.metadata.namespace, obj, 'apply', {
    fieldManager: 'ferry-e2e',
    force: true,
  });
}

export async function ensureNamespace(
  client: KubeClient,
  name: string,
  serviceAccounts: string[] = [],
): Promise<void> {
  await apply(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  for (const sa of serviceAccounts)
    await apply(client, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: sa, namespace: name },
    });
}

export { eventually };

export function decodeData(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

/**
 * A tenant namespace as real users would set one up: a ServiceAccount `app`, a Vault policy and
 * Kubernetes-auth role for it, the operator-wide default VaultConnection, and a VaultAuth `auth`.
 * `policy` adds lines to the tenant's Vault policy. With `connection`, `auth` uses a VaultConnection
 * of the tenant's own (that name, to that address) instead: metrics labelled by connection (Vault
 * reads) are then this tenant's alone.
 */
export async function tenant(
  env: StackEnv,
  kube: KubeClient,
  vault: VaultAdmin,
  ns: string,
  o: { connection?: { name: string; address: string }; policy?: string[] } = {},
): Promise<void> {
  await ensureNamespace(kube, ns, ['app']);
  await vault.policy(
    `t-${ns}`,
    [
      `path "kvv2/data/${ns}/*" { capabilities = ["read"] }`,
      `path "kvv1/${ns}/*" { capabilities = ["read"] }`,
      ...(o.policy ?? []),
    ].join('\n'),
  );
  // `web` is what the CSI tests' pods run as: the CSI driver logs in as the pod (docs/security.md).
  await vault.kubernetesRole(`t-${ns}`, {
    serviceAccount: ['app', 'web'],
    namespace: ns,
    policies: [`t-${ns}`],
  });
  const connection = (name: string, namespace: string, address: string) =>
    apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name, namespace },
      spec: { address, skipTLSVerify: false },
    } as Manifest);
  await connection('default', env.operatorNamespace, env.vaultAddr);
  if (o.connection) await connection(o.connection.name, ns, o.connection.address);
  await apply(
    kube,
    kubernetesVaultAuth(env, ns, 'auth', {
      role: `t-${ns}`,
      ...(o.connection ? { connection: `${ns}/${o.connection.name}` } : {}),
    }),
  );
}

/** A VaultAuth of the kubernetes method: by default on the stack's default VaultConnection and
 * kubernetes mount, logging in as ServiceAccount `app` of its namespace with audience `vault`
 * (`audiences: null` leaves the audience out); `spec` adds fields. */
export function kubernetesVaultAuth(
  env: StackEnv,
  ns: string,
  name: string,
  o: {
    role: string;
    allowedNamespaces?: string[];
    serviceAccount?: string;
    connection?: string;
    mount?: string;
    audiences?: string[] | null;
    labels?: Record<string, string>;
    spec?: Record<string, unknown>;
  },
): Manifest {
  const audiences = o.audiences === undefined ? ['vault'] : o.audiences;
  return {
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'VaultAuth',
    metadata: { name, namespace: ns, ...(o.labels ? { labels: o.labels } : {}) },
    spec: {
      vaultConnectionRef: o.connection ?? `${env.operatorNamespace}/default`,
      method: 'kubernetes',
      mount: o.mount ?? env.vaultKubernetesMount,
      kubernetes: {
        role: o.role,
        serviceAccount: o.serviceAccount ?? 'app',
        ...(audiences ? { audiences } : {}),
      },
      ...(o.allowedNamespaces ? { allowedNamespaces: o.allowedNamespaces } : {}),
      ...o.spec,
    },
  } as Manifest;
}

/** A fresh secret value to plant in Vault and look for where it must never appear; pushed to `sink` too. */
export function canary(label: string, sink?: string[]): string {
  const value = `canary-${label}-${randomBytes(8).toString('hex')}`;
  sink?.push(value);
  return value;
}

/** Labels and annotations for a manifest's metadata. */
export type ExtraMetadata = { labels?: Record<string, string>; annotations?: Record<string, string> };

/**
 * A secrets.hashicorp.com/v1beta1 object of `kind` in `ns` that logs in with the tenant's VaultAuth
 * `auth` (see tenant) unless `spec` names another `vaultAuthRef`.
 */
export function secretsResource(
  kind: string,
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  metadata: ExtraMetadata = {},
): Manifest {
  return {
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind,
    metadata: { name, namespace: ns, ...metadata },
    spec: { vaultAuthRef: 'auth', ...spec },
  } as Manifest;
}

/** A VaultStaticSecret manifest (see secretsResource). */
export const vss = (
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  metadata?: ExtraMetadata,
): Manifest => secretsResource('VaultStaticSecret', ns, name, spec, metadata);

/** A VaultDynamicSecret manifest (see secretsResource). */
export const vds = (ns: string, name: string, spec: Record<string, unknown>): Manifest =>
  secretsResource('VaultDynamicSecret', ns, name, spec);

/** A VaultPKISecret manifest (see secretsResource). */
export const vps = (ns: string, name: string, spec: Record<string, unknown>): Manifest =>
  secretsResource('VaultPKISecret', ns, name, spec);

/** A VaultAuth with exactly `spec` (see kubernetesVaultAuth for the tenant's usual one). */
export const vaultAuth = (ns: string, name: string, spec: Record<string, unknown>): Manifest =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'VaultAuth',
    metadata: { name, namespace: ns },
    spec,
  }) as Manifest;

/** A VaultAuth of `method` at `mount` on the stack's default VaultConnection, with `login` as the
 * method's block (`spec[method]`). */
export const methodVaultAuth = (
  env: StackEnv,
  ns: string,
  name: string,
  method: string,
  mount: string,
  login: Record<string, unknown>,
): Manifest =>
  vaultAuth(ns, name, {
    vaultConnectionRef: `${env.operatorNamespace}/default`,
    method,
    mount,
    [method]: login,
  });

/** A VaultStaticSecret that syncs kvv2 `<ns>/<name>` into a Secret `<name>` it creates; `spec` adds
 * or overrides fields (path, destination, refreshAfter, rolloutRestartTargets…). */
export const kvSecret = (
  ns: string,
  name: string,
  spec: Record<string, unknown> = {},
  metadata?: ExtraMetadata,
): Manifest =>
  vss(
    ns,
    name,
    { mount: 'kvv2', type: 'kv-v2', path: `${ns}/${name}`, destination: { name, create: true }, ...spec },
    metadata,
  );

/** A VaultStaticSecret named after VaultAuth `auth` that logs in with it and syncs kvv2 `<ns>/<auth>`
 * into Secret `<auth>`. */
export const vssVia = (ns: string, auth: string): Manifest => kvSecret(ns, auth, { vaultAuthRef: auth });

/**
 * Proves VaultAuth `auth` logs in: plants a fresh value at kvv2 `<ns>/<auth>`, applies vssVia and
 * waits for the Secret to hold it. A timeout reports the VaultStaticSecret's and VaultAuth's status.
 */
export async function syncsVia(kube: KubeClient, vault: VaultAdmin, ns: string, auth: string): Promise<void> {
  const value = canary(auth);
  await vault.kvPut('kvv2', `${ns}/${auth}`, { value });
  await apply(kube, vssVia(ns, auth));
  const secret = await eventually(
    `the Secret of VaultStaticSecret ${ns}/${auth}`,
    () => kube.getIfExists<Secret>(builtin.Secrets, auth, ns),
    45_000,
  ).catch(async (err: unknown) => {
    const kinds = new Map(ALL_KINDS.map((k) => [k.resource.kind, k.resource]));
    const statusOf = async (kind: string) => {
      const rt = kinds.get(kind);
      return rt
        ? (await kube.getIfExists<KubeObject & { status?: unknown }>(rt, auth, ns))?.status
        : undefined;
    };
    throw new Error(
      `${String(err)}; VaultStaticSecret status: ${JSON.stringify(await statusOf('VaultStaticSecret'))}; VaultAuth status: ${JSON.stringify(await statusOf('VaultAuth'))}`,
    );
  });
  assert.equal(decodeData(secret.data).value, value);
}

/** The status condition of `type`, if any. */
export function condition<C extends { type: string }>(
  o: { status?: { conditions?: C[] } } | undefined,
  type: string,
): C | undefined {
  return o?.status?.conditions?.find((c) => c.type === type);
}

/** SecretSynced is True for the object's current generation. */
export function synced(
  o:
    | (KubeObject & {
        status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] };
      })
    | undefined,
): boolean {
  const c = condition(o, 'SecretSynced');
  return c?.status === 'True' && c.observedGeneration === o?.metadata.generation;
}

/** The annotation a rollout restart sets on a workload's pod template. */
export const RESTARTED_AT = 'vso.secrets.hashicorp.com/restartedAt';

/** A pod template labelled app=`app` with one container that need never run. */
export const podTemplate = (app: string): Record<string, unknown> => ({
  metadata: { labels: { app } },
  spec: { containers: [{ name: 'c', image: 'example.invalid/app:1' }] },
});

/** A Deployment `name` selecting app=`name` (see podTemplate): a rollout-restart target. */
export const deployment = (ns: string, name: string, replicas = 1): Manifest =>
  ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: podTemplate(name) },
  }) as Manifest;

/** When a rollout restart last touched the workload (its pod template's RESTARTED_AT annotation). */
export async function restartedAt(
  kube: KubeClient,
  rt: ResourceType,
  name: string,
  ns: string,
): Promise<string | undefined> {
  const w = await kube.get<
    KubeObject & { spec: { template?: { metadata?: { annotations?: Record<string, string> } } } }
  >(rt, name, ns);
  return w.spec.template?.metadata?.annotations?.[RESTARTED_AT];
}

/** The Events in `ns`, only those about the object `name` when given. */
/** controller_runtime_reconcile_total of one controller, over all results, from a /metrics URL. */
export async function reconcileTotal(metricsUrl: string, controller: string): Promise<number> {
  const body = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
  let n = 0;
  for (const m of body.matchAll(/^controller_runtime_reconcile_total\{([^}]*)\} (\d+)$/gm))
    if (m[1]?.includes(`controller="${controller}"`)) n += Number(m[2]);
  return n;
}

export async function eventsOf(kube: KubeClient, ns: string, name?: string): Promise<CoreEvent[]> {
  const list = await kube.list<CoreEvent>(builtin.Events, {
    namespace: ns,
    ...(name ? { fieldSelector: `involvedObject.name=${name}` } : {}),
  });
  return list.items;
}

/** Fails if any of `values` is in `text`, saying that `what` reached `where`. */
export function assertNotIn(
  values: Iterable<string>,
  text: string,
  where: string,
  what = 'a secret value',
): void {
  for (const v of values) assert.ok(!text.includes(v), `${what} reached ${where}`);
}

/**
 * Fails if any of `values` reached the operator log (when the stack runs the operator), an Event in
 * `ns`, or the status of a `rt` object in `ns`: places anyone can read, which secret values must not reach.
 */
export async function assertNoLeak(
  env: StackEnv,
  kube: KubeClient,
  ns: string,
  rt: ResourceType,
  values: Iterable<string>,
  what = 'a secret value',
): Promise<void> {
  if (env.operator) assertNotIn(values, operatorLog(env), 'the operator log', what);
  const events = await eventsOf(kube, ns);
  const objects = await kube.list<KubeObject & { status?: unknown }>(rt, { namespace: ns });
  const visible = JSON.stringify(events) + JSON.stringify(objects.items.map((o) => o.status));
  assertNotIn(values, visible, 'an Event or status', what);
}

const VAP: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  kind: 'ValidatingAdmissionPolicy',
  plural: 'validatingadmissionpolicies',
  namespaced: false,
};
const VAP_BINDING: ResourceType = {
  ...VAP,
  kind: 'ValidatingAdmissionPolicyBinding',
  plural: 'validatingadmissionpolicybindings',
};

/**
 * A ValidatingAdmissionPolicy with `spec`, bound (Deny) to namespace `ns` only; resolves to what
 * removes both. The API server applies it a moment later: callers probe for it.
 */
export async function admissionPolicy(
  kube: KubeClient,
  name: string,
  ns: string,
  spec: Record<string, unknown>,
): Promise<() => Promise<void>> {
  const apiVersion = 'admissionregistration.k8s.io/v1';
  await kube.create<KubeObject>(VAP, {
    apiVersion,
    kind: VAP.kind,
    metadata: { name },
    spec: { failurePolicy: 'Fail', ...spec },
  } as KubeObject);
  await kube.create<KubeObject>(VAP_BINDING, {
    apiVersion,
    kind: VAP_BINDING.kind,
    metadata: { name },
    spec: {
      policyName: name,
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
    },
  } as KubeObject);
  return async () => {
    await kube.delete(VAP_BINDING, name).catch(() => {});
    await kube.delete(VAP, name).catch(() => {});
  };
}

/** Someone edits the Secret: `key` of its data becomes `value`. */
export async function tamper(
  kube: KubeClient,
  ns: string,
  name: string,
  key: string,
  value = 'tampered',
): Promise<void> {
  const s = await kube.get<KubeObject & { data?: Record<string, string> }>(builtin.Secrets, name, ns);
  await kube.replace(builtin.Secrets, {
    ...s,
    data: { ...s.data, [key]: Buffer.from(value).toString('base64') },
  });
}

/** Logs in to the stack's PostgreSQL with a credential Ferry wrote; resolves to the session user, or
 * the Error that refused it (a revoked credential must fail here). */
export async function pgLogin(env: StackEnv, user: string, password: string): Promise<string | Error> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: env.postgres.port,
    user,
    password,
    database: env.postgres.database,
    connectionTimeoutMillis: 5_000,
  });
  try {
    await c.connect();
    const r = await c.query<{ u: string }>('SELECT current_user AS u');
    return r.rows[0]?.u ?? new Error('no row');
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  } finally {
    await c.end().catch(() => {});
  }
}
