import { VaultStaticSecrets } from '../../api/resources.ts';
import type { VaultStaticSecret } from '../../api/v1beta1/vaultstaticsecret.ts';
import { type KindSetup, setupSecretKind } from '../setup.ts';
import { INSTANT_INDEX, instantIndex, ReadNamespaces, setupInstantUpdates } from './instant.ts';
import { vaultStaticSecretReconciler } from './reconcile.ts';

export const setupVaultStaticSecret: KindSetup = (env) => {
  const namespaces = new ReadNamespaces();
  const { informer, controller } = setupSecretKind<VaultStaticSecret>(env, {
    name: 'vaultstaticsecret',
    resource: VaultStaticSecrets,
    reconciler: (store) => vaultStaticSecretReconciler(env.ctx, store, env.destinations, namespaces),
    indexes: { [INSTANT_INDEX]: instantIndex },
  });
  setupInstantUpdates(env, informer, controller, namespaces);
};
