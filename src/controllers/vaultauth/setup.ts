import { authsOfConnection, authsOfGlobal, type KindSetup, specOrMetaChanged } from '../setup.ts';
import { vaultAuthGlobalReconciler, vaultAuthReconciler } from './reconcile.ts';

export const setupVaultAuth: KindSetup = ({ manager, ctx }) => {
  const { auths, connections, authGlobals } = ctx.informers;
  manager
    .controller({ name: 'vaultauth', reconcile: vaultAuthReconciler(ctx) })
    .for(auths, { predicate: specOrMetaChanged })
    .watches(connections, authsOfConnection(ctx), { predicate: (ev) => ev.type !== 'update' })
    .watches(authGlobals, authsOfGlobal(ctx));
};

export const setupVaultAuthGlobal: KindSetup = ({ manager, ctx }) => {
  manager
    .controller({ name: 'vaultauthglobal', reconcile: vaultAuthGlobalReconciler(ctx) })
    .for(ctx.informers.authGlobals, { predicate: specOrMetaChanged });
};

/** How long the controllers of a new leader wait for the stored sessions to be restored. */
export const CLIENT_CACHE_WARM_UP_MS = 5_000;

/** Persisted Vault tokens are restored as soon as this replica leads (vso-api §11.4), before anything
 * needs them: an unrenewed token takes its leases with it. All of them first, before the controllers
 * start (up to CLIENT_CACHE_WARM_UP_MS): the leases due at a takeover wait for their session, which
 * should not wait behind the takeover's burst of reconciles. Then each VaultAuth created later. */
export const setupClientCacheRestore: KindSetup = ({ manager, ctx }) => {
  if ((ctx.options.clientCachePersistenceModel ?? 'none') === 'none') return;
  const { auths } = ctx.informers;
  manager.beforeControllers(
    'clientcache',
    async (signal) => {
      await ctx.vault.restoreAll(signal);
    },
    CLIENT_CACHE_WARM_UP_MS,
  );
  manager
    .controller({
      name: 'clientcache',
      reconcile: async ({ key, signal }) => {
        const auth = auths.store.get(key.namespace, key.name);
        if (auth && !auth.metadata.deletionTimestamp) await ctx.vault.restoreStored(auth, signal);
        return { awaitChange: true };
      },
    })
    .for(auths, { predicate: (ev) => ev.type === 'create' });
};
