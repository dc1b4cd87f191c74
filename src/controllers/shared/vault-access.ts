// From a consuming resource (VaultStaticSecret, ...) to an authenticated Vault session: resolve the
// VaultAuth (and its VaultAuthGlobal) and the VaultConnection from the informer caches, enforce
// allowedNamespaces, and get one cached session per auth × connection × identity (vso-api.md §11).
import type { VaultAuth } from '../../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../../api/v1beta1/vaultconnection.ts';
import { parseDuration, parseRef, validateVaultAuth, validateVaultConnection } from '../../api/validate.ts';
import { CODES, FerryError } from '../../errors.ts';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import { Secrets, ServiceAccounts } from '../../k8s/resources.ts';
import type { KubeObject, Secret } from '../../k8s/types.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Store } from '../../runtime/store.ts';
import { appRoleAuth } from '../../vault/auth/approle.ts';
import type { AuthMethod } from '../../vault/auth/index.ts';
import { jwtAuth, kubernetesAuth } from '../../vault/auth/kubernetes.ts';
import type { CacheKeyInput, VaultClientCache } from '../../vault/cache.ts';
import { computeCacheKey } from '../../vault/cache.ts';
import type { VaultApi, VaultClientOptions } from '../../vault/client.ts';
import { VaultClient } from '../../vault/client.ts';
import type { SessionEvent } from '../../vault/session.ts';
import { VaultSession } from '../../vault/session.ts';
import { type EffectiveAuth, effectiveAuth, isAllowedNamespace } from './auth-config.ts';

export interface VaultAccessDeps {
  client: KubeClient;
  operatorNamespace: string;
  auths: Store<VaultAuth>;
  authGlobals: Store<VaultAuthGlobal>;
  connections: Store<VaultConnection>;
  cache: VaultClientCache;
  clock: Clock;
  /** VSO's `allow-default-globals` option (on by default). */
  allowDefaultGlobals: boolean;
  onSessionEvent?: (event: SessionEvent) => void;
}

export interface VaultAccess {
  api: VaultApi;
  session: VaultSession;
  cacheKey: string;
  clientId: string;
  auth: VaultAuth;
  connection: VaultConnection;
}

export interface Consumer {
  namespace: string;
  vaultAuthRef?: string | undefined;
  /** The consumer's `spec.namespace`: a Vault namespace other than the VaultAuth's. */
  vaultNamespace?: string | undefined;
}

