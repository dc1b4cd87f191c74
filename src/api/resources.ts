// Ferry's own kinds: the REST coordinates of each. The schemas (and typebox) are in kinds.ts, which
// only the CRD generator and the CLI load: the operator and the CSI driver need the coordinates alone.
import type { ResourceType } from '../k8s/resources.ts';

export const GROUP = 'secrets.hashicorp.com';
export const VERSION = 'v1beta1';
export const API_VERSION = `${GROUP}/${VERSION}`;

function kind(name: string, plural: string): ResourceType {
  return Object.freeze({ group: GROUP, version: VERSION, kind: name, plural, namespaced: true });
}

export const VaultConnections = kind('VaultConnection', 'vaultconnections');
export const VaultAuths = kind('VaultAuth', 'vaultauths');
export const VaultAuthGlobals = kind('VaultAuthGlobal', 'vaultauthglobals');
export const VaultStaticSecrets = kind('VaultStaticSecret', 'vaultstaticsecrets');
export const VaultDynamicSecrets = kind('VaultDynamicSecret', 'vaultdynamicsecrets');
export const VaultPKISecrets = kind('VaultPKISecret', 'vaultpkisecrets');
export const SecretTransformations = kind('SecretTransformation', 'secrettransformations');
export const HCPAuths = kind('HCPAuth', 'hcpauths');
export const HCPVaultSecretsApps = kind('HCPVaultSecretsApp', 'hcpvaultsecretsapps');
export const CSISecretsResource = kind('CSISecrets', 'csisecrets');
