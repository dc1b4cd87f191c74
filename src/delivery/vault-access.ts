// From a consuming resource (VaultStaticSecret, ...) to an authenticated Vault session: resolve the
// VaultAuth (and its VaultAuthGlobal) and the VaultConnection from the informer caches, enforce
// allowedNamespaces, and get one cached session per auth × connection × identity (vso-api.md §11).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import type { VaultAuth } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../api/v1beta1/vaultconnection.ts';
import { parseDuration, parseRef, validateVaultAuth, validateVaultConnection } from '../api/validate.ts';
import type { Clock } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { type ResourceType, Secrets, ServiceAccounts } from '../k8s/resources.ts';
import type { KubeObject, Secret } from '../k8s/types.ts';
import { type VaultMetrics, vaultRequestObserver } from '../metrics/vault.ts';
import type { Store } from '../runtime/store.ts';
import type { TaskScheduler } from '../runtime/tasks.ts';
import { vaultAddressAllowlist } from '../vault/address-policy.ts';
import { appRoleAuth } from '../vault/auth/approle.ts';
import {
  type AwsCredentials,
  ambientAwsCredentials,
  assumeRoleWithWebIdentity,
  awsAuth,
  DEFAULT_AWS_REGION,
  stsUrl,
} from '../vault/auth/aws.ts';
import {
  GCP_SERVICE_ACCOUNT_ANNOTATION,
  type GcpEndpoints,
  GcpMetadata,
  GOOGLE_ENDPOINTS,
  gcpIdToken,
  workloadIdentityPool,
} from '../vault/auth/gcp.ts';
import type { AuthMethod } from '../vault/auth/index.ts';
import { gcpAuth, jwtAuth, kubernetesAuth } from '../vault/auth/kubernetes.ts';
import { type CacheKeyInput, type CacheMetrics, VaultClientCache } from '../vault/cache.ts';
import type { VaultApi, VaultClientOptions } from '../vault/client.ts';
import { VaultClient } from '../vault/client.ts';
import { readCaCertFile, readSecretIdFile } from '../vault/confined-file.ts';
import { VaultError } from '../vault/errors.ts';
import {
  type CacheEncryption,
  ClientCacheStorage,
  ENCRYPTION_AUTH_LABEL,
  listClientCacheStorage,
  type PersistedToken,
  type PersistenceModel,
  purgeClientCacheStorage,
  type StorageOwner,
  transitEncryption,
} from '../vault/persistence.ts';
import type { SessionEvent, VaultSessionOptions } from '../vault/session.ts';
import { VaultSession } from '../vault/session.ts';
import {
  type AwsLogin,
  type EffectiveAuth,
  effectiveAuth,
  type GcpLogin,
  isAllowedNamespace,
  type KubernetesLogin,
} from './auth-config.ts';

export interface VaultAccessDeps {
  client: KubeClient;
  operatorNamespace: string;
  auths: Store<VaultAuth>;
  authGlobals: Store<VaultAuthGlobal>;
  connections: Store<VaultConnection>;
  /** Bound of the session cache the resolver owns. */
  cacheSize: number;
  /** Sessions one namespace may hold in it; default a tenth of cacheSize. */
  cacheNamespaceQuota?: number;
  clock: Clock;
  /** Runs persistence writes, retried with the background backoff until a newer token supersedes them. */
  tasks: TaskScheduler;
  /** VSO's `allow-default-globals` option (on by default). */
  allowDefaultGlobals: boolean;
  /** The process environment, for the AWS default credential chain (aws auth without secretRef or
   * irsaServiceAccount); unset, that chain is refused. */
  env?: Record<string, string | undefined>;
  /** Google's STS, IAM Credentials and metadata endpoints; tests point them at fakes. */
  gcpEndpoints?: GcpEndpoints;
  onSessionEvent?: (event: SessionEvent) => void;
  /** The CSI driver's pod tokens (src/csi/pod-tokens.ts): a consumer with a `podServiceAccount`
   * logs in with that pod's kubelet-issued token (kubernetes and jwt methods), never a TokenRequest. */
  podTokens?: PodTokenSource;
  /** Kubernetes reads this process must not make (the CSI driver's RBAC leaves them out unless
   * opted in), each with the fix the error names. */
  withheld?: Withheld;
  /** The Vault metric families (ferry_vault_*, VSO's vso_client_*); none in some unit tests. */
  metrics?: VaultMetrics;
  /** Client-cache persistence (vso-api §11.4); absent = none, without the start-up purge. */
  persistence?: {
    model: PersistenceModel;
    hmacKey: () => Promise<Buffer>;
    /** Observability; carries cache keys and reasons, never a token. */
    onEvent?: (event: PersistenceEvent) => void;
  };
}

export type PersistenceEvent =
  | { type: 'restored'; cacheKey: string }
  | { type: 'restoreSkipped'; cacheKey: string; reason: string }
  | { type: 'restoreFailed'; cacheKey: string; error: unknown }
  | { type: 'stored'; cacheKey: string }
  | { type: 'storeFailed'; cacheKey: string; error: unknown }
  | { type: 'deleted'; cacheKey: string; reason: string }
  | { type: 'deleteFailed'; cacheKey: string; error: unknown }
  | { type: 'purged'; count: number }
  | { type: 'purgeFailed'; error: unknown };

