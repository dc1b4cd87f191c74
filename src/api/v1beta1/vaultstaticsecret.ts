import Type, { type Static } from 'typebox';
import {
  Conditions,
  Destination,
  Duration,
  Int64,
  RolloutRestartTargets,
  Root,
  SecretSourceRefs,
  StringEnum,
  SyncConfig,
  VaultClientMeta,
} from './common.ts';

export const KV_TYPES = ['kv-v1', 'kv-v2'] as const;

export const VaultStaticSecretSpec = Type.Object(
  {
    ...SecretSourceRefs,
    mount: Type.String({ description: 'Mount path of the KV secrets engine.' }),
    path: Type.String({ description: 'Path of the secret, relative to the mount.' }),
    version: Type.Optional(
      Type.Integer({ minimum: 0, description: 'kv-v2 version to read; 0 or unset reads the latest.' }),
    ),
    type: StringEnum(KV_TYPES, { description: 'KV engine version: kv-v1 or kv-v2.' }),
    refreshAfter: Type.Optional(Duration('Polling interval, e.g. 30s, 5m, 1h.')),
    hmacSecretData: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Keep an HMAC of the data in status for change and drift detection.',
      }),
    ),
    rolloutRestartTargets: Type.Optional(RolloutRestartTargets()),
    destination: Destination,
    syncConfig: SyncConfig('Sync as soon as Vault publishes a change event for the secret.'),
  },
  { description: 'Which KV secret to sync and where to write it.' },
);
export type VaultStaticSecretSpec = Static<typeof VaultStaticSecretSpec>;

export const VaultStaticSecretStatus = Type.Object(
  {
    lastGeneration: Int64('metadata.generation of the last reconciled spec.'),
    secretMAC: Type.Optional(Type.String({ description: 'HMAC of the last synced data.' })),
    vaultClientMeta: Type.Optional(VaultClientMeta),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the VaultStaticSecret.' },
);
export type VaultStaticSecretStatus = Static<typeof VaultStaticSecretStatus>;

export const VaultStaticSecretSchema = Root(
  'Syncs a Vault KV secret into a Kubernetes Secret.',
  VaultStaticSecretSpec,
  VaultStaticSecretStatus,
);
export type VaultStaticSecret = Static<typeof VaultStaticSecretSchema>;
