// Kubernetes Event reasons. The strings are VSO's (vso-api.md §15) so that existing alerting on Event
// reasons keeps working when Ferry replaces VSO. Never rename a value. Only reasons Ferry emits (or
// sets on a condition) are listed: VSO's sync reasons (InitialSync, ResourceUpdated, ForceSync,
// InRenewalWindow, VaultClientConfigChanged, VaultTokenRotated) are log fields there, not Event
// reasons; its HCP Vault Secrets reasons have no kind here to emit them; HMACDataError is a status
// error only; Unrecoverable (a cache key that cannot be computed) is VaultClientConfigError here, as
// the error VSO emits with it; VaultStaticSecretError and RolloutRestartUnsupported (an owner kind
// without restart support, a bug) have no situation in Ferry.
export const REASONS = {
  // Config and references
  Accepted: 'Accepted',
  InvalidConfiguration: 'InvalidConfiguration',
  InvalidResourceRef: 'InvalidResourceRef',
  VaultClientConfigError: 'VaultClientConfigError',
  TransformationError: 'TransformationError',
  /** Ferry addition: HCPAuth and HCPVaultSecretsApp are not served (HCP Vault Secrets is end of life). */
  KindNotSupported: 'KindNotSupported',
  // Sync
  SecretSynced: 'SecretSynced',
  SecretSyncError: 'SecretSyncError',
  SecretRotated: 'SecretRotated',
  SecretDataDrift: 'SecretDataDrift',
  SecretDataBuilderError: 'SecretDataBuilderError',
  InexistentDestination: 'InexistentDestination',
  // Leases and certificates
  SecretLeaseRenewal: 'SecretLeaseRenewal',
  SecretLeaseRenewalError: 'SecretLeaseRenewalError',
  SecretLeaseRevoke: 'SecretLeaseRevoke',
  CertificateRevocationError: 'CertificateRevocationError',
  // Errors
  VaultClientError: 'VaultClientError',
  K8sClientError: 'K8sClientError',
  StatusUpdateError: 'StatusUpdateError',
  // Protected secrets (CSI): a pod was refused, its identity unproven or accessControl unmatched
  PodNotAuthorized: 'PodNotAuthorized',
  // Rollout restart
  RolloutRestartTriggered: 'RolloutRestartTriggered',
  RolloutRestartFailed: 'RolloutRestartFailed',
  RolloutRestartTriggeredFailed: 'RolloutRestartTriggeredFailed',
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
