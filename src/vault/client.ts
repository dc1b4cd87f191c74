// Vault/OpenBao HTTP client on undici. One connection pool (Agent) per connection configuration;
// `withToken`/`withNamespace` derive cheap views that share it. The client knows nothing about
// authentication lifecycles (see session.ts) or secret engines (see kv.ts).
import { X509Certificate } from 'node:crypto';
import pkg from '../../package.json' with { type: 'json' };
import { CODES, FerryError } from '../errors.ts';
import type { VaultRequestObserver } from '../metrics/vault.ts';
import { type Agent, type Dispatcher, retryInterceptor } from '../undici.ts';
import { boundedAgent, isTooLarge, readBody } from './bounded-http.ts';
import { VaultError, vaultErrorFromBody, vaultTransportError } from './errors.ts';

export interface VaultClientOptions {
  /** Vault URL, e.g. `https://vault.example:8200`. A path prefix (for a reverse proxy) is kept. */
  address: string;
  caCertPem?: string;
  skipTLSVerify?: boolean;
  /** SNI name and the name the server certificate is verified against. */
  tlsServerName?: string;
  /** Added to every request. `X-Vault-Namespace` and `X-Vault-Token` are rejected: both are owned by
   * the client (`namespace`, `withToken`). */
  headers?: Record<string, string>;
  /** Per-attempt timeout (connect, response headers, and the whole body). Default 60 s, as vault/api;
   * at most MAX_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Response bodies beyond this many bytes are cut off and fail. Default 32 MiB. */
  maxResponseBytes?: number;
  namespace?: string;
  userAgent?: string;
  retry?: RetryPolicy;
  /** Told of every finished request (metrics); shared by the clients derived from this one. */
  onRequest?: VaultRequestObserver;
}

/** Retries apply to GET only (reads and LIST, which is sent as GET ?list=true): writes are not
 * idempotent in general (a repeated login or PKI issue has side effects). */
export interface RetryPolicy {
  maxRetries: number;
  minDelayMs: number;
  maxDelayMs: number;
}

/** vault/api's defaults: 2 retries, waits between 1 s and 1.5 s. `Retry-After` is honoured up to
 * `maxDelayMs`. */
export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 2, minDelayMs: 1000, maxDelayMs: 1500 };
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Longer timeouts are cut to this: a tenant's VaultConnection must not hold a reconcile for hours
 * (and Node's timers overflow past 2^31 ms into firing at once). */
export const MAX_TIMEOUT_MS = 300_000;
/** Vault's own default `max_request_size`: no secret Vault accepted is larger, and a LIST of a
 * hundred thousand keys still fits. A hostile server cannot make a reconcile hold more. */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
export const USER_AGENT = `ferry/${pkg.version}`;

// 412 is Vault's "index not yet replicated" answer on performance standbys; the rest are the usual
// transient server answers. 501 (not implemented) is deliberately absent.
const RETRY_STATUS = [412, 429, 500, 502, 503, 504];
const RETRY_ERROR_CODES = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
];
// Host is the address's: a tenant's Host header would reach another virtual host behind the same
// endpoint than the one the address names.
const RESERVED_HEADERS = new Set(['x-vault-namespace', 'x-vault-token', 'host']);

export interface VaultAuthInfo {
  /** Non-enumerable on parsed responses so that logging an AuthInfo never prints the token. */
  client_token: string;
  accessor: string;
  policies: string[];
  token_policies?: string[];
  metadata?: Record<string, string> | null;
  lease_duration: number;
  renewable: boolean;
  entity_id?: string;
  token_type?: string;
  orphan?: boolean;
}

export interface VaultResponse {
  request_id?: string;
  lease_id?: string;
  renewable?: boolean;
  lease_duration?: number;
  data?: Record<string, unknown> | null;
  auth?: VaultAuthInfo | null;
  wrap_info?: unknown;
  warnings?: string[] | null;
}

