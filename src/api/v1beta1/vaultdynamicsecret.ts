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
  StringMap,
  SyncConfig,
  VaultClientMeta,
} from './common.ts';

export const REQUEST_HTTP_METHODS = ['GET', 'POST', 'PUT'] as const;

export const VaultDynamicSecretSpec = Type.Object(
  {
    ...SecretSourceRefs,
    mount: Type.String({ description: 'Mount path of the secrets engine.' }),
    path: Type.String({ description: 'Credentials path, relative to the mount.' }),
    requestHTTPMethod: Type.Optional(
      StringEnum(REQUEST_HTTP_METHODS, {
        description: 'HTTP method of the request: GET by default, PUT when params are set (POST means PUT).',
      }),
    ),
    params: Type.Optional(StringMap('Request body parameters; setting them forces PUT.')),
    renewalPercent: Type.Optional(
      Type.Integer({
        default: 67,
        minimum: 0,
        maximum: 90,
        description: 'Share of the lease duration, in percent, after which the lease is renewed.',
      }),
    ),
    revoke: Type.Optional(Type.Boolean({ description: 'Revoke the lease when the resource is deleted.' })),
    allowStaticCreds: Type.Optional(
      Type.Boolean({
        description: 'The path returns rotated static credentials (static-creds) without a lease.',
      }),
    ),
    rolloutRestartTargets: Type.Optional(RolloutRestartTargets()),
    destination: Destination,
    refreshAfter: Type.Optional(
      Duration('Re-sync interval used only when the response has no lease duration.'),
    ),
    syncConfig: SyncConfig('Sync as soon as Vault publishes a change event (reserved).'),
  },
  { description: 'Which dynamic credentials to request and where to write them.' },
);
export type VaultDynamicSecretSpec = Static<typeof VaultDynamicSecretSpec>;

export const VaultSecretLease = Type.Object(
  {
    id: Type.String({ description: 'Lease ID.' }),
    duration: Type.Integer({ description: 'Lease duration in seconds.' }),
    renewable: Type.Boolean({ description: 'The lease can be renewed.' }),
    requestID: Type.String({ description: 'Vault request ID of the response.' }),
  },
  { description: 'The current lease.' },
);
export type VaultSecretLease = Static<typeof VaultSecretLease>;

export const VaultStaticCredsMetaData = Type.Object(
  {
    lastVaultRotation: Int64('Unix time of the last rotation by Vault.'),
    rotationPeriod: Int64('Seconds between rotations.'),
    rotationSchedule: Type.Optional(Type.String({ description: 'Cron-style rotation schedule.' })),
    ttl: Int64('Seconds left until the next rotation.'),
  },
  { description: 'Rotation metadata of static credentials.' },
);
export type VaultStaticCredsMetaData = Static<typeof VaultStaticCredsMetaData>;

export const VaultDynamicSecretStatus = Type.Object(
  {
    lastRenewalTime: Int64('Unix time of the last successful renewal.'),
    lastGeneration: Int64('metadata.generation of the last reconciled spec.'),
    secretLease: VaultSecretLease,
    staticCredsMetaData: Type.Optional(VaultStaticCredsMetaData),
    lastRuntimePodUID: Type.Optional(
      Type.String({ description: 'UID of the operator pod that last synced.' }),
    ),
    secretMAC: Type.Optional(
      Type.String({ description: 'HMAC of the synced data (static credentials only).' }),
    ),
    vaultClientMeta: Type.Optional(VaultClientMeta),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the VaultDynamicSecret.' },
);
export type VaultDynamicSecretStatus = Static<typeof VaultDynamicSecretStatus>;

export const VaultDynamicSecretSchema = Root(
  'Syncs leased dynamic credentials from Vault into a Kubernetes Secret and keeps the lease renewed.',
  VaultDynamicSecretSpec,
  VaultDynamicSecretStatus,
);
export type VaultDynamicSecret = Static<typeof VaultDynamicSecretSchema>;
