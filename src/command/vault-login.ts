// Logging in to Vault through a VaultAuth the way the operator does, for `ferry audit` and `ferry
// doctor`: the operator's own resolver (src/delivery/vault-access.ts) over a one-time listing of the
// VaultAuths, VaultAuthGlobals and VaultConnections instead of informers. Credentials come from the
// cluster as the operator takes them (a TokenRequest for the ServiceAccount, a Secret's AppRole
// secret ID, ...), with the user's kubeconfig; the tokens are revoked when the command ends.
import { VaultAuthGlobals, VaultAuths, VaultConnections } from '../api/resources.ts';
import type { VaultAuth } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../api/v1beta1/vaultconnection.ts';
import { type Clock, sleep } from '../clock.ts';
import { type Consumer, type VaultAccess, VaultAccessResolver } from '../delivery/vault-access.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { KubeObject } from '../k8s/types.ts';

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

/** How long one login may take before it counts as failed (a Vault that does not answer). */
const LOGIN_TIMEOUT_MS = 20_000;

export class VaultLogins {
  readonly auths: VaultAuth[];
  readonly #resolver: VaultAccessResolver;
  readonly #clock: Clock;

  private constructor(auths: VaultAuth[], resolver: VaultAccessResolver, clock: Clock) {
    this.auths = auths;
    this.#resolver = resolver;
    this.#clock = clock;
  }

  /** Lists what a login needs, cluster-wide (a VaultAuth may use a connection or global elsewhere). */
  static async load(
    kube: KubeClient,
    opts: { operatorNamespace: string; clock: Clock },
  ): Promise<VaultLogins> {
    const [auths, globals, connections] = await Promise.all([
      kube.list<VaultAuth>(VaultAuths),
      kube.list<VaultAuthGlobal>(VaultAuthGlobals),
      kube.list<VaultConnection>(VaultConnections),
    ]);
    const resolver = new VaultAccessResolver({
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
    return new VaultLogins(auths.items, resolver, opts.clock);
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
