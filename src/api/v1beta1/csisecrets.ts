import Type, { type Static } from 'typebox';
import { Conditions, Duration, Root, StringEnum, StringList, StringMap, Transformation } from './common.ts';
import { VaultDynamicSecretSpec } from './vaultdynamicsecret.ts';
import { VaultPKISecretSpec } from './vaultpkisecret.ts';
import { KV_TYPES } from './vaultstaticsecret.ts';

export const VaultAuthRef = Type.Object(
  {
    name: Type.String({ description: 'Name of the VaultAuth.' }),
    namespace: Type.Optional(
      Type.String({ description: "Namespace of the VaultAuth; defaults to this object's." }),
    ),
    trustNamespace: Type.Optional(
      Type.Boolean({
        description: "Resolve credential providers (e.g. the ServiceAccount) in the VaultAuth's namespace.",
      }),
    ),
  },
  { description: 'VaultAuth used to read the secrets.' },
);
export type VaultAuthRef = Static<typeof VaultAuthRef>;

export const MATCH_POLICIES = ['any', 'all'] as const;

export const AccessControl = Type.Object(
  {
    serviceAccountPattern: Type.String({
      description: 'Regex the pod ServiceAccount name must match; always enforced.',
    }),
    namespacePatterns: Type.Optional(StringList('Regexes of allowed pod namespaces.')),
    podNamePatterns: Type.Optional(StringList('Regexes of allowed pod names.')),
    podLabels: Type.Optional(StringMap('Labels the pod must carry, matched exactly.')),
    matchPolicy: Type.Optional(
      StringEnum(MATCH_POLICIES, {
        default: 'all',
        description: 'all: every configured rule must match; any: one of them is enough.',
      }),
    ),
  },
  { description: 'Which pods may mount these secrets.' },
);
export type AccessControl = Static<typeof AccessControl>;

export const VaultStaticSecretCollectable = Type.Object(
  {
    mount: Type.String({ description: 'Mount path of the KV secrets engine.' }),
    path: Type.String({ description: 'Path of the secret, relative to the mount.' }),
    version: Type.Optional(Type.Integer({ minimum: 0, description: 'kv-v2 version; 0 reads the latest.' })),
    type: StringEnum(KV_TYPES, { description: 'KV engine version: kv-v1 or kv-v2.' }),
    transformation: Type.Optional(Transformation),
  },
  { description: 'A KV secret to publish.' },
);
export type VaultStaticSecretCollectable = Static<typeof VaultStaticSecretCollectable>;

export const VaultAppRoleSecretID = Type.Object(
  {
    mount: Type.String({ description: 'Mount path of the AppRole auth method.' }),
    role: Type.String({ description: 'AppRole role name.' }),
    metadata: Type.Optional(StringMap('Metadata attached to tokens issued with the SecretID.')),
    cidrList: Type.Optional(StringList('CIDR blocks allowed to use the SecretID.')),
    tokenBoundCIDRs: Type.Optional(StringList('CIDR blocks allowed to use tokens issued with the SecretID.')),
    ttl: Type.Optional(Duration('Lifetime of the SecretID.')),
    numUses: Type.Optional(Type.Integer({ description: 'How many times the SecretID can be used.' })),
    wrapTTL: Type.Optional(Duration('Response-wrap the SecretID with this TTL.')),
    syncRoleID: Type.Optional(Type.Boolean({ description: 'Publish the RoleID as well.' })),
    transformation: Type.Optional(Transformation),
  },
  { description: 'An AppRole SecretID generated on each publish.' },
);
export type VaultAppRoleSecretID = Static<typeof VaultAppRoleSecretID>;

// Ferry extensions (no peer publishes leased secrets to a CSI volume): the request fields are the
// VaultDynamicSecret and VaultPKISecret ones, so their meaning and validation are shared.
const dyn = VaultDynamicSecretSpec.properties;
const pki = VaultPKISecretSpec.properties;
const revokeAtUnpublish = (what: string) =>
  Type.Optional(
    Type.Boolean({
      default: true,
      description: `Revoke the ${what} when the volume is unpublished (and when it is replaced).`,
    }),
  );

