import { VaultDynamicSecrets } from '../../api/resources.ts';
import type { VaultDynamicSecret } from '../../api/v1beta1/vaultdynamicsecret.ts';
import { type KindSetup, setupSecretKind } from '../setup.ts';
import { vaultDynamicSecretReconciler } from './reconcile.ts';

export const setupVaultDynamicSecret: KindSetup = (env) =>
  setupSecretKind<VaultDynamicSecret>(env, {
    name: 'vaultdynamicsecret',
    resource: VaultDynamicSecrets,
    reconciler: (store) => vaultDynamicSecretReconciler(env.ctx, store, env.destinations),
  });
