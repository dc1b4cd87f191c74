// Types shared by several kinds of secrets.hashicorp.com/v1beta1. Field names, defaults and
// validation follow VSO v1.4.1 so that existing manifests apply unchanged; all text is Ferry's own.
import Type, { type Static, type TSchema, type TSchemaOptions } from 'typebox';
import type { ObjectMeta } from '../../k8s/types.ts';
import { DURATION_PATTERN } from '../patterns.ts';

export const AUTH_METHODS = ['kubernetes', 'jwt', 'appRole', 'aws', 'gcp'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export function Duration(description: string, options: TSchemaOptions = {}) {
  return Type.String({ pattern: DURATION_PATTERN, description, ...options });
}

export function StringMap(description: string) {
  return Type.Record(Type.String(), Type.String(), { description });
}

export function StringList(description: string) {
  return Type.Array(Type.String(), { description });
}

/** A string enum rendered as `{type: string, enum: [...]}` (structural, unlike a union of consts). */
export function StringEnum<const T extends readonly string[]>(values: T, options: TSchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** Builds the root schema of a kind. The apiserver owns metadata, so the CRD only says "object".
 * As in VSO, spec itself is optional: required fields are enforced inside it. */
export function Root<Spec extends TSchema, Status extends TSchema>(
  description: string,
  spec: Spec,
  status: Status,
) {
  return Type.Object(
    {
      apiVersion: Type.Optional(Type.String({ description: 'Versioned schema of this object.' })),
      kind: Type.Optional(Type.String({ description: 'REST resource kind of this object.' })),
      metadata: Type.Unsafe<ObjectMeta>({ type: 'object' }),
      spec: Type.Optional(spec),
      status: Type.Optional(status),
    },
    { description },
  );
}

export const Template = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Optional display name of the template.' })),
    text: Type.String({
      description: 'Go text/template source, rendered against the secret data and metadata.',
    }),
  },
  { description: 'A Go text/template that renders one value of the destination Secret.' },
);
export type Template = Static<typeof Template>;

export const TemplateRef = Type.Object(
  {
    name: Type.String({ description: 'Key of the template in the SecretTransformation spec.templates.' }),
    keyOverride: Type.Optional(
      Type.String({ description: 'Write the rendered value under this key instead of the template key.' }),
    ),
  },
  { description: 'Selects one template of a SecretTransformation.' },
);
export type TemplateRef = Static<typeof TemplateRef>;

export const TransformationRef = Type.Object(
  {
    namespace: Type.Optional(
      Type.String({ description: "Namespace of the SecretTransformation; defaults to the referrer's." }),
    ),
    name: Type.String({ description: 'Name of the SecretTransformation.' }),
    templateRefs: Type.Optional(
      Type.Array(TemplateRef, {
        description: 'Templates to render; when empty every template of the SecretTransformation is used.',
      }),
    ),
    ignoreIncludes: Type.Optional(
      Type.Boolean({ description: 'Do not apply the include filters of the SecretTransformation.' }),
    ),
    ignoreExcludes: Type.Optional(
      Type.Boolean({ description: 'Do not apply the exclude filters of the SecretTransformation.' }),
    ),
  },
  { description: 'Reference to a SecretTransformation whose templates and filters are applied.' },
);
export type TransformationRef = Static<typeof TransformationRef>;

export const Transformation = Type.Object(
  {
    templates: Type.Optional(
      Type.Record(Type.String(), Template, {
        description: 'Templates rendered under their map key; they win over referenced templates.',
      }),
    ),
    transformationRefs: Type.Optional(
      Type.Array(TransformationRef, { description: 'SecretTransformation objects to apply.' }),
    ),
    includes: Type.Optional(
      StringList('RE2 patterns of source keys to keep; applied after excludes, never to templated keys.'),
    ),
    excludes: Type.Optional(
      StringList('RE2 patterns of source keys to drop; applied first. ".*" drops every source key.'),
    ),
    excludeRaw: Type.Optional(
      Type.Boolean({
        description: 'Leave out the _raw key; the operator-wide exclude-raw option overrides.',
      }),
    ),
  },
  { description: 'How the source data is shaped before it is written to the destination.' },
);
export type Transformation = Static<typeof Transformation>;

/** A DNS-1123 subdomain (Kubernetes object names, at most 253 characters), unanchored. */
const DNS1123_SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';

