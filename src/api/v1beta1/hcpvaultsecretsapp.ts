import Type, { type Static } from 'typebox';
import { Conditions, Destination, Duration, Int64, RolloutRestartTargets, Root } from './common.ts';

export const HCPVaultSecretsAppSpec = Type.Object(
  {
    appName: Type.String({ description: 'HCP Vault Secrets application to sync.' }),
    hcpAuthRef: Type.Optional(
      Type.String({
        description: 'HCPAuth as "<namespace>/<name>" or "<name>"; the operator\'s default if unset.',
      }),
    ),
    refreshAfter: Type.Optional(Duration('Polling interval, e.g. 600s.', { default: '600s' })),
    rolloutRestartTargets: Type.Optional(RolloutRestartTargets()),
    destination: Destination,
    syncConfig: Type.Optional(
      Type.Object(
        {
          dynamic: Type.Optional(
            Type.Object(
              {
                renewalPercent: Type.Optional(
                  Type.Integer({
                    default: 67,
                    minimum: 0,
                    maximum: 90,
                    description: 'Share of the TTL, in percent, after which dynamic secrets are regenerated.',
                  }),
                ),
              },
              { description: 'Settings for dynamic secrets.' },
            ),
          ),
        },
        { description: 'How secrets are synced.' },
      ),
    ),
  },
  { description: 'Which application to sync and where to write it.' },
);
export type HCPVaultSecretsAppSpec = Static<typeof HCPVaultSecretsAppSpec>;

export const HVSDynamicStatus = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Name of the dynamic secret.' })),
    createdAt: Type.Optional(Type.String({ description: 'When the dynamic secret was created.' })),
    expiresAt: Type.Optional(Type.String({ description: 'When the dynamic secret expires.' })),
    ttl: Type.Optional(Type.String({ description: 'Lifetime of the dynamic secret.' })),
  },
  { description: 'Last observed state of one dynamic secret.' },
);
export type HVSDynamicStatus = Static<typeof HVSDynamicStatus>;

export const HCPVaultSecretsAppStatus = Type.Object(
  {
    lastGeneration: Int64('metadata.generation of the last reconciled spec.'),
    secretMAC: Type.Optional(Type.String({ description: 'HMAC of the last synced data.' })),
    dynamicSecrets: Type.Optional(
      Type.Array(HVSDynamicStatus, { description: 'Dynamic secrets of the application.' }),
    ),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the HCPVaultSecretsApp.' },
);
export type HCPVaultSecretsAppStatus = Static<typeof HCPVaultSecretsAppStatus>;

export const HCPVaultSecretsAppSchema = Root(
  'Syncs an HCP Vault Secrets application into a Kubernetes Secret.',
  HCPVaultSecretsAppSpec,
  HCPVaultSecretsAppStatus,
);
export type HCPVaultSecretsApp = Static<typeof HCPVaultSecretsAppSchema>;
