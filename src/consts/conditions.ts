// Status condition types and reasons (vso-api.md §16). Strings are part of the VSO-compatible API.
export const CONDITION_TYPES = {
  SecretSynced: 'SecretSynced',
  Healthy: 'Healthy',
  Ready: 'Ready',
  RolloutRestart: 'RolloutRestart',
  LeaseRenewal: 'LeaseRenewal',
  ResourceValidation: 'ResourceValidation',
  VaultClient: 'VaultClient',
  VaultPing: 'VaultPing',
  Available: 'Available',
  /** Ferry: whether syncConfig.instantUpdates has a change stream (docs/instant-updates.md). */
  InstantUpdates: 'InstantUpdates',
} as const;

export type ConditionType = (typeof CONDITION_TYPES)[keyof typeof CONDITION_TYPES];

export const CONDITION_REASONS = {
  /** SecretSynced always carries this reason; the status says whether the sync worked. */
  Synced: 'Synced',
  Healthy: 'Healthy',
  Unhealthy: 'Unhealthy',
  Ready: 'Ready',
  RolloutRestartTriggered: 'RolloutRestartTriggered',
  RolloutRestartTriggeredFailed: 'RolloutRestartTriggeredFailed',
  VaultAuthGlobalRef: 'VaultAuthGlobalRef',
  /** Ferry addition: HCPAuth and HCPVaultSecretsApp are not served (HCP Vault Secrets is end of life). */
  KindNotSupported: 'KindNotSupported',
  /** InstantUpdates: changes arrive through the Vault audit stream. */
  AuditStream: 'AuditStream',
  /** InstantUpdates: no change stream; the secret is refreshed every refreshAfter only. */
  InstantUpdatesUnavailable: 'InstantUpdatesUnavailable',
} as const;

const healthyMessages = new Map<string, string>();

/** The Healthy condition's message is `<Kind>Healthy`, e.g. `VaultStaticSecretHealthy`: one string
 * per kind, not one per status write. */
export function healthyMessage(kind: string): string {
  let m = healthyMessages.get(kind);
  if (m === undefined) {
    m = `${kind}Healthy`;
    healthyMessages.set(kind, m);
  }
  return m;
}