/** Where the kubernetes and jwt methods take the pod's own token from (the CSI driver). */
export interface PodTokenSource {
  /** The freshest valid token of a pod running as `sa` for one of `audiences` (none: the API
   * server's default audience ""); throws a FerryError naming the fix when there is none. With
   * `refuseApiAudience` (why), the "" token, a Kubernetes API credential, is not used. */
  token(
    sa: { namespace: string; name: string },
    audiences: readonly string[] | undefined,
    opts?: { refuseApiAudience?: string | undefined },
  ): string;
}

/** What a PodTokenSource throws when `refuseApiAudience` leaves no audience to log in with. */
export function apiAudienceRefused(why: string): FerryError {
  return new FerryError(
    CODES.CSI_PRECONDITION,
    `${why}: the pod's token for the API server's own audience "" is a Kubernetes credential and is not sent there; set the VaultAuth's audiences (e.g. ["vault"], as the Vault role's audience)`,
  );
}

export interface Withheld {
  /** TokenRequest (serviceaccounts/token create) and ServiceAccount reads. */
  tokenRequests?: string;
  /** Secret reads (credential Secrets of VaultAuths, CA Secrets of VaultConnections). */
  secretReads?: string;
}

const withheldError = (what: string, fix: string): FerryError =>
  new FerryError(CODES.CSI_PRECONDITION, `${what}, which this process may not do: ${fix}`);

export interface VaultAccess {
  api: VaultApi;
  session: VaultSession;
  cacheKey: string;
  clientId: string;
  auth: VaultAuth;
  connection: VaultConnection;
  /** The Vault namespace `api` sends requests to (the consumer's, else the VaultAuth's); none: root. */
  vaultNamespace: string | undefined;
}

export interface Consumer {
  namespace: string;
  vaultAuthRef?: string | undefined;
  /** The consumer's `spec.namespace`: a Vault namespace other than the VaultAuth's. */
  vaultNamespace?: string | undefined;
  /** Where credential providers (the kubernetes method's ServiceAccount) live; `namespace` if unset. */
  providerNamespace?: string | undefined;
  /** The CSI driver: the pod's ServiceAccount, which the kubernetes and jwt methods log in as, with
   * the pod's kubelet-issued token, instead of the VaultAuth's ServiceAccount. */
  podServiceAccount?: { namespace: string; name: string } | undefined;
}

/**
 * The consumer a CSISecrets stands for: the driver logs in as it, the operator checks it. Its
 * vaultAuthRef is an object rather than a string; with `trustNamespace` and a namespace, credential
 * providers are taken from the VaultAuth's namespace instead of the CSISecrets' (VSO
 * GetProviderNamespace). The VaultAuth must still allow the CSISecrets' namespace.
 */
export function csiSecretsConsumer(namespace: string, spec: CSISecretsSpec | undefined): Consumer {
  const ref = spec?.vaultAuthRef;
  return {
    namespace,
    vaultAuthRef: ref ? (ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name) : undefined,
    vaultNamespace: spec?.namespace,
    ...(ref?.trustNamespace && ref.namespace ? { providerNamespace: ref.namespace } : {}),
  };
}

