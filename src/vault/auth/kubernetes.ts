// Kubernetes auth: `PUT auth/<mount>/login {role, jwt}`. The JWT is a ServiceAccount token the
// caller obtains through a TokenRequest on each login (VSO does the same; a cached token could
// outlive its own expiry across re-logins).
import type { VaultAuthInfo, VaultClient } from '../client.ts';
import { type AuthMethod, credential, type LoginExtras, login } from './index.ts';

export interface KubernetesAuthOptions extends LoginExtras {
  mount: string;
  role: string;
  getToken: () => Promise<string>;
}

export function kubernetesAuth(opts: KubernetesAuthOptions): AuthMethod {
  return roleJwtAuth('kubernetes', 'ServiceAccount token', opts);
}

/** JWT/OIDC auth has the same login shape; the JWT comes from a Secret or a TokenRequest. */
export function jwtAuth(opts: KubernetesAuthOptions): AuthMethod {
  return roleJwtAuth('jwt', 'JWT', opts);
}

/** GCP auth (iam roles) too: the JWT is an ID token Google signs for the workload's service account. */
export function gcpAuth(opts: KubernetesAuthOptions): AuthMethod {
  return roleJwtAuth('gcp', 'GCP ID token', opts);
}

function roleJwtAuth(
  method: 'kubernetes' | 'jwt' | 'gcp',
  what: string,
  opts: KubernetesAuthOptions,
): AuthMethod {
  return {
    method,
    mount: opts.mount,
    async login(client: VaultClient, signal?: AbortSignal): Promise<VaultAuthInfo> {
      const jwt = await credential(what, opts.getToken);
      return login(client, opts.mount, { role: opts.role, jwt }, opts, signal);
    },
  };
}
