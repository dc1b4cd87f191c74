import { CODES, FerryError } from '../errors.ts';

/** Identifies a REST resource. `group` is '' for the core API. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

function rt(group: string, version: string, kind: string, plural: string, namespaced: boolean): ResourceType {
  return Object.freeze({ group, version, kind, plural, namespaced });
}

// Built-in resources Ferry touches. Ferry's own kinds live in src/api/resources.ts.
export const Namespaces = rt('', 'v1', 'Namespace', 'namespaces', false);
export const Secrets = rt('', 'v1', 'Secret', 'secrets', true);
export const ConfigMaps = rt('', 'v1', 'ConfigMap', 'configmaps', true);
export const ServiceAccounts = rt('', 'v1', 'ServiceAccount', 'serviceaccounts', true);
export const Pods = rt('', 'v1', 'Pod', 'pods', true);
export const Events = rt('', 'v1', 'Event', 'events', true);
export const Leases = rt('coordination.k8s.io', 'v1', 'Lease', 'leases', true);
export const Deployments = rt('apps', 'v1', 'Deployment', 'deployments', true);
export const StatefulSets = rt('apps', 'v1', 'StatefulSet', 'statefulsets', true);
export const DaemonSets = rt('apps', 'v1', 'DaemonSet', 'daemonsets', true);
export const ReplicaSets = rt('apps', 'v1', 'ReplicaSet', 'replicasets', true);
export const ArgoRollouts = rt('argoproj.io', 'v1alpha1', 'Rollout', 'rollouts', true);
/** The workloads a rollout restart may target (rolloutRestartTargets[].kind → resource). */
export type RolloutKind = 'Deployment' | 'DaemonSet' | 'StatefulSet' | 'argo.Rollout';
export const ROLLOUT_RESOURCES: Readonly<Record<RolloutKind, ResourceType>> = Object.freeze({
  Deployment: Deployments,
  StatefulSet: StatefulSets,
  DaemonSet: DaemonSets,
  'argo.Rollout': ArgoRollouts,
});

/** The resource of a rollout target's kind as a user wrote it; undefined for a kind Ferry cannot restart. */
export function rolloutResource(kind: string): ResourceType | undefined {
  return Object.hasOwn(ROLLOUT_RESOURCES, kind) ? ROLLOUT_RESOURCES[kind as RolloutKind] : undefined;
}
export const CustomResourceDefinitions = rt(
  'apiextensions.k8s.io',
  'v1',
  'CustomResourceDefinition',
  'customresourcedefinitions',
  false,
);
export const ClusterRoles = rt('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false);
export const Roles = rt('rbac.authorization.k8s.io', 'v1', 'Role', 'roles', true);
// Not used by Ferry's code: they are here so that the deploy/ manifests (RBAC, the CSIDriver) can be
// applied by kind through this table (stack/lib/fixtures.ts resourceOf).
export const ClusterRoleBindings = rt(
  'rbac.authorization.k8s.io',
  'v1',
  'ClusterRoleBinding',
  'clusterrolebindings',
  false,
);
export const RoleBindings = rt('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings', true);
export const CSIDrivers = rt('storage.k8s.io', 'v1', 'CSIDriver', 'csidrivers', false);
export const CSINodes = rt('storage.k8s.io', 'v1', 'CSINode', 'csinodes', false);
export const SubjectAccessReviews = rt(
  'authorization.k8s.io',
  'v1',
  'SubjectAccessReview',
  'subjectaccessreviews',
  false,
);

export function apiVersionOf(r: ResourceType): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/**
 * Builds the REST path of a collection, an object or an object's subresource. A namespaced resource
 * without a namespace addresses the all-namespaces collection, which only exists for reads; naming
 * an object then is a caller bug. Cluster-scoped resources ignore `namespace`.
 */
export function resourcePath(
  r: ResourceType,
  loc: { namespace?: string | undefined; name?: string | undefined; subresource?: string | undefined } = {},
): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  let path = base;
  if (r.namespaced && loc.namespace !== undefined) {
    path += `/namespaces/${segment(loc.namespace)}`;
  } else if (r.namespaced && loc.name !== undefined) {
    throw new FerryError(CODES.INVALID_CONFIG, `${r.kind} ${loc.name}: a namespace is required`);
  }
  path += `/${r.plural}`;
  if (loc.name !== undefined) path += `/${segment(loc.name)}`;
  if (loc.subresource !== undefined) {
    if (loc.name === undefined) {
      throw new FerryError(CODES.INVALID_CONFIG, `${r.kind}: subresource ${loc.subresource} needs a name`);
    }
    path += `/${loc.subresource}`;
  }
  return path;
}

// Names are DNS-1123 in practice, but encoding keeps a bad name from escaping its path segment.
function segment(s: string): string {
  if (s === '' || s === '.' || s === '..') {
    throw new FerryError(CODES.INVALID_CONFIG, `invalid path segment ${JSON.stringify(s)}`);
  }
  return encodeURIComponent(s);
}
