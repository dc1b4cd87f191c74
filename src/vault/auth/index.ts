// Auth methods: each turns credentials into a Vault token through `PUT auth/<mount>/login`. The
// session (session.ts) owns the token lifecycle and calls `login` again whenever it needs a new
// token, so credential providers must fetch fresh credentials on every call (a new TokenRequest,
// re-read the secret-id) rather than cache them.
import { CODES, FerryError, isFerryError } from '../../errors.ts';
import type { VaultAuthInfo, VaultClient } from '../client.ts';

export type AuthMethodName = 'kubernetes' | 'jwt' | 'appRole' | 'aws' | 'gcp';

export interface AuthMethod {
  readonly method: AuthMethodName;
  readonly mount: string;
  /** `client` carries the connection and the Vault namespace, and no token. */
  login(client: VaultClient, signal?: AbortSignal): Promise<VaultAuthInfo>;
}

/** Shared by every method: VaultAuth `params` are merged under the method's own fields (which win),
 * fixing VSO's defect of never sending them (§21.3); VaultAuth `headers` go on this call only. */
export interface LoginExtras {
  params?: Record<string, string>;
  headers?: Record<string, string>;
}

export async function login(
  client: VaultClient,
  mount: string,
  credentials: Record<string, unknown>,
  extras: LoginExtras,
  signal?: AbortSignal,
): Promise<VaultAuthInfo> {
  const path = `auth/${trimMount(mount)}/login`;
  const body = { ...extras.params, ...credentials };
  const opts: { headers?: Record<string, string>; signal?: AbortSignal } = {};
  if (extras.headers) opts.headers = extras.headers;
  if (signal) opts.signal = signal;
  const res = await client.write(path, body, opts);
  const auth = res?.auth;
  if (!auth?.client_token) {
    throw new FerryError(CODES.VAULT_AUTH, `Vault login at ${path} returned no token`);
  }
  return auth;
}

/** Runs a credential source, turning its failure into a VAULT_AUTH error that names the step. */
export async function credential<T extends string | object>(what: string, get: () => Promise<T>): Promise<T> {
  let value: T;
  try {
    value = await get();
  } catch (err) {
    // Ferry's own messages never carry a secret, so the user sees why (a Secret without the key, a
    // file outside the allowed directory); foreign errors stay in the cause only.
    const why = isFerryError(err) ? `: ${err.message}` : '';
    throw new FerryError(CODES.VAULT_AUTH, `could not obtain ${what} for Vault login${why}`, { cause: err });
  }
  if (!value) throw new FerryError(CODES.VAULT_AUTH, `${what} for Vault login is empty`);
  return value;
}

function trimMount(mount: string): string {
  const m = mount.replace(/^\/+|\/+$/g, '');
  if (m === '') throw new FerryError(CODES.VAULT_CONFIG, 'auth mount must not be empty');
  return m;
}