const invalidRef = (msg: string): FerryError => new FerryError(CODES.INVALID_REF, msg);
const problemsError = (what: string, problems: { field: string; message: string }[]): FerryError =>
  new FerryError(
    CODES.INVALID_CONFIG,
    `${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
  );

function uidOf(obj: KubeObject, what: string): string {
  const uid = obj.metadata.uid;
  if (!uid) throw invalidRef(`${what} has no UID yet`);
  return uid;
}

/** The VaultAuthGlobal a VaultAuth inherits from, if any (vso-api.md §3.3). */
export function resolveAuthGlobal(
  auth: VaultAuth,
  store: Store<VaultAuthGlobal>,
  operatorNamespace: string,
  allowDefaultGlobals: boolean,
): VaultAuthGlobal | undefined {
  const ref = auth.spec?.vaultAuthGlobalRef;
  if (!ref) return undefined;
  const authNs = auth.metadata.namespace ?? '';
  let global: VaultAuthGlobal | undefined;
  if (ref.name) {
    const ns = ref.namespace || authNs;
    global = store.get(ns, ref.name);
    if (!global) throw invalidRef(`VaultAuthGlobal ${ns}/${ref.name} not found`);
  } else if (ref.allowDefault) {
    if (!allowDefaultGlobals) {
      throw new FerryError(
        CODES.INVALID_CONFIG,
        'default VaultAuthGlobal requested but the operator does not allow default globals',
      );
    }
    const candidates = [ref.namespace || authNs, operatorNamespace];
    global = candidates.map((ns) => store.get(ns, 'default')).find((g) => g !== undefined);
    if (!global) throw invalidRef(`no default VaultAuthGlobal in ${[...new Set(candidates)].join(' or ')}`);
  } else {
    return undefined;
  }
  const target = { namespace: global.metadata.namespace ?? '', name: global.metadata.name ?? '' };
  if (!isAllowedNamespace(target, authNs, global.spec?.allowedNamespaces, operatorNamespace)) {
    throw new FerryError(
      CODES.NAMESPACE_NOT_ALLOWED,
      `VaultAuthGlobal ${target.namespace}/${target.name} does not allow namespace ${authNs}`,
    );
  }
  return global;
}

/** The merged, validated login configuration of a VaultAuth. */
export function resolveAuthConfig(
  auth: VaultAuth,
  deps: Pick<VaultAccessDeps, 'authGlobals' | 'operatorNamespace' | 'allowDefaultGlobals'>,
): EffectiveAuth {
  const global = resolveAuthGlobal(auth, deps.authGlobals, deps.operatorNamespace, deps.allowDefaultGlobals);
  const eff = effectiveAuth(auth.spec ?? {}, global?.spec);
  const problems = validateVaultAuth({
    method: eff.method,
    mount: eff.mount,
    ...(eff.kubernetes ? { kubernetes: eff.kubernetes } : {}),
    ...(eff.appRole ? { appRole: eff.appRole } : {}),
  });
  if (problems.length > 0) throw problemsError('invalid VaultAuth', problems);
  if (eff.method !== 'kubernetes' && eff.method !== 'jwt' && eff.method !== 'appRole') {
    throw new FerryError(CODES.INVALID_CONFIG, `auth method ${eff.method} is not supported yet`);
  }
  return eff;
}

/** Where a VaultAuth's connection lives: VSO's rule that only `default` in the operator namespace
 * may leave vaultConnectionRef empty there. */
export function connectionRefOf(
  auth: VaultAuth,
  eff: EffectiveAuth,
  operatorNamespace: string,
): { namespace: string; name: string } {
  const authNs = auth.metadata.namespace ?? '';
  if (!eff.vaultConnectionRef && authNs === operatorNamespace && auth.metadata.name !== 'default') {
    throw new FerryError(
      CODES.INVALID_CONFIG,
      'a VaultAuth in the operator namespace must set vaultConnectionRef',
    );
  }
  return parseRef(eff.vaultConnectionRef, { namespace: authNs, operatorNamespace });
}

/** undici options for a VaultConnection; the CA may come from a Secret in the connection's namespace. */
export async function connectionOptions(
  conn: VaultConnection,
  client: KubeClient,
  vaultNamespace: string | undefined,
): Promise<VaultClientOptions> {
  const spec = conn.spec;
  if (!spec) throw new FerryError(CODES.INVALID_CONFIG, 'VaultConnection has no spec');
  const problems = validateVaultConnection(spec);
  if (problems.length > 0) throw problemsError('invalid VaultConnection', problems);
  const opts: VaultClientOptions = { address: spec.address, skipTLSVerify: spec.skipTLSVerify ?? false };
  if (spec.tlsServerName) opts.tlsServerName = spec.tlsServerName;
  if (spec.headers) opts.headers = spec.headers;
  if (spec.timeout) opts.timeoutMs = parseDuration(spec.timeout);
  if (vaultNamespace) opts.namespace = vaultNamespace;
  if (spec.caCertSecretRef) {
    const ns = conn.metadata.namespace ?? '';
    let secret: Secret;
    try {
      secret = await client.get<Secret>(Secrets, spec.caCertSecretRef, ns);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound())
        throw invalidRef(`CA Secret ${ns}/${spec.caCertSecretRef} not found`);
      throw err;
    }
    const ca = secret.data?.['ca.crt'];
    if (!ca)
      throw new FerryError(CODES.INVALID_CONFIG, `CA Secret ${ns}/${spec.caCertSecretRef} has no ca.crt key`);
    opts.caCertPem = Buffer.from(ca, 'base64').toString('utf8');
  } else if (spec.caCertPath) {
    const { readFile } = await import('node:fs/promises');
    opts.caCertPem = await readFile(spec.caCertPath, 'utf8');
  }
  return opts;
}

const SA_UID_TTL_MS = 5 * 60_000;

/** Resolves consumers to sessions. Holds a short-lived cache of ServiceAccount UIDs so a steady-state
 * refresh costs no Kubernetes read beyond the destination itself. */
export class VaultAccessResolver {
  readonly #deps: VaultAccessDeps;
  readonly #saUids = new Map<string, { uid: string; at: number }>();

  constructor(deps: VaultAccessDeps) {
    this.#deps = deps;
  }

  /** The namespaced name of the VaultAuth a consumer refers to (for reference indexes). */
  authRefOf(consumer: Consumer): string {
    const ref = parseRef(consumer.vaultAuthRef, {
      namespace: consumer.namespace,
      operatorNamespace: this.#deps.operatorNamespace,
    });
    return `${ref.namespace}/${ref.name}`;
  }

  async get(consumer: Consumer, signal?: AbortSignal): Promise<VaultAccess> {
    const d = this.#deps;
    const ref = parseRef(consumer.vaultAuthRef, {
      namespace: consumer.namespace,
      operatorNamespace: d.operatorNamespace,
    });
    const auth = d.auths.get(ref.namespace, ref.name);
    if (!auth) throw invalidRef(`VaultAuth ${ref.namespace}/${ref.name} not found`);
    if (!isAllowedNamespace(ref, consumer.namespace, auth.spec?.allowedNamespaces, d.operatorNamespace)) {
      throw new FerryError(
        CODES.NAMESPACE_NOT_ALLOWED,
        `VaultAuth ${ref.namespace}/${ref.name} does not allow namespace ${consumer.namespace}`,
      );
    }
    const eff = resolveAuthConfig(auth, d);
    const connRef = connectionRefOf(auth, eff, d.operatorNamespace);
    const connection = d.connections.get(connRef.namespace, connRef.name);
    if (!connection) throw invalidRef(`VaultConnection ${connRef.namespace}/${connRef.name} not found`);

    const { providerUID, method } = await this.#provider(eff, consumer.namespace, signal);
    const input: CacheKeyInput = {
      method: eff.method,
      authUID: uidOf(auth, 'VaultAuth'),
      authGeneration: auth.metadata.generation ?? 0,
      connectionUID: uidOf(connection, 'VaultConnection'),
      connectionGeneration: connection.metadata.generation ?? 0,
      providerUID,
    };
    const session = await d.cache.get(
      input,
      async () => {
        const client = new VaultClient(await connectionOptions(connection, d.client, eff.vaultNamespace));
        try {
          return await VaultSession.login(
            {
              client,
              auth: method,
              clock: d.clock,
              ownsClient: true,
              ...(d.onSessionEvent ? { onEvent: d.onSessionEvent } : {}),
            },
            signal,
          );
        } catch (err) {
          await client.close();
          throw err;
        }
      },
      signal,
    );
    const api =
      consumer.vaultNamespace && consumer.vaultNamespace !== eff.vaultNamespace
        ? session.withNamespace(consumer.vaultNamespace)
        : session;
    return { api, session, cacheKey: computeCacheKey(input), clientId: session.clientId, auth, connection };
  }

  async #provider(
    eff: EffectiveAuth,
    namespace: string,
    signal?: AbortSignal,
  ): Promise<{ providerUID: string; method: AuthMethod }> {
    const extras = { params: eff.params, headers: eff.headers };
    if (eff.method === 'appRole') {
      const a = eff.appRole ?? {};
      const secretRef = a.secretRef ?? '';
      const secret = await this.#secret(namespace, secretRef);
      return {
        providerUID: uidOf(secret, `Secret ${namespace}/${secretRef}`),
        method: appRoleAuth({
          mount: eff.mount,
          roleId: a.roleId ?? '',
          // Re-read on every login: the secret-id may have been rotated.
          getSecretId: async () =>
            secretValue(await this.#secret(namespace, secretRef), 'id', `${namespace}/${secretRef}`),
          ...extras,
        }),
      };
    }
    const k = eff.kubernetes ?? {};
    const sa = k.serviceAccount ?? '';
    const providerUID = await this.#serviceAccountUid(namespace, sa, signal);
    const getToken = async (): Promise<string> => {
      const tr = await this.#deps.client.createToken(namespace, sa, {
        ...(k.audiences && k.audiences.length > 0 ? { audiences: k.audiences } : {}),
        expirationSeconds: k.tokenExpirationSeconds ?? 600,
      });
      return tr.token;
    };
    const opts = { mount: eff.mount, role: k.role ?? '', getToken, ...extras };
    return { providerUID, method: eff.method === 'jwt' ? jwtAuth(opts) : kubernetesAuth(opts) };
  }

  async #serviceAccountUid(namespace: string, name: string, _signal?: AbortSignal): Promise<string> {
    const key = `${namespace}/${name}`;
    const hit = this.#saUids.get(key);
    const now = this.#deps.clock.now();
    if (hit && now - hit.at < SA_UID_TTL_MS) return hit.uid;
    let sa: KubeObject;
    try {
      sa = await this.#deps.client.get<KubeObject>(ServiceAccounts, name, namespace);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) throw invalidRef(`ServiceAccount ${key} not found`);
      throw err;
    }
    const uid = uidOf(sa, `ServiceAccount ${key}`);
    this.#saUids.set(key, { uid, at: now });
    return uid;
  }

  async #secret(namespace: string, name: string): Promise<Secret> {
    try {
      return await this.#deps.client.get<Secret>(Secrets, name, namespace);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) throw invalidRef(`Secret ${namespace}/${name} not found`);
      throw err;
    }
  }
}

function secretValue(secret: Secret, key: string, what: string): string {
  const v = secret.data?.[key];
  if (!v) throw new FerryError(CODES.INVALID_CONFIG, `Secret ${what} has no ${key} key`);
  return Buffer.from(v, 'base64').toString('utf8');
}