export const VaultDynamicSecretCollectable = Type.Object(
  {
    mount: dyn.mount,
    path: dyn.path,
    requestHTTPMethod: dyn.requestHTTPMethod,
    params: dyn.params,
    renewalPercent: dyn.renewalPercent,
    revoke: revokeAtUnpublish('lease'),
    transformation: Type.Optional(Transformation),
  },
  {
    description:
      "Dynamic credentials leased for the pod's lifetime: renewed while the volume is published, new ones when the lease cannot be renewed, revoked at unpublish.",
  },
);
export type VaultDynamicSecretCollectable = Static<typeof VaultDynamicSecretCollectable>;

export const VaultPKISecretCollectable = Type.Object(
  {
    mount: pki.mount,
    role: pki.role,
    issuerRef: pki.issuerRef,
    commonName: pki.commonName,
    altNames: pki.altNames,
    ipSans: pki.ipSans,
    uriSans: pki.uriSans,
    otherSans: pki.otherSans,
    userIDs: pki.userIDs,
    ttl: pki.ttl,
    format: pki.format,
    privateKeyFormat: pki.privateKeyFormat,
    notAfter: pki.notAfter,
    excludeCNFromSans: pki.excludeCNFromSans,
    expiryOffset: pki.expiryOffset,
    revoke: revokeAtUnpublish('certificate'),
    transformation: Type.Optional(Transformation),
  },
  {
    description:
      "A certificate issued for the pod's lifetime: re-issued in its renewal window while the volume is published, revoked at unpublish.",
  },
);
export type VaultPKISecretCollectable = Static<typeof VaultPKISecretCollectable>;

export const SecretCollection = Type.Object(
  {
    transformation: Type.Optional(Transformation),
    vaultStaticSecrets: Type.Optional(
      Type.Array(VaultStaticSecretCollectable, { description: 'KV secrets.' }),
    ),
    vaultAppRoleSecretIDs: Type.Optional(
      Type.Array(VaultAppRoleSecretID, { description: 'AppRole SecretIDs.' }),
    ),
    vaultDynamicSecrets: Type.Optional(
      Type.Array(VaultDynamicSecretCollectable, { description: 'Dynamic (leased) credentials.' }),
    ),
    vaultPKISecrets: Type.Optional(
      Type.Array(VaultPKISecretCollectable, { description: 'PKI certificates.' }),
    ),
  },
  { description: 'The secrets published to the CSI volume.' },
);
export type SecretCollection = Static<typeof SecretCollection>;

export const CSISecretsSpec = Type.Object(
  {
    namespace: Type.Optional(Type.String({ description: 'Vault namespace of the secrets.' })),
    vaultAuthRef: Type.Optional(VaultAuthRef),
    accessControl: AccessControl,
    secrets: SecretCollection,
    syncConfig: Type.Optional(
      Type.Object(
        {
          containerState: Type.Object(
            {
              namePattern: Type.Optional(Type.String({ description: 'Regex of container names.' })),
              imagePattern: Type.Optional(Type.String({ description: 'Regex of container images.' })),
            },
            { description: 'Containers whose restart triggers a new sync.' },
          ),
        },
        { description: 'When secrets are synced again.' },
      ),
    ),
  },
  { description: 'Secrets the CSI driver publishes and who may mount them.' },
);
export type CSISecretsSpec = Static<typeof CSISecretsSpec>;

export const CSISecretsStatus = Type.Object(
  { conditions: Type.Optional(Conditions()) },
  { description: 'Observed state of the CSISecrets.' },
);
export type CSISecretsStatus = Static<typeof CSISecretsStatus>;

export const CSISecretsSchema = Root(
  'Secrets delivered to pods through the CSI driver.',
  CSISecretsSpec,
  CSISecretsStatus,
);
export type CSISecrets = Static<typeof CSISecretsSchema>;
