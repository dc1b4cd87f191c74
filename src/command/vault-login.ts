// Logging in to Vault through a VaultAuth the way the operator does, for `ferry audit` and `ferry
// doctor`: the operator's own resolver (src/delivery/vault-access.ts) over a one-time listing of the
// VaultAuths, VaultAuthGlobals and VaultConnections instead of informers. Credentials come from the
// cluster as the operator takes them (a TokenRequest for the ServiceAccount, a Secret's AppRole
// secret ID, ...), with the user's kubeconfig; the tokens are revoked when the command ends.
import { VaultAuthGlobals, VaultAuths, VaultConnections } from '../api/resources.ts';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import type { VaultAuth } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../api/v1beta1/vaultconnection.ts';
import { type Clock, sleep } from '../clock.ts';
import { DEFAULT_DRIVER_NAME } from '../consts/labels.ts';
import {
  apiAudienceRefused,
  type Consumer,
  type PodTokenSource,
  resolveAuthConfig,
  type VaultAccess,
  VaultAccessResolver,
} from '../delivery/vault-access.ts';
import { CODES, errorMessage, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { CSIDrivers, DaemonSets, ServiceAccounts } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import {
  type CsiDriverTokens,
  type CsiLoginIdentity,
  csiLoginIdentity,
  describeIdentity,
  podLoginFix,
  type ServiceAccountName,
} from './csi-identity.ts';

interface DaemonSet extends KubeObject {
  spec?: { template?: { spec?: { containers?: { args?: string[] }[] } } };
}

interface CSIDriver extends KubeObject {
  spec?: { tokenRequests?: { audience?: string }[] };
}

/** One login the CSI driver would make for a CSISecrets, as `ferry audit` and `ferry doctor` try it. */
export interface CsiLogin {
  /** As whom, and why. */
  as: string;
  /** The VaultAuth's own login, the same as its other consumers' in the namespace. */
  own: boolean;
  /** The CSI driver logs in as this pod ServiceAccount with a token for `audience`. */
  pod?: { sa: ServiceAccountName; audience: string; role: string };
  /** No login can be tried: why, and the fix. */
  failed?: { error: string; fix: string };
}

/** A read-only snapshot with the shape of the operator's informer store. */
function snapshot<T extends KubeObject>(items: T[]) {
  const byKey = new Map(items.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
  return {
    get: (namespace: string | undefined, name: string): T | undefined =>
      byKey.get(`${namespace ?? ''}/${name}`),
    list: (): T[] => items,
    byIndex: (): T[] => [],
    isReady: (): boolean => true,
    waitUntilReady: async (): Promise<void> => {},
  };
}

/** Runs `fn` with a signal that aborts with `signal` or after `ms` on `clock` (a Vault that does not
 * answer: its connection's own timeout may be minutes). */
export async function withDeadline<T>(
  clock: Clock,
  ms: number,
  signal: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = new AbortController();
  const done = new AbortController();
  void sleep(clock, ms, AbortSignal.any([signal, done.signal])).then(() => {
    if (!done.signal.aborted && !signal.aborted)
      timeout.abort(new Error(`no answer from Vault in ${ms / 1000}s`));
  });
  try {
    return await fn(AbortSignal.any([signal, timeout.signal]));
  } finally {
    done.abort();
  }
}

/** A CSISecrets' login check that failed: what was tried as whom, and the fix. */
export class CsiLoginError extends Error {
  readonly identity: string;
  readonly fix: string;

  constructor(message: string, identity: string, fix: string) {
    super(message);
    this.identity = identity;
    this.fix = fix;
  }
}

/** How long one login may take before it counts as failed (a Vault that does not answer). */
const LOGIN_TIMEOUT_MS = 20_000;

/** Tokens standing in for the ones kubelet would give a pod (the CSI driver's login): one per
 * ServiceAccount, for the one audience the check chose, minted by TokenRequest just before. */
class MintedPodTokens implements PodTokenSource {
  readonly byServiceAccount = new Map<string, { audience: string; token: string }>();

  token(
    sa: { namespace: string; name: string },
    _audiences: readonly string[] | undefined,
    opts?: { refuseApiAudience?: string | undefined },
  ): string {
    const t = this.byServiceAccount.get(`${sa.namespace}/${sa.name}`);
    if (!t)
      throw new FerryError(CODES.CSI_PRECONDITION, `no token for ServiceAccount ${sa.namespace}/${sa.name}`);
    // As the driver: the API server's own audience is a Kubernetes credential, kept from a foreign Vault.
    if (t.audience === '' && opts?.refuseApiAudience) throw apiAudienceRefused(opts.refuseApiAudience);
    return t.token;
  }
}

export class VaultLogins {
  readonly auths: VaultAuth[];
  readonly #resolver: VaultAccessResolver;
  readonly #clock: Clock;
  readonly #kube: KubeClient;
  readonly #podTokens: MintedPodTokens;
  readonly #globals: VaultAuthGlobal[];
  readonly #operatorNamespace: string;
  #csiDriver: string | undefined;
  #driverArgs: Promise<string[] | undefined> | undefined;
  #driverTokens: Promise<CsiDriverTokens | undefined> | undefined;
  #serviceAccounts: Promise<ServiceAccountName[]> | undefined;

  private constructor(
    auths: VaultAuth[],
    resolver: VaultAccessResolver,
    clock: Clock,
    more: {
      kube: KubeClient;
      podTokens: MintedPodTokens;
      globals: VaultAuthGlobal[];
      operatorNamespace: string;
      csiDriver: string | undefined;
    },
  ) {
    this.auths = auths;
    this.#resolver = resolver;
    this.#clock = clock;
    this.#kube = more.kube;
    this.#podTokens = more.podTokens;
    this.#globals = more.globals;
    this.#operatorNamespace = more.operatorNamespace;
    this.#csiDriver = more.csiDriver;
  }

  /** Lists what a login needs, cluster-wide (a VaultAuth may use a connection or global elsewhere).
   * `csiDriver`: the CSIDriver's name, else the CSI DaemonSet's --driver-name, else VSO's. */
  static async load(
    kube: KubeClient,
    opts: { operatorNamespace: string; clock: Clock; csiDriver?: string | undefined },
  ): Promise<VaultLogins> {
    const [auths, globals, connections] = await Promise.all([
      kube.list<VaultAuth>(VaultAuths),
      kube.list<VaultAuthGlobal>(VaultAuthGlobals),
      kube.list<VaultConnection>(VaultConnections),
    ]);
    const podTokens = new MintedPodTokens();
    const resolver = new VaultAccessResolver({
      podTokens,
      client: kube,
      operatorNamespace: opts.operatorNamespace,
      auths: snapshot(auths.items),
      authGlobals: snapshot(globals.items),
      connections: snapshot(connections.items),
      cacheSize: 1000,
      clock: opts.clock,
      // Only persistence schedules tasks, and the command persists nothing.
      tasks: { schedule: () => {} },
      // The operator's default; the AWS default credential chain is left out (env unset): here it
      // would be the user's credentials, not the operator's.
      allowDefaultGlobals: true,
    });
    return new VaultLogins(auths.items, resolver, opts.clock, {
      kube,
      podTokens,
      globals: globals.items,
      operatorNamespace: opts.operatorNamespace,
      csiDriver: opts.csiDriver,
    });
  }

  /** Whether VaultAuth `namespace/name` logs in with a ServiceAccount token (kubernetes; jwt with a
   * serviceAccount), and its audiences; undefined when it is missing or invalid. */
  tokenLoginOf(
    auth: string,
  ): { podLogin: boolean; audiences: readonly string[] | undefined; role: string } | undefined {
    const a = this.auths.find((x) => `${x.metadata.namespace}/${x.metadata.name}` === auth);
    if (!a) return undefined;
    try {
      const eff = resolveAuthConfig(a, {
        authGlobals: snapshot(this.#globals),
        operatorNamespace: this.#operatorNamespace,
        allowDefaultGlobals: true,
      });
      if (eff.method === 'kubernetes')
        return { podLogin: true, audiences: eff.kubernetes?.audiences, role: eff.kubernetes?.role ?? '' };
      if (eff.method === 'jwt' && eff.jwt?.serviceAccount)
        return { podLogin: true, audiences: eff.jwt.audiences, role: eff.jwt.role ?? '' };
      return { podLogin: false, audiences: undefined, role: '' };
    } catch {
      return undefined;
    }
  }

  /** Logs in as the CSI driver would for a pod running as `sa`: with a token for `audience` ("" the
   * API server's), from a TokenRequest with the user's kubeconfig instead of kubelet. */
  async loginAsPod(
    consumer: Consumer,
    sa: { namespace: string; name: string },
    audience: string,
    signal: AbortSignal,
  ): Promise<VaultAccess> {
    const tr = await this.#kube.createToken(sa.namespace, sa.name, {
      ...(audience === '' ? {} : { audiences: [audience] }),
      expirationSeconds: 600,
    });
    this.#podTokens.byServiceAccount.set(`${sa.namespace}/${sa.name}`, { audience, token: tr.token });
    return this.login({ ...consumer, podServiceAccount: sa }, signal);
  }

  /** The arguments of the installed CSI driver's containers (the chart's DaemonSet); undefined
   * without one to read. */
  #csiDriverArgs(): Promise<string[] | undefined> {
    this.#driverArgs ??= this.#kube
      .list<DaemonSet>(DaemonSets, {
        namespace: this.#operatorNamespace,
        labelSelector: 'app.kubernetes.io/component=csi-driver',
      })
      .then((l) =>
        l.items.length === 0
          ? undefined
          : l.items.flatMap((d) => (d.spec?.template?.spec?.containers ?? []).flatMap((c) => c.args ?? [])),
      )
      .catch(() => undefined);
    return this.#driverArgs;
  }

  /** Whether the installed CSI driver logs in as the VaultAuth's ServiceAccount (the chart's
   * csi.driver.tokenRequestLogin: its DaemonSet passes --token-request-login); without a DaemonSet
   * to read, the default (as the pod). */
  async csiTokenRequestLogin(): Promise<boolean> {
    return (await this.#csiDriverArgs())?.includes('--token-request-login') ?? false;
  }

  /** The audiences the CSIDriver has kubelet issue pod tokens for; undefined when there is no
   * CSIDriver to read (`ferry doctor -A` reports a missing one). */
  csiDriverTokens(): Promise<CsiDriverTokens | undefined> {
    this.#driverTokens ??= (async () => {
      const arg = (await this.#csiDriverArgs())?.find((a) => a.startsWith('--driver-name='));
      const name = this.#csiDriver ?? arg?.slice('--driver-name='.length) ?? DEFAULT_DRIVER_NAME;
      const d = await this.#kube.getIfExists<CSIDriver>(CSIDrivers, name).catch(() => undefined);
      return d && { name, audiences: (d.spec?.tokenRequests ?? []).map((t) => t.audience ?? '') };
    })();
    return this.#driverTokens;
  }

  /** The cluster's ServiceAccounts (what a CSISecrets' pods may run as); none when not listable. */
  serviceAccounts(): Promise<ServiceAccountName[]> {
    this.#serviceAccounts ??= this.#kube
      .list<KubeObject>(ServiceAccounts)
      .then((l) =>
        l.items.map((o) => ({ namespace: o.metadata.namespace ?? '', name: o.metadata.name ?? '' })),
      )
      .catch(() => []);
    return this.#serviceAccounts;
  }

  /** Who the CSI driver would log in as for CSISecrets `spec` in `namespace` through VaultAuth `auth`. */
  async csiIdentity(
    auth: string,
    namespace: string,
    spec: CSISecretsSpec | undefined,
  ): Promise<CsiLoginIdentity & { role: string }> {
    const login = this.tokenLoginOf(auth);
    const podLogin = login?.podLogin ?? false;
    const identity = csiLoginIdentity({
      namespace,
      spec,
      tokenRequestLogin: await this.csiTokenRequestLogin(),
      podLogin,
      audiences: login?.audiences,
      serviceAccounts: podLogin ? await this.serviceAccounts() : [],
      driver: podLogin ? await this.csiDriverTokens() : undefined,
    });
    return { ...identity, role: login?.role ?? '' };
  }

  /** The logins the CSI driver would make for CSISecrets `spec` of `consumer` through its VaultAuth:
   * one per pod ServiceAccount tried, else the VaultAuth's own, else one that cannot be tried. */
  async csiLogins(consumer: Consumer & { vaultAuthRef: string }, spec: CSISecretsSpec | undefined) {
    const id = await this.csiIdentity(consumer.vaultAuthRef, consumer.namespace, spec);
    if (id.kind === 'vaultAuth') return [{ as: describeIdentity(id), own: true }] satisfies CsiLogin[];
    if (id.kind === 'none')
      return [
        { as: describeIdentity(id), own: false, failed: { error: id.why, fix: id.fix } },
      ] satisfies CsiLogin[];
    return id.serviceAccounts.map(
      (sa): CsiLogin => ({
        as: describeIdentity(id, sa),
        own: false,
        pod: { sa, audience: id.audience, role: id.role },
      }),
    );
  }

  /** Tries `l` for `consumer`; rejects with a CsiLoginError naming the identity and the fix
   * (`advice` for failures that are not Vault refusing the pod's ServiceAccount). */
  async loginCsi(
    consumer: Consumer,
    l: CsiLogin,
    signal: AbortSignal,
    advice: (err: unknown) => string,
  ): Promise<VaultAccess> {
    if (l.failed) throw new CsiLoginError(l.failed.error, l.as, l.failed.fix);
    try {
      return l.pod
        ? await this.loginAsPod(consumer, l.pod.sa, l.pod.audience, signal)
        : await this.login(consumer, signal);
    } catch (err) {
      const p = l.pod;
      const fix = p && isVaultRefusal(err) ? podLoginFix(p.role, p.sa, p.audience) : advice(err);
      throw new CsiLoginError(errorMessage(err), l.as, fix);
    }
  }

  /** Logs in as the CSI driver would for CSISecrets `spec` of `consumer` (the first of its pods'
   * ServiceAccounts); rejects with a CsiLoginError naming the identity tried and the fix. */
  async loginAsCsi(
    consumer: Consumer & { vaultAuthRef: string },
    spec: CSISecretsSpec | undefined,
    signal: AbortSignal,
    advice: (err: unknown) => string,
  ): Promise<{ access: VaultAccess; identity: string }> {
    // Never empty: a pod identity has at least one ServiceAccount.
    const first = (await this.csiLogins(consumer, spec))[0]!;
    return { access: await this.loginCsi(consumer, first, signal, advice), identity: first.as };
  }

  /** Logs in as `consumer` would; rejects with the login error, or after LOGIN_TIMEOUT_MS. */
  login(consumer: Consumer, signal: AbortSignal): Promise<VaultAccess> {
    return withDeadline(this.#clock, LOGIN_TIMEOUT_MS, signal, (s) => this.#resolver.get(consumer, s));
  }

  /** Revokes every token this process obtained (best effort: Vault may be gone). */
  async close(): Promise<void> {
    await this.#resolver.cache.clear({ revoke: true });
  }
}

/** Whether Vault answered a login with a refusal (the role does not accept the identity), rather
 * than failing to be reached or the cluster refusing a credential. */
export function isVaultRefusal(err: unknown): boolean {
  const m = errorMessage(err);
  return /auth\/\S*login/.test(m) && /status (400|403)|permission denied|not authorized|invalid/.test(m);
}
