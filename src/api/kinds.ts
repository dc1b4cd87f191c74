// The table of Ferry's kinds with their schemas, which crdgen turns into CRDs (and the CLI checks
// against). Kept apart from resources.ts so that the operator never loads typebox and the schemas.
import type { TSchema } from 'typebox';
import type { ResourceType } from '../k8s/resources.ts';
import {
  CSISecretsResource,
  HCPAuths,
  HCPVaultSecretsApps,
  SecretTransformations,
  VaultAuthGlobals,
  VaultAuths,
  VaultConnections,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
} from './resources.ts';
import { CSISecretsSchema } from './v1beta1/csisecrets.ts';
import { HCPAuthSchema } from './v1beta1/hcpauth.ts';
import { HCPVaultSecretsAppSchema } from './v1beta1/hcpvaultsecretsapp.ts';
import { SecretTransformationSchema } from './v1beta1/secrettransformation.ts';
import { VaultAuthSchema } from './v1beta1/vaultauth.ts';
import { VaultAuthGlobalSchema } from './v1beta1/vaultauthglobal.ts';
import { VaultConnectionSchema } from './v1beta1/vaultconnection.ts';
import { VaultDynamicSecretSchema } from './v1beta1/vaultdynamicsecret.ts';
import { VaultPKISecretSchema } from './v1beta1/vaultpkisecret.ts';
import { VaultStaticSecretSchema } from './v1beta1/vaultstaticsecret.ts';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'date' | 'integer' | 'number' | 'boolean';
  jsonPath: string;
  description?: string;
}

const conditionColumn = (name: string, type: string): PrinterColumn => ({
  name,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type == "${type}")].status`,
});
const SYNCED = conditionColumn('Synced', 'SecretSynced');
const HEALTHY = conditionColumn('Healthy', 'Healthy');
const READY = conditionColumn('Ready', 'Ready');
const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export interface KindDefinition {
  resource: ResourceType;
  singular: string;
  listKind: string;
  schema: TSchema;
  printerColumns: PrinterColumn[];
}

function def(resource: ResourceType, schema: TSchema, printerColumns: PrinterColumn[]): KindDefinition {
  return {
    resource,
    singular: resource.kind.toLowerCase(),
    listKind: `${resource.kind}List`,
    schema,
    printerColumns,
  };
}

export const ALL_KINDS: readonly KindDefinition[] = [
  def(VaultConnections, VaultConnectionSchema, [HEALTHY, READY, AGE]),
  def(VaultAuths, VaultAuthSchema, [HEALTHY, READY, AGE]),
  def(VaultAuthGlobals, VaultAuthGlobalSchema, []),
  def(VaultStaticSecrets, VaultStaticSecretSchema, [SYNCED, HEALTHY, READY, AGE]),
  def(VaultDynamicSecrets, VaultDynamicSecretSchema, [SYNCED, HEALTHY, READY, AGE]),
  def(VaultPKISecrets, VaultPKISecretSchema, [SYNCED, HEALTHY, READY, AGE]),
  def(SecretTransformations, SecretTransformationSchema, [HEALTHY, READY, AGE]),
  def(HCPAuths, HCPAuthSchema, []),
  def(HCPVaultSecretsApps, HCPVaultSecretsAppSchema, []),
  def(CSISecretsResource, CSISecretsSchema, []),
];
