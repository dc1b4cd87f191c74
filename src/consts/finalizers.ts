// Finalizer names (vso-api.md §3). Identical to VSO's so that Ferry can take over objects VSO created,
// and VSO's uninstall hook still recognises Ferry's. Note the plural in the VaultPKISecret name.
export const FINALIZERS = {
  VaultConnection: 'vaultconnection.secrets.hashicorp.com/finalizer',
  VaultAuth: 'vaultauth.secrets.hashicorp.com/finalizer',
  VaultStaticSecret: 'vaultstaticsecret.secrets.hashicorp.com/finalizer',
  VaultDynamicSecret: 'vaultdynamicsecret.secrets.hashicorp.com/finalizer',
  VaultPKISecret: 'vaultpkisecrets.secrets.hashicorp.com/finalizer',
  HCPVaultSecretsApp: 'hcpvaultsecretsapp.secrets.hashicorp.com/finalizer',
} as const;
