import Type, { type Static } from 'typebox';
import { AUTH_METHODS, Conditions, Int64, Root, StringEnum, StringList, StringMap } from './common.ts';

// Method fields are kept as property maps so VaultAuthGlobal can extend them with its per-method
// namespace/mount/params/headers.
const vaultRole = () => Type.Optional(Type.String({ description: 'Vault role to log in with.' }));

/** The ServiceAccount token request of the kubernetes and jwt methods. */
const tokenRequestFields = {
  audiences: Type.Optional(StringList('Audiences of the requested ServiceAccount token.')),
  tokenExpirationSeconds: Type.Optional(
    Int64('Lifetime requested for the ServiceAccount token, in seconds.', { default: 600, minimum: 600 }),
  ),
};

export const kubernetesFields = {
  role: vaultRole(),
  serviceAccount: Type.Optional(
    Type.String({
      description: "ServiceAccount whose token is presented; it lives in the consuming resource's namespace.",
    }),
  ),
  ...tokenRequestFields,
};

export const jwtFields = {
  role: vaultRole(),
  secretRef: Type.Optional(
    Type.String({
      description: "Secret in the consuming resource's namespace whose jwt key holds the token to present.",
    }),
  ),
  serviceAccount: Type.Optional(
    Type.String({ description: 'ServiceAccount whose requested token is presented as the JWT.' }),
  ),
  ...tokenRequestFields,
};

export const appRoleFields = {
  roleId: Type.Optional(Type.String({ description: 'RoleID of the AppRole.' })),
  secretRef: Type.Optional(
    Type.String({
      description: "Secret in the consuming resource's namespace whose id key holds the SecretID.",
    }),
  ),
  secretIDPath: Type.Optional(
    Type.String({
      description:
        'Absolute path of a file inside the operator pod holding the SecretID; exclusive with secretRef.',
    }),
  ),
};

export const awsFields = {
  role: vaultRole(),
  region: Type.Optional(Type.String({ description: 'AWS region used to sign the login request.' })),
  headerValue: Type.Optional(
    Type.String({ description: 'Value of the X-Vault-AWS-IAM-Server-ID header in the signed request.' }),
  ),
  sessionName: Type.Optional(Type.String({ description: 'Role session name for web identity credentials.' })),
  stsEndpoint: Type.Optional(Type.String({ description: 'STS endpoint; the AWS default when unset.' })),
  iamEndpoint: Type.Optional(Type.String({ description: 'IAM endpoint; the AWS default when unset.' })),
  secretRef: Type.Optional(
    Type.String({
      description:
        "Secret in the consuming resource's namespace with access_key_id, secret_access_key and session_token.",
    }),
  ),
  irsaServiceAccount: Type.Optional(
    Type.String({
      description:
        'ServiceAccount annotated for IAM Roles for Service Accounts (eks.amazonaws.com/role-arn).',
    }),
  ),
};

export const gcpFields = {
  role: vaultRole(),
  workloadIdentityServiceAccount: Type.Optional(
    Type.String({
      description: 'ServiceAccount set up for GKE workload identity (iam.gke.io/gcp-service-account).',
    }),
  ),
  region: Type.Optional(
    Type.String({
      description: 'Region of the GKE identity provider; read from the metadata server if unset.',
    }),
  ),
  clusterName: Type.Optional(
    Type.String({ description: 'GKE cluster name; read from the metadata server if unset.' }),
  ),
  projectID: Type.Optional(
    Type.String({ description: 'GCP project; read from the metadata server if unset.' }),
  ),
};

export const VaultAuthConfigKubernetes = Type.Object(kubernetesFields, {
  description: 'Kubernetes auth method settings.',
});
export type VaultAuthConfigKubernetes = Static<typeof VaultAuthConfigKubernetes>;
export const VaultAuthConfigJWT = Type.Object(jwtFields, { description: 'JWT auth method settings.' });
export type VaultAuthConfigJWT = Static<typeof VaultAuthConfigJWT>;
export const VaultAuthConfigAppRole = Type.Object(appRoleFields, {
  description: 'AppRole auth method settings.',
});
export type VaultAuthConfigAppRole = Static<typeof VaultAuthConfigAppRole>;
export const VaultAuthConfigAWS = Type.Object(awsFields, {
  description: 'AWS auth method settings. Credentials come from secretRef, then IRSA, then the node role.',
});
export type VaultAuthConfigAWS = Static<typeof VaultAuthConfigAWS>;
export const VaultAuthConfigGCP = Type.Object(gcpFields, {
  description: 'GCP (GKE workload identity) settings.',
});
export type VaultAuthConfigGCP = Static<typeof VaultAuthConfigGCP>;

