// AppRole auth: `PUT auth/<mount>/login {role_id, secret_id}`. The secret-id is re-read on every
// login because it may be rotated in its Secret or file.
import type { VaultAuthInfo, VaultClient } from '../client.ts';
import { type AuthMethod, credential, type LoginExtras, login } from './index.ts';

export interface AppRoleAuthOptions extends LoginExtras {
  mount: string;
  roleId: string;
  getSecretId: () => Promise<string>;
}

export function appRoleAuth(opts: AppRoleAuthOptions): AuthMethod {
  return {
    method: 'appRole',
    mount: opts.mount,
    async login(client: VaultClient, signal?: AbortSignal): Promise<VaultAuthInfo> {
      const secretId = await credential('AppRole secret-id', opts.getSecretId);
      return login(client, opts.mount, { role_id: opts.roleId, secret_id: secretId }, opts, signal);
    },
  };
}