export const Destination = Type.Object(
  {
    name: Type.String({
      // What Kubernetes accepts as a Secret name: refused here rather than at every write.
      pattern: `^${DNS1123_SUBDOMAIN}$`,
      maxLength: 253,
      description: "Name of the Kubernetes Secret, always in the resource's namespace.",
    }),
    create: Type.Optional(
      Type.Boolean({
        default: false,
        description: 'Create and own the Secret. When false the Secret must exist and only its data is set.',
      }),
    ),
    overwrite: Type.Optional(
      Type.Boolean({
        default: false,
        description: 'With create, take over an existing Secret that the operator does not own yet.',
      }),
    ),
    labels: Type.Optional(StringMap('Labels for the Secret; used only with create.')),
    annotations: Type.Optional(StringMap('Annotations for the Secret; used only with create.')),
    type: Type.Optional(
      Type.String({ description: 'Kubernetes Secret type, Opaque when unset; used only with create.' }),
    ),
    transformation: Type.Optional(Transformation),
  },
  { description: 'The Kubernetes Secret that receives the synced data.' },
);
export type Destination = Static<typeof Destination>;

export const ROLLOUT_RESTART_KINDS = ['Deployment', 'DaemonSet', 'StatefulSet', 'argo.Rollout'] as const;

export const RolloutRestartTarget = Type.Object(
  {
    kind: StringEnum(ROLLOUT_RESTART_KINDS, { description: 'Kind of the workload.' }),
    name: Type.String({ description: "Name of the workload, in the resource's namespace." }),
  },
  { description: 'A workload restarted (pod template annotation patch) when the secret data changes.' },
);
export type RolloutRestartTarget = Static<typeof RolloutRestartTarget>;

export function RolloutRestartTargets() {
  return Type.Array(RolloutRestartTarget, {
    description: 'Workloads to restart when the synced data changes.',
  });
}

/** The fields every secret kind (VSS, VDS, VPS) opens with: which VaultAuth, which Vault namespace. */
export const SecretSourceRefs = {
  vaultAuthRef: Type.Optional(
    Type.String({
      description: 'VaultAuth as "<namespace>/<name>" or "<name>"; the operator\'s default if unset.',
    }),
  ),
  namespace: Type.Optional(Type.String({ description: 'Vault namespace of the mount.' })),
};

/** `syncConfig` of VSS and VDS; only the description of instantUpdates differs between them. */
export function SyncConfig(instantUpdates: string) {
  return Type.Optional(
    Type.Object(
      { instantUpdates: Type.Optional(Type.Boolean({ description: instantUpdates })) },
      { description: 'How changes are picked up.' },
    ),
  );
}

export const VaultClientMeta = Type.Object(
  {
    cacheKey: Type.Optional(Type.String({ description: 'Key of the Vault client in the client cache.' })),
    id: Type.Optional(
      Type.String({ description: 'Non-sensitive identifier of the authenticated Vault client.' }),
    ),
  },
  { description: 'The Vault client used for the last sync.' },
);
export type VaultClientMeta = Static<typeof VaultClientMeta>;

// metav1.Condition, with the apimachinery validation rules.
export const Condition = Type.Object(
  {
    type: Type.String({
      maxLength: 316,
      pattern: `^(${DNS1123_SUBDOMAIN}/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`,
      description: 'Condition type, CamelCase.',
    }),
    status: StringEnum(['True', 'False', 'Unknown'] as const, { description: 'True, False or Unknown.' }),
    observedGeneration: Type.Optional(
      Type.Integer({
        format: 'int64',
        minimum: 0,
        description: 'metadata.generation the condition was computed from.',
      }),
    ),
    lastTransitionTime: Type.String({
      format: 'date-time',
      description: 'When the status last changed.',
    }),
    reason: Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      description: 'Machine-readable CamelCase reason for the last transition.',
    }),
    message: Type.String({ maxLength: 32768, description: 'Human-readable detail; may be empty.' }),
  },
  { description: 'One aspect of the observed state.' },
);
export type Condition = Static<typeof Condition>;

export function Conditions() {
  return Type.Array(Condition, { description: 'Observed conditions (Ready, Healthy, SecretSynced, ...).' });
}

export function Int64(description: string, options: TSchemaOptions = {}) {
  return Type.Integer({ format: 'int64', description, ...options });
}