export const MERGE_STRATEGIES = ['union', 'replace', 'none'] as const;

export const VaultAuthGlobalRef = Type.Object(
  {
    name: Type.Optional(
      Type.String({ pattern: '^([a-z0-9.-]{1,253})$', description: 'Name of the VaultAuthGlobal.' }),
    ),
    namespace: Type.Optional(
      Type.String({
        pattern: '^([a-z0-9-]{1,63})$',
        description: "Namespace of the VaultAuthGlobal; defaults to the VaultAuth's namespace.",
      }),
    ),
    mergeStrategy: Type.Optional(
      Type.Object(
        {
          headers: Type.Optional(
            StringEnum(MERGE_STRATEGIES, { description: 'How headers are merged: union, replace or none.' }),
          ),
          params: Type.Optional(
            StringEnum(MERGE_STRATEGIES, { description: 'How params are merged: union, replace or none.' }),
          ),
        },
        { description: 'How maps of the VaultAuthGlobal combine with this VaultAuth (none when unset).' },
      ),
    ),
    allowDefault: Type.Optional(
      Type.Boolean({
        description: 'Use the VaultAuthGlobal named default when name is unset (needs the operator option).',
      }),
    ),
  },
  { description: 'VaultAuthGlobal that supplies defaults for this VaultAuth.' },
);
export type VaultAuthGlobalRef = Static<typeof VaultAuthGlobalRef>;

export const StorageEncryption = Type.Object(
  {
    mount: Type.String({ description: 'Mount path of the Transit secrets engine.' }),
    keyName: Type.String({ description: 'Transit key used to encrypt and decrypt cache entries.' }),
  },
  { description: 'Transit key that encrypts the persisted Vault client cache.' },
);
export type StorageEncryption = Static<typeof StorageEncryption>;

export const VaultAuthSpec = Type.Object(
  {
    vaultConnectionRef: Type.Optional(
      Type.String({
        description: 'VaultConnection as "<namespace>/<name>" or "<name>"; the operator\'s default if unset.',
      }),
    ),
    vaultAuthGlobalRef: Type.Optional(VaultAuthGlobalRef),
    namespace: Type.Optional(Type.String({ description: 'Vault namespace to log in to.' })),
    allowedNamespaces: Type.Optional(
      StringList('Namespaces allowed to use this VaultAuth: ["*"] for all; unset means none but its own.'),
    ),
    method: Type.Optional(StringEnum(AUTH_METHODS, { description: 'Auth method used to log in.' })),
    mount: Type.Optional(Type.String({ description: 'Mount path of the auth method (auth/<mount>/login).' })),
    params: Type.Optional(StringMap('Extra parameters for the auth method.')),
    headers: Type.Optional(StringMap('HTTP headers added to the login request.')),
    kubernetes: Type.Optional(VaultAuthConfigKubernetes),
    jwt: Type.Optional(VaultAuthConfigJWT),
    appRole: Type.Optional(VaultAuthConfigAppRole),
    aws: Type.Optional(VaultAuthConfigAWS),
    gcp: Type.Optional(VaultAuthConfigGCP),
    storageEncryption: Type.Optional(StorageEncryption),
  },
  { description: 'How to log in to Vault.' },
);
export type VaultAuthSpec = Static<typeof VaultAuthSpec>;

export const VaultAuthStatus = Type.Object(
  {
    valid: Type.Optional(Type.Boolean({ description: 'The auth configuration was accepted.' })),
    error: Type.Optional(Type.String({ description: 'Why the configuration is not valid.' })),
    specHash: Type.Optional(Type.String({ description: 'Hash of the spec the status was computed from.' })),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the VaultAuth.' },
);
export type VaultAuthStatus = Static<typeof VaultAuthStatus>;

export const VaultAuthSchema = Root(
  'Vault login configuration used by the secret kinds.',
  VaultAuthSpec,
  VaultAuthStatus,
);
export type VaultAuth = Static<typeof VaultAuthSchema>;