export interface RequestOptions {
  query?: Record<string, string>;
  /** Extra headers for this request only (VaultAuth `headers` on login). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export type VaultMethod = 'GET' | 'PUT' | 'POST' | 'DELETE' | 'LIST';

/** The request surface shared by VaultClient and VaultSession, so engine helpers (kv.ts) accept
 * either. */
export interface VaultApi {
  read(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined>;
  write(
    path: string,
    body?: Record<string, unknown>,
    opts?: RequestOptions,
  ): Promise<VaultResponse | undefined>;
  delete(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined>;
  list(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined>;
}

export interface SealStatus {
  sealed: boolean;
  initialized: boolean;
  version?: string;
}

interface Transport {
  dispatcher: Dispatcher;
  agent: Agent;
  origin: string;
  basePath: string;
  headers: Record<string, string>;
  timeoutMs: number;
  maxResponseBytes: number;
  onRequest: VaultRequestObserver | undefined;
}

export class VaultClient implements VaultApi {
  readonly #transport: Transport;
  // Private fields are invisible to util.inspect and JSON.stringify, so a logged client never
  // shows its token.
  readonly #token: string | undefined;
  readonly namespace: string | undefined;

  constructor(opts: VaultClientOptions);
  constructor(opts: VaultClientOptions | Transport, token?: string, namespace?: string) {
    if ('dispatcher' in opts) {
      this.#transport = opts;
      this.#token = token;
      this.namespace = namespace;
    } else {
      this.#transport = createTransport(opts);
      this.#token = undefined;
      this.namespace = opts.namespace || undefined;
    }
  }

  get address(): string {
    return this.#transport.origin + this.#transport.basePath;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  withToken(token: string): VaultClient {
    return new DerivedClient(this.#transport, token, this.namespace);
  }

  withNamespace(namespace: string | undefined): VaultClient {
    return new DerivedClient(this.#transport, this.#token, namespace || undefined);
  }

  read(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.request('GET', path, undefined, opts);
  }

  write(
    path: string,
    body?: Record<string, unknown>,
    opts?: RequestOptions,
  ): Promise<VaultResponse | undefined> {
    return this.request('PUT', path, body, opts);
  }

  delete(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.request('DELETE', path, undefined, opts);
  }

  list(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.request('LIST', path, undefined, opts);
  }

  /** `sys/seal-status` is unauthenticated and answers 200 even when sealed. */
  async sealStatus(opts?: Pick<RequestOptions, 'signal'>): Promise<SealStatus> {
    const res = await this.#send('GET', 'sys/seal-status', undefined, opts);
    const body = res.body;
    if (typeof body?.sealed !== 'boolean' || typeof body.initialized !== 'boolean') {
      throw new VaultError({
        method: 'GET',
        path: 'sys/seal-status',
        status: res.status,
        message: 'Vault GET sys/seal-status returned an unexpected body',
      });
    }
    const out: SealStatus = { sealed: body.sealed, initialized: body.initialized };
    if (typeof body.version === 'string') out.version = body.version;
    return out;
  }

  /**
   * Sends one request. Answers with status >= 400 throw VaultError, except a 404 that carries data
   * or warnings (a deleted KV v2 version) which is returned, and a 404 with an empty `errors` list
   * (nothing at this path) which resolves to undefined, as vault/api does. 204 resolves to undefined.
   */
  async request(
    method: VaultMethod,
    path: string,
    body?: Record<string, unknown>,
    opts?: RequestOptions,
  ): Promise<VaultResponse | undefined> {
    const res = await this.#send(method, path, body, opts);
    if (res.body === undefined) return undefined;
    if (res.status === 404) {
      const parsed = parseVaultResponse(res.body);
      if (hasContent(parsed)) return parsed;
      return undefined;
    }
    return parseVaultResponse(res.body);
  }

  /** Closes the connection pool shared by this client and every client derived from it. */
  async close(): Promise<void> {
    await this.#transport.agent.close();
  }

  async #send(
    method: VaultMethod,
    path: string,
    body: Record<string, unknown> | undefined,
    opts: RequestOptions | undefined,
  ): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    const observe = this.#transport.onRequest;
    if (observe === undefined) return this.#exchange(method, normalizePath(path), body, opts);
    const start = performance.now();
    const cleanPath = normalizePath(path);
    let status: number | undefined;
    try {
      const res = await this.#exchange(method, cleanPath, body, opts);
      status = res.status;
      return res;
    } catch (err) {
      if (err instanceof VaultError && err.status !== undefined) status = err.status;
      throw err;
    } finally {
      observe({ method, path: cleanPath, status, seconds: (performance.now() - start) / 1000 });
    }
  }

  async #exchange(
    method: VaultMethod,
    cleanPath: string,
    body: Record<string, unknown> | undefined,
    opts: RequestOptions | undefined,
  ): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    const headers: Record<string, string> = { ...this.#transport.headers };
    if (opts?.headers) {
      for (const [k, v] of Object.entries(opts.headers)) {
        if (RESERVED_HEADERS.has(k.toLowerCase())) {
          throw new FerryError(CODES.VAULT_CONFIG, `header ${k} cannot be set through request headers`);
        }
        headers[k.toLowerCase()] = v;
      }
    }
    if (this.#token !== undefined) headers['x-vault-token'] = this.#token;
    if (this.namespace !== undefined) headers['x-vault-namespace'] = this.namespace;
    const query = new URLSearchParams(opts?.query);
    // LIST is sent as GET ?list=true: some proxies reject unknown verbs, and GET makes it retryable.
    const wireMethod = method === 'LIST' ? 'GET' : method;
    if (method === 'LIST') query.set('list', 'true');
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const qs = query.size > 0 ? `?${query}` : '';
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#transport.dispatcher.request({
        origin: this.#transport.origin,
        path: `${this.#transport.basePath}/v1/${cleanPath}${qs}`,
        method: wireMethod,
        headers,
        body: payload ?? null,
        signal: opts?.signal ?? null,
      });
    } catch (err) {
      throw this.#transportError(method, cleanPath, err);
    }
    let text: string;
    try {
      text = await readBody(res.body, this.#transport.timeoutMs);
    } catch (err) {
      throw this.#transportError(method, cleanPath, err);
    }
    const json = parseJsonObject(text);
    if (res.statusCode >= 400) {
      // A 404 with content (or an empty errors list) is an answer, not a failure; see request().
      if (res.statusCode === 404 && (json === undefined || errorsEmpty(json))) {
        return { status: 404, body: json };
      }
      throw vaultErrorFromBody(method, cleanPath, res.statusCode, json);
    }
    if (json === undefined && text.trim() !== '') {
      throw new VaultError({
        method,
        path: cleanPath,
        status: res.statusCode,
        message: `Vault ${method} ${cleanPath} returned a non-JSON body (status ${res.statusCode})`,
      });
    }
    return { status: res.statusCode, body: json };
  }

  #transportError(method: VaultMethod, path: string, err: unknown): FerryError {
    if (isTooLarge(err)) {
      const limit = this.#transport.maxResponseBytes;
      return new FerryError(
        CODES.VAULT_RESPONSE_TOO_LARGE,
        `Vault ${method} ${path}: response body exceeds the limit of ${limit} bytes`,
        { cause: err },
      );
    }
    return vaultTransportError(method, path, err);
  }
}

// The public constructor takes options only; derived views reuse the transport through this
// module-private signature so they never open a second connection pool.
const DerivedClient = VaultClient as unknown as new (
  transport: Transport,
  token: string | undefined,
  namespace: string | undefined,
) => VaultClient;

function createTransport(opts: VaultClientOptions): Transport {
  let url: URL;
  try {
    url = new URL(opts.address);
  } catch {
    throw new FerryError(CODES.VAULT_CONFIG, 'Vault address is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FerryError(CODES.VAULT_CONFIG, `Vault address must use http or https, not ${url.protocol}`);
  }
  const headers: Record<string, string> = { 'user-agent': opts.userAgent ?? USER_AGENT };
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    if (RESERVED_HEADERS.has(k.toLowerCase())) {
      const instead =
        k.toLowerCase() === 'host' ? 'the address names the server' : 'use the namespace field instead';
      throw new FerryError(
        CODES.VAULT_CONFIG,
        `header ${k} is not allowed in VaultConnection headers; ${instead}`,
      );
    }
    headers[k.toLowerCase()] = v;
  }
  // Marks the request as API traffic for Vault's CSRF protection; set last so it cannot be dropped.
  headers['x-vault-request'] = 'true';

  if (opts.caCertPem !== undefined && !opts.skipTLSVerify) validateCaPem(opts.caCertPem);
  const timeoutMs = Math.min(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
  if (!(timeoutMs > 0)) throw new FerryError(CODES.VAULT_CONFIG, 'Vault timeout must be positive');
  const connect: Record<string, unknown> = {};
  if (opts.caCertPem !== undefined) connect.ca = opts.caCertPem;
  if (opts.skipTLSVerify) connect.rejectUnauthorized = false;
  if (opts.tlsServerName) connect.servername = opts.tlsServerName;
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const agent = boundedAgent({ timeoutMs, maxResponseBytes, connect });
  const retry = opts.retry ?? DEFAULT_RETRY;
  const dispatcher = agent.compose(
    retryInterceptor({
      // Pass the final answer through so its `errors` body can become a VaultError.
      throwOnError: false,
      maxRetries: retry.maxRetries,
      minTimeout: retry.minDelayMs,
      maxTimeout: retry.maxDelayMs,
      timeoutFactor: retry.minDelayMs > 0 ? Math.max(1, retry.maxDelayMs / retry.minDelayMs) : 1,
      methods: ['GET'],
      statusCodes: RETRY_STATUS,
      errorCodes: RETRY_ERROR_CODES,
    }),
  );
  return {
    agent,
    dispatcher,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    headers,
    timeoutMs,
    maxResponseBytes,
    onRequest: opts.onRequest,
  };
}

function validateCaPem(pem: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const valid = blocks.some((block) => {
    try {
      new X509Certificate(block);
      return true;
    } catch {
      return false;
    }
  });
  if (!valid) {
    throw new FerryError(CODES.VAULT_CONFIG, 'CA data does not contain a valid PEM certificate');
  }
}

/** Encodes each segment so that keys with spaces or `?`/`#` address the intended Vault path. */
function normalizePath(path: string): string {
  return path
    .replace(/^\/+/, '')
    .replace(/^v1\//, '')
    .split('/')
    .map((seg) => encodeURIComponent(seg))
    .join('/');
}

// Vault's Go client decodes numbers as json.Number, so VSO keeps a number's text: `8080.0` stays
// `8080.0` and integers beyond 2^53 stay exact. JSON.parse gives doubles; where the double does not
// print back as the source text, the text is kept here, by the object (or array) holding it and
// the key (or index), for the delivery code to use in templates and Secret data.
const numberSources = new WeakMap<object, Map<string, string>>();

function keepNumberSource(this: unknown, key: string, value: unknown, ctx?: { source?: string }): unknown {
  if (typeof value === 'number' && ctx?.source !== undefined && ctx.source !== String(value)) {
    const holder = this as object;
    const m = numberSources.get(holder) ?? new Map<string, string>();
    numberSources.set(holder, m);
    m.set(key, ctx.source);
  }
  return value;
}

/** The JSON text of `holder[key]` as Vault sent it, when the number it parsed to prints otherwise. */
export function numberSource(holder: object, key: string): string | undefined {
  return numberSources.get(holder)?.get(key);
}

// A value that starts like a number that may not print back as written: a fraction or exponent, 16+
// digits, or -0. Bodies without one (most, e.g. a LIST of keys) skip the reviver, which costs
// several times the parse itself. A match inside a string only means the slower path.
const LOSSY_NUMBER_HINT = /[:,[]\s*(?:-?\d+[.eE]|-?\d{16}|-0(?![.\d]))/;

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined;
  try {
    const v: unknown = LOSSY_NUMBER_HINT.test(text)
      ? JSON.parse(text, keepNumberSource as (k: string, v: unknown) => unknown)
      : JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function errorsEmpty(body: Record<string, unknown>): boolean {
  return !Array.isArray(body.errors) || body.errors.length === 0;
}

function hasContent(res: VaultResponse): boolean {
  return (res.data != null && Object.keys(res.data).length > 0) || (res.warnings?.length ?? 0) > 0;
}

/** Keeps only the documented response fields, each with its expected type, so callers can trust
 * the static type without re-checking. */
function parseVaultResponse(body: Record<string, unknown>): VaultResponse {
  const out: VaultResponse = {};
  if (typeof body.request_id === 'string') out.request_id = body.request_id;
  if (typeof body.lease_id === 'string') out.lease_id = body.lease_id;
  if (typeof body.renewable === 'boolean') out.renewable = body.renewable;
  if (typeof body.lease_duration === 'number') out.lease_duration = body.lease_duration;
  if (isRecord(body.data)) out.data = body.data;
  else if (body.data === null) out.data = null;
  if (isRecord(body.auth)) out.auth = parseAuthInfo(body.auth);
  else if (body.auth === null) out.auth = null;
  if (body.wrap_info !== undefined) out.wrap_info = body.wrap_info;
  if (Array.isArray(body.warnings)) out.warnings = body.warnings.filter((w) => typeof w === 'string');
  return out;
}

function parseAuthInfo(a: Record<string, unknown>): VaultAuthInfo {
  const info = {
    accessor: typeof a.accessor === 'string' ? a.accessor : '',
    policies: stringArray(a.policies),
    lease_duration: typeof a.lease_duration === 'number' ? a.lease_duration : 0,
    renewable: a.renewable === true,
  } as VaultAuthInfo;
  Object.defineProperty(info, 'client_token', {
    value: typeof a.client_token === 'string' ? a.client_token : '',
    enumerable: false,
  });
  if (Array.isArray(a.token_policies)) info.token_policies = stringArray(a.token_policies);
  if (isRecord(a.metadata)) info.metadata = a.metadata as Record<string, string>;
  if (typeof a.entity_id === 'string') info.entity_id = a.entity_id;
  if (typeof a.token_type === 'string') info.token_type = a.token_type;
  if (typeof a.orphan === 'boolean') info.orphan = a.orphan;
  return info;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