const invalidRef = (msg: string): FerryError => new FerryError(CODES.INVALID_REF, msg);
const problemsError = (what: string, problems: { field: string; message: string }[]): FerryError =>
  new FerryError(
    CODES.INVALID_CONFIG,
    `${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
  );

/** A referenced object that must exist; its absence is a reference error the user must fix. */
async function getRequired<T extends KubeObject>(
  client: KubeClient,
  rt: ResourceType,
  name: string,
  namespace: string,
  what: string,
): Promise<T> {
  const obj = await client.getIfExists<T>(rt, name, namespace);
  if (!obj) throw invalidRef(`${what} ${namespace}/${name} not found`);
  return obj;
}

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
    ...(eff.jwt ? { jwt: eff.jwt } : {}),
    ...(eff.appRole ? { appRole: eff.appRole } : {}),
    ...(eff.aws ? { aws: eff.aws } : {}),
    ...(eff.gcp ? { gcp: eff.gcp } : {}),
  });
  if (problems.length > 0) throw problemsError('invalid VaultAuth', problems);
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
  withheld: Withheld = {},
): Promise<VaultClientOptions> {
  const spec = conn.spec;
  if (!spec) throw new FerryError(CODES.INVALID_CONFIG, 'VaultConnection has no spec');
  const problems = validateVaultConnection(spec);
  if (problems.length > 0) throw problemsError('invalid VaultConnection', problems);
  vaultAddressAllowlist().check(spec.address);
  const opts: VaultClientOptions = { address: spec.address, skipTLSVerify: spec.skipTLSVerify ?? false };
  if (spec.tlsServerName) opts.tlsServerName = spec.tlsServerName;
  if (spec.headers) opts.headers = spec.headers;
  if (spec.timeout) opts.timeoutMs = parseDuration(spec.timeout);
  if (vaultNamespace) opts.namespace = vaultNamespace;
  if (spec.caCertSecretRef) {
    const ns = conn.metadata.namespace ?? '';
    if (withheld.secretReads)
      throw withheldError(
        `VaultConnection ${ns}/${conn.metadata.name} needs its CA Secret ${spec.caCertSecretRef} read`,
        withheld.secretReads,
      );
    const secret = await getRequired<Secret>(client, Secrets, spec.caCertSecretRef, ns, 'CA Secret');
    const ca = secret.data?.['ca.crt'];
    if (!ca)
      throw new FerryError(CODES.INVALID_CONFIG, `CA Secret ${ns}/${spec.caCertSecretRef} has no ca.crt key`);
    opts.caCertPem = Buffer.from(ca, 'base64').toString('utf8');
  } else if (spec.caCertPath) {
    opts.caCertPem = await readCaCertFile(spec.caCertPath);
  }
  return opts;
}

/** The pod a CSI login is for, and whether its API-audience token may go to the VaultConnection. */
type PodLogin = NonNullable<Consumer['podServiceAccount']> & { refuseApiAudience: string | undefined };

/** The login settings every method shares (the merged VaultAuth's mount, params and headers). */
type LoginBase = Pick<EffectiveAuth, 'mount' | 'params' | 'headers'>;
/** A consumer's credential source: the UID that keys its session, and the login it makes. */
type Provider = { providerUID: string; method: AuthMethod };

const SA_UID_TTL_MS = 5 * 60_000;
/** VaultAuths restored at once by restoreAll: each restore is a few requests to Kubernetes and Vault. */
const RESTORE_PARALLELISM = 4;

/** Resolves consumers to sessions. Holds a short-lived cache of ServiceAccount UIDs so a steady-state
 * refresh costs no Kubernetes read beyond the destination itself. */
export class VaultAccessResolver {
  /** One session per auth × connection × identity (vso-api.md §11.1). */
  readonly cache: VaultClientCache;
  readonly #deps: VaultAccessDeps;
  /** Pending too: the first reconciles of a namespace (up to max-concurrent-reconciles at once) share
   * one read instead of each making its own. */
  readonly #saUids = new Map<string, { uid: Promise<string>; at: number }>();
  readonly #storage: ClientCacheStorage | undefined;
  #purge: Promise<void> | undefined;
  /** The storage entries found at start, listed once for restoreStored. */
  #stored: Promise<{ name: string; labels: Record<string, string> }[]> | undefined;
  /** Per cache key: the latest token not yet stored. */
  readonly #unsaved = new Map<string, { owner: StorageOwner; token: PersistedToken }>();
  /** GKE metadata (project, cluster) for gcp logins, cached with an expiry rather than asked per login. */
  readonly #gcpMetadata: GcpMetadata;

  constructor(deps: VaultAccessDeps) {
    this.#deps = deps;
    this.#gcpMetadata = new GcpMetadata(deps.gcpEndpoints ?? GOOGLE_ENDPOINTS, deps.clock);
    // A removed session's stored token goes with it.
    const m = deps.metrics;
    this.cache = new VaultClientCache({
      maxSize: deps.cacheSize,
      ...(deps.cacheNamespaceQuota ? { namespaceQuota: deps.cacheNamespaceQuota } : {}),
      onRemoved: (key, _input, reason) => this.onSessionRemoved(key, reason),
      ...(m ? { metrics: cacheMetrics(m) } : {}),
    });
    m?.cacheSize.set({}, deps.cacheSize);
    const p = deps.persistence;
    if (p && p.model !== 'none') {
      m?.storageConfig.set({ enforce_encryption: String(p.model === 'direct-encrypted') }, 1);
      this.#storage = new ClientCacheStorage({
        client: deps.client,
        namespace: deps.operatorNamespace,
        model: p.model,
        hmacKey: p.hmacKey,
        ...(p.model === 'direct-encrypted' ? { encryption: (signal) => this.#encryption(signal) } : {}),
      });
    }
  }

  /** The persistence model in effect. */
  get persistenceModel(): PersistenceModel {
    return this.#storage?.model ?? 'none';
  }

  #persistEvent(ev: PersistenceEvent): void {
    const m = this.#deps.metrics;
    if (m) countPersistence(m, ev);
    this.#deps.persistence?.onEvent?.(ev);
  }

  /** With model `none`, stored entries of an earlier run are deleted once (VSO purges at start).
   * Done on first use, so only the process that runs the controllers (the leader) purges. */
  #purgeOnce(): void {
    if (this.#purge !== undefined || this.#storage || this.#deps.persistence === undefined) return;
    this.#purge = purgeClientCacheStorage(this.#deps.client, this.#deps.operatorNamespace).then(
      (count) => this.#persistEvent({ type: 'purged', count }),
      (error: unknown) => this.#persistEvent({ type: 'purgeFailed', error }),
    );
  }

  /**
   * Restores, right away, the stored sessions of one VaultAuth (the leader calls this for every
   * VaultAuth when it starts). Waiting for the first consumer that needs Vault would be too late: a
   * token nobody renews expires, and Vault revokes every lease it created. An entry whose VaultAuth
   * or VaultConnection generation has moved on is stale and deleted. Returns the restored count.
   */
  async restoreStored(auth: VaultAuth, signal?: AbortSignal): Promise<number> {
    const storage = this.#storage;
    const uid = auth.metadata.uid;
    if (!storage || !uid || this.#isEncryptionAuth(auth)) return 0;
    const entries = (await this.#listStored(signal)).filter((e) => e.labels['auth/UID'] === uid);
    let restored = 0;
    for (const e of entries) {
      const cacheKey = e.labels.cacheKey ?? '';
      const providerNs = e.labels['provider/namespace'] ?? '';
      if (!cacheKey || this.cache.has(cacheKey)) continue;
      const consumer: Consumer = {
        namespace: providerNs,
        vaultAuthRef: `${auth.metadata.namespace}/${auth.metadata.name}`,
      };
      try {
        const access = await this.#get(consumer, signal, true);
        if (access.cacheKey === cacheKey) restored += 1;
        else {
          await storage.delete(cacheKey);
          this.#persistEvent({ type: 'deleted', cacheKey, reason: 'stale' });
        }
      } catch (error) {
        this.#persistEvent({ type: 'restoreFailed', cacheKey, error });
      }
    }
    return restored;
  }

  /**
   * Restores the stored sessions of every VaultAuth, RESTORE_PARALLELISM VaultAuths at a time: the
   * leader's warm-up before its controllers start, so that a takeover's burst of reconciles neither
   * delays the restore nor races it into a login. Returns the restored count.
   */
  async restoreAll(signal?: AbortSignal): Promise<number> {
    if (!this.#storage) return 0;
    // Listed once up front: a failure here ends the warm-up (the per-VaultAuth restore tries again).
    const owners = new Set((await this.#listStored(signal)).map((e) => e.labels['auth/UID']));
    const auths = this.#deps.auths
      .list()
      .filter((a) => !a.metadata.deletionTimestamp && owners.has(a.metadata.uid));
    let next = 0;
    let restored = 0;
    const worker = async (): Promise<void> => {
      for (let a = auths[next++]; a !== undefined && !signal?.aborted; a = auths[next++])
        restored += await this.restoreStored(a, signal);
    };
    await Promise.all(Array.from({ length: RESTORE_PARALLELISM }, worker));
    return restored;
  }

  /** The storage entries found at start, listed once (a failed listing is tried again next time). */
  #listStored(signal?: AbortSignal): Promise<{ name: string; labels: Record<string, string> }[]> {
    this.#stored ??= listClientCacheStorage(this.#deps.client, this.#deps.operatorNamespace, signal).catch(
      (err: unknown) => {
        this.#stored = undefined;
        throw err;
      },
    );
    return this.#stored;
  }

  /** The cache removed a session: its stored token is of no further use, except on shutdown. */
  onSessionRemoved(cacheKey: string, reason: string): void {
    const storage = this.#storage;
    if (!storage || reason === 'cleared') return;
    this.#unsaved.delete(cacheKey);
    storage.delete(cacheKey).then(
      () => this.#persistEvent({ type: 'deleted', cacheKey, reason }),
      (error: unknown) => this.#persistEvent({ type: 'deleteFailed', cacheKey, error }),
    );
  }

  /** The VaultAuth in the operator namespace labelled `cacheStorageEncryption=true`: it must be the
   * only one, and name a Transit mount and key in spec.storageEncryption. */
  #encryptionAuth(): VaultAuth {
    const d = this.#deps;
    const found = d.auths.list().filter((a) => this.#isEncryptionAuth(a));
    if (found.length !== 1)
      throw new FerryError(
        CODES.INVALID_CONFIG,
        found.length === 0
          ? `direct-encrypted persistence needs a VaultAuth in ${d.operatorNamespace} labelled ${ENCRYPTION_AUTH_LABEL}=true`
          : `more than one VaultAuth in ${d.operatorNamespace} is labelled ${ENCRYPTION_AUTH_LABEL}=true`,
      );
    const auth = found[0] as VaultAuth;
    const se = auth.spec?.storageEncryption;
    if (!se?.mount || !se.keyName)
      throw new FerryError(
        CODES.INVALID_CONFIG,
        `VaultAuth ${d.operatorNamespace}/${auth.metadata.name} has no spec.storageEncryption mount and keyName`,
      );
    return auth;
  }

  async #encryption(signal?: AbortSignal): Promise<CacheEncryption> {
    const auth = this.#encryptionAuth();
    const name = auth.metadata.name ?? '';
    const se = auth.spec?.storageEncryption ?? { mount: '', keyName: '' };
    const access = await this.#get(
      { namespace: this.#deps.operatorNamespace, vaultAuthRef: name },
      signal,
      false,
    );
    return transitEncryption(access.api, { mount: se.mount, keyName: se.keyName, vaultAuthName: name });
  }

  #isEncryptionAuth(auth: VaultAuth): boolean {
    return (
      auth.metadata.namespace === this.#deps.operatorNamespace &&
      auth.metadata.labels?.[ENCRYPTION_AUTH_LABEL] === 'true'
    );
  }

  /** Validates and adopts the stored token of `cacheKey`; undefined when there is none or it is no
   * longer usable (then a login follows). */
  async #restore(
    cacheKey: string,
    opts: VaultSessionOptions,
    signal: AbortSignal | undefined,
  ): Promise<VaultSession | undefined> {
    const storage = this.#storage;
    if (!storage) return undefined;
    let loaded: Awaited<ReturnType<ClientCacheStorage['load']>>;
    try {
      loaded = await storage.load(cacheKey, signal);
    } catch (error) {
      this.#persistEvent({ type: 'restoreFailed', cacheKey, error });
      return undefined;
    }
    if (loaded.status !== 'found') {
      if (loaded.status === 'invalid')
        this.#persistEvent({ type: 'restoreSkipped', cacheKey, reason: loaded.reason });
      return undefined;
    }
    try {
      const session = await VaultSession.restore(opts, loaded.token, signal);
      this.#persistEvent({ type: 'restored', cacheKey });
      return session;
    } catch (error) {
      this.#persistEvent({ type: 'restoreFailed', cacheKey, error });
      // Vault rejected the token: the entry is dead. Other failures (Vault unreachable) keep it for
      // the next attempt.
      if (error instanceof VaultError && (error.status === 401 || error.status === 403))
        await storage.delete(cacheKey).catch(() => {});
      return undefined;
    }
  }

  #store(owner: StorageOwner, token: PersistedToken): void {
    const storage = this.#storage;
    // VSO persists renewable tokens only: a non-renewable token cannot outlive its TTL anyway.
    if (!storage || !token.renewable) return;
    const key = owner.cacheKey;
    const job = { owner, token };
    this.#unsaved.set(key, job);
    this.#deps.tasks.schedule(`persist/${key}`, async () => {
      // A newer token or the session's removal superseded this write.
      if (this.#unsaved.get(key) !== job) return;
      let wrote: boolean;
      try {
        wrote = await storage.store(job.owner, job.token);
      } catch (error) {
        this.#persistEvent({ type: 'storeFailed', cacheKey: key, error });
        throw error;
      }
      if (this.#unsaved.get(key) === job) this.#unsaved.delete(key);
      if (wrote) this.#persistEvent({ type: 'stored', cacheKey: key });
    });
  }

  /** The namespaced name of the VaultAuth a consumer refers to (for reference indexes). */
  authRefOf(consumer: Consumer): string {
    const ref = parseRef(consumer.vaultAuthRef, {
      namespace: consumer.namespace,
      operatorNamespace: this.#deps.operatorNamespace,
    });
    return `${ref.namespace}/${ref.name}`;
  }

  get(consumer: Consumer, signal?: AbortSignal): Promise<VaultAccess> {
    return this.#get(consumer, signal, true);
  }

  async #get(consumer: Consumer, signal: AbortSignal | undefined, persist: boolean): Promise<VaultAccess> {
    const d = this.#deps;
    this.#purgeOnce();
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

    const providerNamespace = consumer.providerNamespace ?? consumer.namespace;
    const pod = consumer.podServiceAccount && {
      ...consumer.podServiceAccount,
      // Where the pod's token would go: a Vault its own namespace or the administrator chose.
      refuseApiAudience: [consumer.podServiceAccount.namespace, d.operatorNamespace].includes(
        connRef.namespace,
      )
        ? undefined
        : `VaultConnection ${connRef.namespace}/${connRef.name} is in neither the pod's namespace nor the operator's`,
    };
    const { providerUID, method } = await this.#provider(eff, providerNamespace, pod);
    const input: CacheKeyInput = {
      method: eff.method,
      authUID: uidOf(auth, 'VaultAuth'),
      authGeneration: auth.metadata.generation ?? 0,
      connectionUID: uidOf(connection, 'VaultConnection'),
      connectionGeneration: connection.metadata.generation ?? 0,
      providerUID,
    };
    const cacheKey = this.cache.keyOf(input);
    // The encryption client is never persisted (§11.4): restoring it would need itself.
    const persisted = persist && this.#storage !== undefined && !this.#isEncryptionAuth(auth);
    const owner: StorageOwner = {
      cacheKey,
      authNamespace: auth.metadata.namespace ?? '',
      authUID: input.authUID,
      authGeneration: input.authGeneration,
      connectionNamespace: connection.metadata.namespace ?? '',
      connectionUID: input.connectionUID,
      connectionGeneration: input.connectionGeneration,
      providerUID,
      providerNamespace,
    };
    const session = await this.#timedGet(
      input,
      async () => {
        const client = new VaultClient({
          ...(await connectionOptions(connection, d.client, eff.vaultNamespace, d.withheld)),
          ...(d.metrics
            ? { onRequest: vaultRequestObserver(d.metrics, `${connRef.namespace}/${connRef.name}`) }
            : {}),
        });
        const opts: VaultSessionOptions = {
          client,
          auth: method,
          clock: d.clock,
          ownsClient: true,
          ...(d.onSessionEvent ? { onEvent: d.onSessionEvent } : {}),
          ...(persisted ? { onToken: (t: PersistedToken) => this.#store(owner, t) } : {}),
        };
        try {
          if (persisted) {
            const restored = await this.#restore(cacheKey, opts, signal);
            if (restored) return restored;
          }
          return await VaultSession.login(opts, signal);
        } catch (err) {
          await client.close();
          throw err;
        }
      },
      { signal, namespace: consumer.namespace },
    );
    const api =
      consumer.vaultNamespace && consumer.vaultNamespace !== eff.vaultNamespace
        ? session.withNamespace(consumer.vaultNamespace)
        : session;
    const vaultNamespace = consumer.vaultNamespace || eff.vaultNamespace;
    return { api, session, cacheKey, clientId: session.clientId, auth, connection, vaultNamespace };
  }

  /** cache.get, counted and timed as VSO's client factory `get`. */
  async #timedGet(
    input: CacheKeyInput,
    create: () => Promise<VaultSession>,
    opts: { signal: AbortSignal | undefined; namespace: string },
  ): Promise<VaultSession> {
    const m = this.#deps.metrics;
    if (!m) return this.cache.get(input, create, opts);
    const start = performance.now();
    try {
      const session = await this.cache.get(input, create, opts);
      m.factoryRequests.inc({ operation: 'get' });
      return session;
    } catch (err) {
      m.factoryRequestErrors.inc({ operation: 'get' });
      throw err;
    } finally {
      m.factoryOperationTime.observe(
        { component: 'client_factory', operation: 'get' },
        (performance.now() - start) / 1000,
      );
    }
  }

  async #provider(eff: EffectiveAuth, namespace: string, pod: PodLogin | undefined): Promise<Provider> {
    const base = { mount: eff.mount, params: eff.params, headers: eff.headers };
    if (eff.method === 'appRole') {
      const a = eff.appRole ?? {};
      const roleId = a.roleId ?? '';
      if (a.secretIDPath) {
        const path = a.secretIDPath;
        return {
          providerUID: secretIdPathUid(path),
          // Re-read on every login: the file may have been rotated.
          method: appRoleAuth({ ...base, roleId, getSecretId: () => readSecretIdFile(path) }),
        };
      }
      const { providerUID, read } = await this.#secretSource(namespace, a.secretRef ?? '', secretKey('id'));
      return { providerUID, method: appRoleAuth({ ...base, roleId, getSecretId: read }) };
    }
    if (eff.method === 'aws') return this.#aws(eff.aws ?? {}, namespace, base);
    if (eff.method === 'gcp') return this.#gcp(eff.gcp ?? {}, namespace, base);
    if (eff.method === 'jwt') {
      const j = eff.jwt ?? {};
      const opts = { ...base, role: j.role ?? '' };
      // VSO: the ServiceAccount wins when both sources are set.
      if (j.serviceAccount)
        return this.#serviceAccountToken(namespace, j, pod, (getToken) => jwtAuth({ ...opts, getToken }));
      const { providerUID, read } = await this.#secretSource(namespace, j.secretRef ?? '', secretKey('jwt'));
      return { providerUID, method: jwtAuth({ ...opts, getToken: read }) };
    }
    const k = eff.kubernetes ?? {};
    return this.#serviceAccountToken(namespace, k, pod, (getToken) =>
      kubernetesAuth({ ...base, role: k.role ?? '', getToken }),
    );
  }

  /**
   * AWS credentials as VSO takes them: a Secret's `access_key_id`/`secret_access_key`/`session_token`,
   * else IRSA (a TokenRequest for the ServiceAccount, with the audience and lifetime of its EKS
   * annotations, exchanged at STS by AssumeRoleWithWebIdentity for the role it names).
   */
  async #aws(a: AwsLogin, namespace: string, base: LoginBase): Promise<Provider> {
    // awsutil's order: the configured region, the environment's, else us-east-1 (the EC2 metadata
    // region lookup in between is not made).
    const env = this.#deps.env;
    const region = a.region || env?.AWS_REGION || env?.AWS_DEFAULT_REGION || DEFAULT_AWS_REGION;
    const stsEndpoint = a.stsEndpoint || stsUrl(region);
    // The AWS SDK's default session name: the time of the login in nanoseconds.
    const sessionName = (): string => a.sessionName || `${this.#deps.clock.now()}000000`;
    const method = (getCredentials: () => Promise<AwsCredentials>): AuthMethod =>
      awsAuth({
        ...base,
        role: a.role ?? '',
        region,
        headerValue: a.headerValue,
        getCredentials,
        now: () => this.#deps.clock.now(),
      });
    if (a.secretRef) {
      const { providerUID, read } = await this.#secretSource(namespace, a.secretRef, (s, what) => {
        const token = s.data?.session_token;
        return {
          accessKeyId: secretValue(s, 'access_key_id', what),
          secretAccessKey: secretValue(s, 'secret_access_key', what),
          ...(token ? { sessionToken: Buffer.from(token, 'base64').toString('utf8') } : {}),
        };
      });
      return { providerUID, method: method(read) };
    }
    if (a.irsaServiceAccount) {
      const name = a.irsaServiceAccount;
      return {
        providerUID: await this.#serviceAccountUid(namespace, name),
        method: method(async () => {
          // Annotations are read on every login: the role may be changed on the ServiceAccount.
          const sa = await this.#serviceAccount(namespace, name);
          const irsa = irsaConfig(sa.metadata.annotations, `${namespace}/${name}`);
          const tr = await this.#createToken(namespace, name, {
            audiences: [irsa.audience],
            expirationSeconds: irsa.expirationSeconds,
          });
          return assumeRoleWithWebIdentity({
            stsEndpoint,
            roleArn: irsa.roleArn,
            sessionName: sessionName(),
            token: tr.token,
          });
        }),
      };
    }
    if (!env) throw awsNodeRoleUnsupported();
    return {
      providerUID: nameUid('aws-default-credentials', ''),
      method: method(() =>
        ambientAwsCredentials({
          env,
          stsEndpoint,
          sessionName: sessionName(),
          readFile: (path) => readFile(path, 'utf8'),
        }),
      ),
    };
  }

  /** GKE Workload Identity (see vault/auth/gcp.ts); the ServiceAccount's annotation names the Google
   * service account and is read on every login. */
  async #gcp(g: GcpLogin, namespace: string, base: LoginBase): Promise<Provider> {
    const name = g.workloadIdentityServiceAccount ?? '';
    const endpoints = this.#deps.gcpEndpoints ?? GOOGLE_ENDPOINTS;
    const role = g.role ?? '';
    const metadata = this.#gcpMetadata;
    const getToken = async (): Promise<string> => {
      const project = g.projectID || (await metadata.get('project/project-id'));
      const location = g.region || (await metadata.get('instance/attributes/cluster-location'));
      const cluster = g.clusterName || (await metadata.get('instance/attributes/cluster-name'));
      const sa = await this.#serviceAccount(namespace, name);
      const serviceAccount = sa.metadata.annotations?.[GCP_SERVICE_ACCOUNT_ANNOTATION];
      if (!serviceAccount)
        throw new FerryError(
          CODES.INVALID_CONFIG,
          `ServiceAccount ${namespace}/${name} has no ${GCP_SERVICE_ACCOUNT_ANNOTATION} annotation`,
        );
      const tr = await this.#createToken(namespace, name, {
        audiences: [workloadIdentityPool(project)],
        expirationSeconds: 600,
      });
      return gcpIdToken({ project, location, cluster, serviceAccount, vaultRole: role }, tr.token, endpoints);
    };
    return {
      providerUID: await this.#serviceAccountUid(namespace, name),
      method: gcpAuth({ ...base, role, getToken }),
    };
  }

  /**
   * A ServiceAccount token source. In the CSI driver (podTokens), the pod's own token that kubelet
   * issued for the VaultAuth's audience, logging in as the pod's ServiceAccount; one session per
   * such ServiceAccount, keyed by its name (no ServiceAccount read). Otherwise a TokenRequest for the
   * VaultAuth's ServiceAccount with the configured audiences and lifetime on every login (VSO's
   * default lifetime is the CRD's 600 s).
   */
  async #serviceAccountToken(
    namespace: string,
    k: KubernetesLogin,
    pod: PodLogin | undefined,
    method: (getToken: () => Promise<string>) => AuthMethod,
  ): Promise<Provider> {
    const podTokens = this.#deps.podTokens;
    if (podTokens && pod) {
      const sa = { namespace: pod.namespace, name: pod.name };
      const opts = { refuseApiAudience: pod.refuseApiAudience };
      return {
        providerUID: nameUid('pod-service-account', `${pod.namespace}/${pod.name}`),
        method: method(async () => podTokens.token(sa, k.audiences, opts)),
      };
    }
    const sa = k.serviceAccount ?? '';
    const providerUID = await this.#serviceAccountUid(namespace, sa);
    const getToken = async (): Promise<string> => {
      const tr = await this.#createToken(namespace, sa, {
        ...(k.audiences && k.audiences.length > 0 ? { audiences: k.audiences } : {}),
        expirationSeconds: k.tokenExpirationSeconds ?? 600,
      });
      return tr.token;
    };
    return { providerUID, method: method(getToken) };
  }

  #createToken(namespace: string, name: string, spec: Parameters<KubeClient['createToken']>[2]) {
    const fix = this.#deps.withheld?.tokenRequests;
    if (fix)
      throw withheldError(`logging in needs a TokenRequest for ServiceAccount ${namespace}/${name}`, fix);
    return this.#deps.client.createToken(namespace, name, spec);
  }

  /** A credential held in a Secret in the provider namespace, as `pick` takes it from the Secret:
   * the Secret's UID identifies the provider, and the Secret is re-read on every login (it may have
   * been rotated). */
  async #secretSource<T>(
    namespace: string,
    name: string,
    pick: (secret: Secret, what: string) => T,
  ): Promise<{ providerUID: string; read: () => Promise<T> }> {
    const what = `${namespace}/${name}`;
    const secret = await this.#secret(namespace, name);
    return {
      providerUID: uidOf(secret, `Secret ${what}`),
      read: async () => pick(await this.#secret(namespace, name), what),
    };
  }

  async #serviceAccountUid(namespace: string, name: string): Promise<string> {
    const key = `${namespace}/${name}`;
    const hit = this.#saUids.get(key);
    const now = this.#deps.clock.now();
    if (hit && now - hit.at < SA_UID_TTL_MS) return hit.uid;
    const entry = {
      uid: this.#serviceAccount(namespace, name).then((sa) => uidOf(sa, `ServiceAccount ${key}`)),
      at: now,
    };
    this.#saUids.set(key, entry);
    entry.uid.catch(() => {
      if (this.#saUids.get(key) === entry) this.#saUids.delete(key);
    });
    return entry.uid;
  }

  #serviceAccount(namespace: string, name: string): Promise<KubeObject> {
    const fix = this.#deps.withheld?.tokenRequests;
    if (fix) throw withheldError(`logging in needs ServiceAccount ${namespace}/${name} read`, fix);
    return getRequired<KubeObject>(this.#deps.client, ServiceAccounts, name, namespace, 'ServiceAccount');
  }

  #secret(namespace: string, name: string): Promise<Secret> {
    const fix = this.#deps.withheld?.secretReads;
    if (fix) throw withheldError(`logging in needs Secret ${namespace}/${name} read`, fix);
    return getRequired<Secret>(this.#deps.client, Secrets, name, namespace, 'Secret');
  }
}

