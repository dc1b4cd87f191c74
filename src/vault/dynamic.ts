// Requesting dynamic credentials (a secrets engine's creds endpoint) as a VaultDynamicSecret spec
// describes it: shared by the VaultDynamicSecret controller and the CSI driver's leased items.
import { CODES, FerryError } from '../errors.ts';
import type { VaultApi, VaultResponse } from './client.ts';
import { VaultError } from './errors.ts';

export interface CredentialsRequest {
  mount: string;
  path: string;
  requestHTTPMethod?: string | undefined;
  params?: Record<string, string> | undefined;
}

/** VSO's request method rule: params force PUT; POST is sent as PUT; GET otherwise. */
export function requestMethod(spec: Pick<CredentialsRequest, 'requestHTTPMethod' | 'params'>): 'GET' | 'PUT' {
  if (spec.params && Object.keys(spec.params).length > 0) return 'PUT';
  return spec.requestHTTPMethod === 'PUT' || spec.requestHTTPMethod === 'POST' ? 'PUT' : 'GET';
}

export function requestPath(mount: string, path: string): string {
  const m = mount.replace(/^\/+|\/+$/g, '');
  const p = path.replace(/^\/+/, '');
  if (m === '' || p === '') throw new FerryError(CODES.INVALID_CONFIG, 'mount and path must not be empty');
  return `${m}/${p}`;
}

/** The engine's response, which must carry data (a 404 VaultError otherwise). */
export async function requestCredentials(
  api: VaultApi,
  spec: CredentialsRequest,
  signal?: AbortSignal,
): Promise<VaultResponse & { data: Record<string, unknown> }> {
  const path = requestPath(spec.mount, spec.path);
  const method = requestMethod(spec);
  const opts = signal ? { signal } : {};
  const res = method === 'GET' ? await api.read(path, opts) : await api.write(path, spec.params, opts);
  if (!res?.data) throw new VaultError({ method, path, status: 404, message: `no data at ${path}` });
  return { ...res, data: res.data };
}
