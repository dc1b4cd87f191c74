// Which VaultAuth a consumer may use, and the login configuration a VaultAuth yields once merged
// with its VaultAuthGlobal (vso-api.md §1.3, §3.3).
import type { AuthMethod } from '../api/v1beta1/common.ts';
import type { VaultAuthSpec } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobalSpec } from '../api/v1beta1/vaultauthglobal.ts';
import { CODES, FerryError } from '../errors.ts';

export interface NamespacedName {
  namespace: string;
  name: string;
}

/** VSO's rule: same namespace; the operator namespace's `default`; `["*"]`; or listed. */
export function isAllowedNamespace(
  target: NamespacedName,
  consumerNamespace: string,
  allowed: readonly string[] | undefined,
  operatorNamespace: string,
): boolean {
  if (consumerNamespace === target.namespace) return true;
  if (target.name === 'default' && target.namespace === operatorNamespace) return true;
  if (!allowed || allowed.length === 0) return false;
  if (allowed.length === 1 && allowed[0] === '*') return true;
  return allowed.includes(consumerNamespace);
}

type Strategy = 'union' | 'replace' | 'none';

export interface KubernetesLogin {
  role?: string;
  serviceAccount?: string;
  audiences?: string[];
  tokenExpirationSeconds?: number;
}

/** VSO's two JWT sources: a TokenRequest for `serviceAccount` (which wins when both are set), else
 * the `jwt` key of Secret `secretRef`. */
export interface JwtLogin extends KubernetesLogin {
  secretRef?: string;
}

export interface AppRoleLogin {
  roleId?: string;
  secretRef?: string;
  secretIDPath?: string;
}

export interface AwsLogin {
  role?: string;
  region?: string;
  headerValue?: string;
  sessionName?: string;
  stsEndpoint?: string;
  iamEndpoint?: string;
  secretRef?: string;
  irsaServiceAccount?: string;
}

export interface GcpLogin {
  role?: string;
  workloadIdentityServiceAccount?: string;
  region?: string;
  clusterName?: string;
  projectID?: string;
}

export interface EffectiveAuth {
  method: AuthMethod;
  mount: string;
  vaultNamespace?: string;
  vaultConnectionRef?: string;
  params: Record<string, string>;
  headers: Record<string, string>;
  kubernetes?: KubernetesLogin;
  jwt?: JwtLogin;
  appRole?: AppRoleLogin;
  aws?: AwsLogin;
  gcp?: GcpLogin;
}

const nonEmpty = (...values: (string | undefined)[]): string | undefined =>
  values.find((v) => v !== undefined && v !== '');

function mergeMaps(
  strategy: Strategy,
  auth: Record<string, string> | undefined,
  method: Record<string, string> | undefined,
  global: Record<string, string> | undefined,
): Record<string, string> {
  if (strategy === 'union') return { ...global, ...method, ...auth };
  if (strategy === 'replace') {
    return { ...([auth, method, global].find((m) => m && Object.keys(m).length > 0) ?? {}) };
  }
  return { ...auth };
}

/** Per field, the VaultAuth's non-empty value wins over the global method object's. */
function mergeFields<T extends object>(
  auth: T | undefined,
  global: Partial<T> | undefined,
  keys: (keyof T)[],
): T {
  const out: Partial<T> = {};
  for (const k of keys) {
    const a = auth?.[k];
    const empty = a === undefined || a === '' || (Array.isArray(a) && a.length === 0);
    const v = empty ? global?.[k] : a;
    if (v !== undefined) out[k] = v as T[keyof T];
  }
  return out as T;
}

export function effectiveAuth(auth: VaultAuthSpec, global?: VaultAuthGlobalSpec): EffectiveAuth {
  const method = auth.method ?? global?.defaultAuthMethod;
  if (!method)
    throw new FerryError(
      CODES.INVALID_CONFIG,
      'no auth method: set spec.method or a VaultAuthGlobal defaultAuthMethod',
    );
  const gm = global?.[method];
  const mount = nonEmpty(auth.mount, gm?.mount, global?.defaultMount);
  if (!mount)
    throw new FerryError(CODES.INVALID_CONFIG, 'no auth mount: set spec.mount or a VaultAuthGlobal default');
  const strategies = auth.vaultAuthGlobalRef?.mergeStrategy;
  const out: EffectiveAuth = {
    method,
    mount,
    params: mergeMaps(strategies?.params ?? 'none', auth.params, gm?.params, global?.params),
    headers: mergeMaps(strategies?.headers ?? 'none', auth.headers, gm?.headers, global?.headers),
  };
  const ns = nonEmpty(auth.namespace, gm?.namespace, global?.defaultVaultNamespace);
  if (ns) out.vaultNamespace = ns;
  const conn = nonEmpty(auth.vaultConnectionRef, global?.vaultConnectionRef);
  if (conn) out.vaultConnectionRef = conn;
  if (method === 'kubernetes') {
    out.kubernetes = mergeFields<KubernetesLogin>(auth.kubernetes, global?.kubernetes, [
      'role',
      'serviceAccount',
      'audiences',
      'tokenExpirationSeconds',
    ]);
  } else if (method === 'jwt') {
    out.jwt = mergeFields<JwtLogin>(auth.jwt, global?.jwt, [
      'role',
      'secretRef',
      'serviceAccount',
      'audiences',
      'tokenExpirationSeconds',
    ]);
  } else if (method === 'aws') {
    out.aws = mergeFields<AwsLogin>(auth.aws, global?.aws, [
      'role',
      'region',
      'headerValue',
      'sessionName',
      'stsEndpoint',
      'iamEndpoint',
      'secretRef',
      'irsaServiceAccount',
    ]);
  } else if (method === 'gcp') {
    out.gcp = mergeFields<GcpLogin>(auth.gcp, global?.gcp, [
      'role',
      'workloadIdentityServiceAccount',
      'region',
      'clusterName',
      'projectID',
    ]);
  } else if (method === 'appRole') {
    out.appRole = mergeFields<AppRoleLogin>(auth.appRole, global?.appRole, [
      'roleId',
      'secretRef',
      'secretIDPath',
    ]);
  }
  return out;
}
