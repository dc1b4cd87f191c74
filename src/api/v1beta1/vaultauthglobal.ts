import Type, { type Static } from 'typebox';
import { AUTH_METHODS, Root, StringEnum, StringList, StringMap } from './common.ts';
import { appRoleFields, awsFields, gcpFields, jwtFields, kubernetesFields } from './vaultauth.ts';

// Per-method overrides a VaultAuthGlobal may add on top of the VaultAuth method fields.
const perMethodFields = {
  namespace: Type.Optional(Type.String({ description: 'Vault namespace to log in to with this method.' })),
  mount: Type.Optional(Type.String({ description: 'Mount path of this auth method.' })),
  params: Type.Optional(StringMap('Extra parameters for this auth method.')),
  headers: Type.Optional(StringMap('HTTP headers added to login requests of this method.')),
};

export const VaultAuthGlobalConfigKubernetes = Type.Object(
  { ...kubernetesFields, ...perMethodFields },
  { description: 'Default Kubernetes auth settings.' },
);
export type VaultAuthGlobalConfigKubernetes = Static<typeof VaultAuthGlobalConfigKubernetes>;
export const VaultAuthGlobalConfigJWT = Type.Object(
  { ...jwtFields, ...perMethodFields },
  { description: 'Default JWT auth settings.' },
);
export type VaultAuthGlobalConfigJWT = Static<typeof VaultAuthGlobalConfigJWT>;
export const VaultAuthGlobalConfigAppRole = Type.Object(
  { ...appRoleFields, ...perMethodFields },
  { description: 'Default AppRole auth settings.' },
);
export type VaultAuthGlobalConfigAppRole = Static<typeof VaultAuthGlobalConfigAppRole>;
export const VaultAuthGlobalConfigAWS = Type.Object(
  { ...awsFields, ...perMethodFields },
  { description: 'Default AWS auth settings.' },
);
export type VaultAuthGlobalConfigAWS = Static<typeof VaultAuthGlobalConfigAWS>;
export const VaultAuthGlobalConfigGCP = Type.Object(
  { ...gcpFields, ...perMethodFields },
  { description: 'Default GCP auth settings.' },
);
export type VaultAuthGlobalConfigGCP = Static<typeof VaultAuthGlobalConfigGCP>;

export const VaultAuthGlobalSpec = Type.Object(
  {
    allowedNamespaces: Type.Optional(
      StringList(
        'Namespaces whose VaultAuths may use this object: ["*"] for all; unset means none but its own.',
      ),
    ),
    vaultConnectionRef: Type.Optional(
      Type.String({ description: 'Default VaultConnection as "<namespace>/<name>" or "<name>".' }),
    ),
    defaultVaultNamespace: Type.Optional(
      Type.String({ description: 'Default Vault namespace to log in to.' }),
    ),
    defaultAuthMethod: Type.Optional(StringEnum(AUTH_METHODS, { description: 'Default auth method.' })),
    defaultMount: Type.Optional(Type.String({ description: 'Default mount path of the auth method.' })),
    params: Type.Optional(StringMap('Default extra parameters for the auth method.')),
    headers: Type.Optional(StringMap('Default HTTP headers for login requests.')),
    kubernetes: Type.Optional(VaultAuthGlobalConfigKubernetes),
    jwt: Type.Optional(VaultAuthGlobalConfigJWT),
    appRole: Type.Optional(VaultAuthGlobalConfigAppRole),
    aws: Type.Optional(VaultAuthGlobalConfigAWS),
    gcp: Type.Optional(VaultAuthGlobalConfigGCP),
  },
  { description: 'Defaults shared by the VaultAuth objects that reference this one.' },
);
export type VaultAuthGlobalSpec = Static<typeof VaultAuthGlobalSpec>;

export const VaultAuthGlobalStatus = Type.Object(
  {
    valid: Type.Boolean({ description: 'The configuration was accepted.' }),
    error: Type.String({ description: 'Why the configuration is not valid.' }),
  },
  { description: 'Observed state of the VaultAuthGlobal.' },
);
export type VaultAuthGlobalStatus = Static<typeof VaultAuthGlobalStatus>;

export const VaultAuthGlobalSchema = Root(
  'Shared login defaults that VaultAuth objects can inherit.',
  VaultAuthGlobalSpec,
  VaultAuthGlobalStatus,
);
export type VaultAuthGlobal = Static<typeof VaultAuthGlobalSchema>;
