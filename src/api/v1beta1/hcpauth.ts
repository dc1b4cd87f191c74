import Type, { type Static } from 'typebox';
import { Conditions, Root, StringEnum, StringList } from './common.ts';

export const HCPAuthServicePrincipal = Type.Object(
  {
    secretRef: Type.String({
      description: "Secret in the consuming resource's namespace with clientID and clientSecret keys.",
    }),
  },
  { description: 'HCP service principal credentials.' },
);
export type HCPAuthServicePrincipal = Static<typeof HCPAuthServicePrincipal>;

export const HCPAuthSpec = Type.Object(
  {
    organizationID: Type.String({ description: 'HCP organization ID.' }),
    projectID: Type.String({ description: 'HCP project ID.' }),
    allowedNamespaces: Type.Optional(
      StringList('Namespaces allowed to use this HCPAuth: ["*"] for all; unset means none but its own.'),
    ),
    method: Type.Optional(
      StringEnum(['servicePrincipal'] as const, {
        default: 'servicePrincipal',
        description: 'Login method; only servicePrincipal.',
      }),
    ),
    servicePrincipal: Type.Optional(HCPAuthServicePrincipal),
  },
  { description: 'How to log in to HCP.' },
);
export type HCPAuthSpec = Static<typeof HCPAuthSpec>;

export const HCPAuthStatus = Type.Object(
  {
    valid: Type.Boolean({ description: 'The configuration was accepted.' }),
    error: Type.String({ description: 'Why the configuration is not valid.' }),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the HCPAuth.' },
);
export type HCPAuthStatus = Static<typeof HCPAuthStatus>;

export const HCPAuthSchema = Root(
  'HCP login configuration used by HCPVaultSecretsApp objects.',
  HCPAuthSpec,
  HCPAuthStatus,
);
export type HCPAuth = Static<typeof HCPAuthSchema>;
