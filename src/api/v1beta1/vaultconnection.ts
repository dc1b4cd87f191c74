import Type, { type Static } from 'typebox';
import { Conditions, Duration, Root, StringMap } from './common.ts';

export const VaultConnectionSpec = Type.Object(
  {
    address: Type.String({ description: 'URL of the Vault or OpenBao server.' }),
    headers: Type.Optional(
      StringMap('HTTP headers sent with every request. X-Vault-Namespace is not allowed here.'),
    ),
    tlsServerName: Type.Optional(Type.String({ description: 'Server name (SNI) used for TLS.' })),
    caCertSecretRef: Type.Optional(
      Type.String({
        description:
          'Secret in this namespace whose ca.crt key holds trusted PEM CA certificates; exclusive with caCertPath.',
      }),
    ),
    caCertPath: Type.Optional(
      Type.String({
        description:
          'Absolute path of a PEM CA bundle inside the operator pod; exclusive with caCertSecretRef.',
      }),
    ),
    skipTLSVerify: Type.Boolean({ default: false, description: 'Do not verify the server certificate.' }),
    timeout: Type.Optional(Duration('Timeout of each request to the server, e.g. 30s; 60s when unset.')),
  },
  { description: 'How to reach a Vault server.' },
);
export type VaultConnectionSpec = Static<typeof VaultConnectionSpec>;

export const VaultConnectionStatus = Type.Object(
  {
    valid: Type.Boolean({ description: 'The connection was checked successfully.' }),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the VaultConnection.' },
);
export type VaultConnectionStatus = Static<typeof VaultConnectionStatus>;

export const VaultConnectionSchema = Root(
  'Connection settings for a Vault server, referenced by VaultAuth objects.',
  VaultConnectionSpec,
  VaultConnectionStatus,
);
export type VaultConnection = Static<typeof VaultConnectionSchema>;
