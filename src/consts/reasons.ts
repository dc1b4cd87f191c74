// Kubernetes Event reasons. The strings are VSO's (vso-api.md §15) so that existing alerting on Event
// reasons keeps working when Ferry replaces VSO. Never rename a value.
export const REASONS = {
  // Config and references
  Accepted: 'Accepted',
  InvalidConfiguration: 'InvalidConfiguration',
  InvalidResourceRef: 'InvalidResourceRef',
  Unrecoverable: 'Unrecoverable',
  VaultClientConfigError: 'VaultClientConfigError',
  HVSClientConfigError: 'HVSClientConfigError',
  TransformationError: 'TransformationError',
  /** Ferry addition: HCPAuth and HCPVaultSecretsApp are not served (HCP Vault Secrets is end of life). */
  KindNotSupported: 'KindNotSupported',
  // Sync
  SecretSync: 'SecretSync',
  SecretSynced: 'SecretSynced',
  SecretSyncError: 'SecretSyncError',
  SecretRotated: 'SecretRotated',
  SecretDataDrift: 'SecretDataDrift',
  SecretDataBuilderError: 'SecretDataBuilderError',
  HMACDataError: 'HMACDataError',
  InexistentDestination: 'InexistentDestination',
  ResourceUpdated: 'ResourceUpdated',
  InitialSync: 'InitialSync',
  ForceSync: 'ForceSync',
  InRenewalWindow: 'InRenewalWindow',
  VaultTokenRotated: 'VaultTokenRotated',
  VaultClientConfigChanged: 'VaultClientConfigChanged',
  // Leases and certificates
  SecretLeaseRenewal: 'SecretLeaseRenewal',
  SecretLeaseRenewalError: 'SecretLeaseRenewalError',
  SecretLeaseRevoke: 'SecretLeaseRevoke',
  CertificateRevocationError: 'CertificateRevocationError',
  // Errors
  VaultClientError: 'VaultClientError',
  VaultStaticSecretError: 'VaultStaticSecretError',
  HVSSecretError: 'HVSSecretError',
  K8sClientError: 'K8sClientError',
  StatusUpdateError: 'StatusUpdateError',
  // Protected secrets (CSI): a pod was refused, its identity unproven or accessControl unmatched
  PodNotAuthorized: 'PodNotAuthorized',
  // Rollout restart
  RolloutRestartTriggered: 'RolloutRestartTriggered',
  RolloutRestartFailed: 'RolloutRestartFailed',
  RolloutRestartTriggeredFailed: 'RolloutRestartTriggeredFailed',
  RolloutRestartUnsupported: 'RolloutRestartUnsupported',
  // Vault events API
  EventWatcherStarted: 'EventWatcherStarted',
  EventWatcherError: 'EventWatcherError',
  // Ferry only: a VaultConnection address outside the operator's --vault-address-allowlist
  VaultAddressNotAllowed: 'VaultAddressNotAllowed',
  // Ferry only: with --strict-destination-ownership, a Secret Ferry did not create lacks the opt-in
  DestinationNotOptedIn: 'DestinationNotOptedIn',
  /** Ferry: instantUpdates is set but this operator has no change stream (docs/instant-updates.md). */
  InstantUpdatesUnavailable: 'InstantUpdatesUnavailable',
  // Health
  Healthy: 'Healthy',
  Unhealthy: 'Unhealthy',
  Ready: 'Ready',
} as const;

export type Reason = (typeof REASONS)[keyof typeof REASONS];

/** Event recorder component names, one per controller (vso-api.md §15). */
export const COMPONENTS = {
  VaultStaticSecret: 'VaultStaticSecret',
  VaultDynamicSecret: 'VaultDynamicSecret',
  VaultPKISecret: 'VaultPKISecret',
  VaultAuth: 'VaultAuth',
  VaultConnection: 'VaultConnection',
  HCPVaultSecretsApp: 'HCPVaultSecretsApp',
  SecretTransformation: 'SecretTransformation',
  VaultClientFactory: 'vaultClientFactory',
} as const;
