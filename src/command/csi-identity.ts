// Who the CSI driver logs in to Vault as for a CSISecrets, so `ferry audit` and `ferry doctor` check
// that identity rather than another (docs/security.md): by default the pod's own ServiceAccount with
// the token kubelet issues for the VaultAuth's first audience (none: the API server's default);
// with the driver's --token-request-login (chart csi.driver.tokenRequestLogin), VSO's login as the
// VaultAuth's ServiceAccount. Pods are not known in advance: the ServiceAccounts that exist in the
// allowed namespaces and match accessControl.serviceAccountPattern stand for them, a few at most.
// Pod names and labels are not checked here (pods that do not exist yet may match them).
import { RE2JS } from 're2js';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';

export interface ServiceAccountName {
  namespace: string;
  name: string;
}

/** How many matching ServiceAccounts one CSISecrets' check logs in as. */
export const MAX_POD_SERVICE_ACCOUNTS = 3;

export type CsiLoginIdentity =
  /** The driver logs in as the VaultAuth's ServiceAccount (or its other credentials). */
  | { kind: 'vaultAuth'; why: string }
  /** As each of these ServiceAccounts, with a token for `audience` ("" is the API server's). */
  | { kind: 'pod'; serviceAccounts: ServiceAccountName[]; audience: string; why: string }
  /** No login can be tried (no concrete ServiceAccount, no pod token for the audience): why, and the fix. */
  | { kind: 'none'; why: string; fix: string };

/** Whole-value RE2 match, as the driver matches accessControl (an invalid pattern matches nothing). */
function fullMatch(pattern: string, value: string): boolean {
  try {
    return RE2JS.compile(pattern).matches(value);
  } catch {
    return false;
  }
}

export const describeAudience = (a: string): string =>
  a === '' ? 'the API server’s default audience' : `audience ${JSON.stringify(a)}`;

/** The installed CSIDriver and the audiences of its tokenRequests: the pod tokens kubelet passes. */
export interface CsiDriverTokens {
  name: string;
  audiences: readonly string[];
}

/**
 * The identity the driver would log in as for CSISecrets `spec` in `namespace`. `serviceAccounts`
 * are those in the cluster; `audiences` the VaultAuth's (kubernetes or jwt); `podLogin` whether its
 * method logs in with a ServiceAccount token (kubernetes, jwt with a serviceAccount) at all;
 * `driver` the CSIDriver's tokenRequests when known. As the driver (pickPodToken), the audience is
 * the first of the VaultAuth's that kubelet passes a token for.
 */
export function csiLoginIdentity(input: {
  namespace: string;
  spec: Pick<CSISecretsSpec, 'accessControl'> | undefined;
  tokenRequestLogin: boolean;
  podLogin: boolean;
  audiences: readonly string[] | undefined;
  serviceAccounts: readonly ServiceAccountName[];
  driver?: CsiDriverTokens | undefined;
}): CsiLoginIdentity {
  if (input.tokenRequestLogin)
    return {
      kind: 'vaultAuth',
      why: "the CSI driver runs with --token-request-login (csi.driver.tokenRequestLogin): it logs in as the VaultAuth's ServiceAccount",
    };
  if (!input.podLogin)
    return {
      kind: 'vaultAuth',
      why: "the VaultAuth's method does not log in with a ServiceAccount token: the driver uses the VaultAuth's own credentials",
    };
  const wanted = input.audiences && input.audiences.length > 0 ? input.audiences : [''];
  const audience = input.driver ? wanted.find((a) => input.driver?.audiences.includes(a)) : wanted[0];
  if (audience === undefined) {
    const names = wanted
      .map((a) => (a === '' ? '"" (the API server’s default)' : JSON.stringify(a)))
      .join(', ');
    return {
      kind: 'none',
      why: `the CSI driver logs in as the pod's ServiceAccount, but the CSIDriver ${input.driver?.name} requests no pod token for audience ${names}: kubelet passes none, so every mount fails`,
      fix: `add ${JSON.stringify(wanted[0])} to the chart value csi.driver.tokenAudiences (the CSIDriver's tokenRequests), or set the VaultAuth's audiences to one the CSIDriver requests`,
    };
  }
  const ac = input.spec?.accessControl;
  const pattern = ac?.serviceAccountPattern ?? '';
  const nsPatterns = ac?.namespacePatterns ?? [];
  const nsAllowed = (ns: string): boolean =>
    nsPatterns.length === 0 ? ns === input.namespace : nsPatterns.some((p) => fullMatch(p, ns));
  const matching = input.serviceAccounts
    .filter((sa) => nsAllowed(sa.namespace) && fullMatch(pattern, sa.name))
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  const where = nsPatterns.length === 0 ? `namespace ${input.namespace}` : 'the allowed namespaces';
  if (matching.length === 0)
    return {
      kind: 'none',
      why: `the CSI driver logs in as the pod's ServiceAccount, and no ServiceAccount in ${where} matches accessControl.serviceAccountPattern ${JSON.stringify(pattern)}: the check needs a concrete one (create it, or run the check once one exists)`,
      fix: NO_POD_SERVICE_ACCOUNT_FIX,
    };
  const shown = matching.slice(0, MAX_POD_SERVICE_ACCOUNTS);
  const more = matching.length - shown.length;
  return {
    kind: 'pod',
    serviceAccounts: shown,
    audience,
    why: `the CSI driver logs in as the pod's ServiceAccount with its kubelet-issued token for ${describeAudience(audience)}${more > 0 ? ` (${more} more matching ServiceAccount(s) not tried)` : ''}`,
  };
}

/** The fix for a CSI login as the pod's ServiceAccount `sa` that Vault refused, through `role`. */
export function podLoginFix(role: string, sa: ServiceAccountName, audience: string): string {
  const aud = audience === '' ? '' : ` and its audience to ${JSON.stringify(audience)}`;
  return `the Vault role ${role || '(unset)'} must accept ServiceAccount ${sa.namespace}/${sa.name}: add ${sa.name} to its bound_service_account_names and ${sa.namespace} to bound_service_account_namespaces${aud}, or set csi.driver.tokenRequestLogin=true (the driver then logs in as the VaultAuth's ServiceAccount)`;
}

/** The fix when no concrete ServiceAccount could be tried. */
const NO_POD_SERVICE_ACCOUNT_FIX =
  'create the ServiceAccount the pods will run as (matching accessControl.serviceAccountPattern) and run the check again, or set csi.driver.tokenRequestLogin=true';

/** As whom a CSISecrets' check logs in, and why, for a message (`sa`: which of the pod's). */
export function describeIdentity(id: CsiLoginIdentity, sa?: ServiceAccountName): string {
  if (id.kind === 'pod' && sa) return `ServiceAccount ${sa.namespace}/${sa.name} (${id.why})`;
  if (id.kind === 'vaultAuth') return `the VaultAuth's own identity (${id.why})`;
  return "the pod's ServiceAccount";
}