function secretValue(secret: Secret, key: string, what: string): string {
  const v = secret.data?.[key];
  if (!v) throw new FerryError(CODES.INVALID_CONFIG, `Secret ${what} has no ${key} key`);
  return Buffer.from(v, 'base64').toString('utf8');
}

/** The `pick` of a credential held under `key` of a Secret (see secretValue). */
const secretKey =
  (key: string) =>
  (secret: Secret, what: string): string =>
    secretValue(secret, key, what);

/** A secret-id file has no Kubernetes UID; VSO takes a random one on every client creation, which
 * would give each login a new cache key. A name-based UUID of the path keeps one session per file. */
export const secretIdPathUid = (path: string): string => nameUid('approle-secret-id-path', path);

/** A stable UUID-shaped provider UID for a credential source that is no Kubernetes object (VSO uses
 * the operator namespace's kube-root-ca.crt UID for the AWS default chain; Ferry may not read it). */
export function nameUid(kind: string, value: string): string {
  const h = createHash('sha256').update(`${kind}:${value}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const awsNodeRoleUnsupported = (): FerryError =>
  new FerryError(
    CODES.INVALID_CONFIG,
    "aws auth with the operator's own credentials is not available in this process: set spec.aws.secretRef or spec.aws.irsaServiceAccount",
  );

/** VSO's EKS annotations of an IRSA ServiceAccount: the role is required; the audience defaults to
 * sts.amazonaws.com and the token lifetime to a day. */
export function irsaConfig(
  annotations: Record<string, string> | undefined,
  what: string,
): { roleArn: string; audience: string; expirationSeconds: number } {
  const roleArn = annotations?.['eks.amazonaws.com/role-arn'];
  if (!roleArn)
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `ServiceAccount ${what} has no eks.amazonaws.com/role-arn annotation`,
    );
  const exp = annotations?.['eks.amazonaws.com/token-expiration'];
  const expirationSeconds = exp === undefined ? 86_400 : Number(exp);
  if (!Number.isSafeInteger(expirationSeconds))
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `ServiceAccount ${what}: eks.amazonaws.com/token-expiration ${JSON.stringify(exp)} is not an integer`,
    );
  return {
    roleArn,
    audience: annotations?.['eks.amazonaws.com/audience'] || 'sts.amazonaws.com',
    expirationSeconds,
  };
}

function cacheMetrics(m: VaultMetrics): CacheMetrics {
  return {
    hit: () => m.cacheHits.inc({}),
    miss: () => m.cacheMisses.inc({}),
    eviction: () => m.cacheEvictions.inc({}),
    size: (n) => m.cacheLength.set({}, n),
  };
}

/** VSO's storage counters: requests (store, restore, delete, purge) and, for store and restore, the
 * operations behind them. */
function countPersistence(m: VaultMetrics, ev: PersistenceEvent): void {
  const [operation, failed] = STORAGE_OPERATION[ev.type];
  (failed ? m.storageRequestErrors : m.storageRequests).inc({ operation });
  if (operation === 'store' || operation === 'restore') {
    (failed ? m.storageOperationErrors : m.storageOperations).inc({ operation });
  }
}

const STORAGE_OPERATION: Record<PersistenceEvent['type'], [string, boolean]> = {
  stored: ['store', false],
  storeFailed: ['store', true],
  restored: ['restore', false],
  restoreSkipped: ['restore', true],
  restoreFailed: ['restore', true],
  deleted: ['delete', false],
  deleteFailed: ['delete', true],
  purged: ['purge', false],
  purgeFailed: ['purge', true],
};
