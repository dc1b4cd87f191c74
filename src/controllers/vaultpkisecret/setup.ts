import { VaultPKISecrets } from '../../api/resources.ts';
import type { VaultPKISecret } from '../../api/v1beta1/vaultpkisecret.ts';
import { type KindSetup, setupSecretKind } from '../setup.ts';
import { vaultPKISecretReconciler } from './reconcile.ts';

export const setupVaultPKISecret: KindSetup = (env) =>
  setupSecretKind<VaultPKISecret>(env, {
    name: 'vaultpkisecret',
    resource: VaultPKISecrets,
    reconciler: (store) => vaultPKISecretReconciler(env.ctx, store, env.destinations),
  });
