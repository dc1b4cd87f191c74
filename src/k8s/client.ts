import { readFileSync } from 'node:fs';
import { type Clock, systemClock } from '../clock.ts';
import { CODES, errorMessage, FerryError } from '../errors.ts';
import { Agent, type Dispatcher } from '../undici.ts';
import type { KubeConnection } from './config.ts';
import { errorFromResponse, errorFromStatus, isK8sApiError, isStatus, type K8sApiError } from './errors.ts';
import { type RateLimit, TokenBucket } from './ratelimit.ts';
import { type ResourceType, resourcePath } from './resources.ts';
import type { KubeList, KubeObject, Status, WatchEvent } from './types.ts';

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  /** Ask for PartialObjectMetadataList; servers that cannot serve it fall back to full JSON. */
  metadataOnly?: boolean;
  signal?: AbortSignal;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Server-side timeout; the client gives up on a silent stream slightly after it. */
  timeoutSeconds?: number;
  metadataOnly?: boolean;
  sendInitialEvents?: boolean;
}

export interface WriteOptions {
  fieldManager?: string;
  dryRun?: boolean;
  /** Aborts the request (a reconcile's signal: its timeout, lost leadership). */
  signal?: AbortSignal | undefined;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string>;
  accept?: string;
  signal?: AbortSignal;
}

export interface KubeClientOptions {
  userAgent?: string;
  requestTimeoutMs?: number;
  /** How often a tokenFile is re-read (projected tokens rotate); 60 s as in client-go. */
  tokenRefreshMs?: number;
  clock?: Clock;
  /** Client-side request rate limit (--kube-client-qps/--kube-client-burst); none by default. */
  rateLimit?: RateLimit;
}

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  // The apply content type is YAML, and JSON is a subset of YAML, so the body is sent as JSON.
  apply: 'application/apply-patch+yaml',
};

// Listing the plain JSON type second makes servers without metadata-only support fall back to it.
const ACCEPT_JSON = 'application/json';
const ACCEPT_META_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json';
const ACCEPT_META_WATCH = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json';

// Without timeoutSeconds the apiserver picks 30–60 min; the idle limit must outlast that.
const DEFAULT_WATCH_IDLE_SECONDS = 3600;

/** Thin typed REST client. It never retries: callers own retry policy. */
export class KubeClient {
  readonly namespace: string;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #agent: Agent;
  readonly #userAgent: string;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #conn: KubeConnection;
  readonly #tokenRefreshMs: number;
  #cachedToken: { value: string; readAt: number } | undefined;
  readonly #bucket: TokenBucket | undefined;

  constructor(conn: KubeConnection, opts: KubeClientOptions = {}) {
    const url = new URL(conn.server);
    this.#origin = url.origin;
    // A server URL may carry a path prefix (e.g. behind a proxy).
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.namespace = conn.namespace;
    this.#conn = conn;
    this.#userAgent = opts.userAgent ?? 'ferry';
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#clock = opts.clock ?? systemClock;
    this.#tokenRefreshMs = opts.tokenRefreshMs ?? 60_000;
    this.#bucket = opts.rateLimit ? new TokenBucket(opts.rateLimit, this.#clock) : undefined;
    const tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean } = {};
    if (conn.caPem !== undefined) tls.ca = conn.caPem;
    if (conn.certPem !== undefined) tls.cert = conn.certPem;
    if (conn.keyPem !== undefined) tls.key = conn.keyPem;
    if (conn.insecureSkipTLSVerify === true) tls.rejectUnauthorized = false;
    // One Agent for the process: connections are pooled and kept alive (30 s, as client-go does).
    this.#agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000, connect: tls });
  }

  async get<T extends KubeObject>(rt: ResourceType, name: string, namespace?: string): Promise<T> {
    return this.request<T>('GET', resourcePath(rt, { namespace: this.#ns(rt, namespace), name }));
  }

  /** `get`, with a missing object as undefined rather than an error. */
  async getIfExists<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(rt, name, namespace);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject>(rt: ResourceType, opts: ListOptions = {}): Promise<KubeList<T>> {
    const query: Record<string, string> = {};
    setIf(query, 'labelSelector', opts.labelSelector);
    setIf(query, 'fieldSelector', opts.fieldSelector);
    setIf(query, 'limit', opts.limit);
    setIf(query, 'continue', opts.continue);
    setIf(query, 'resourceVersion', opts.resourceVersion);
    const ro: RequestOptions = { query, accept: opts.metadataOnly ? ACCEPT_META_LIST : ACCEPT_JSON };
    if (opts.signal !== undefined) ro.signal = opts.signal;
    const list = await this.request<KubeList<T>>('GET', resourcePath(rt, { namespace: opts.namespace }), ro);
    // An empty PartialObjectMetadataList comes back with `items: null`.
    list.items ??= [];
    return list;
  }

  async create<T extends KubeObject>(rt: ResourceType, obj: T, opts: WriteOptions = {}): Promise<T> {
    const path = resourcePath(rt, { namespace: this.#ns(rt, obj.metadata.namespace) });
    return this.request<T>('POST', path, { body: obj, query: writeQuery(opts), ...signalOf(opts) });
  }

  async replace<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
    opts: WriteOptions & { subresource?: 'status' } = {},
  ): Promise<T> {
    const name = requireName(rt, obj);
    const path = resourcePath(rt, {
      namespace: this.#ns(rt, obj.metadata.namespace),
      name,
      subresource: opts.subresource,
    });
    return this.request<T>('PUT', path, { body: obj, query: writeQuery(opts), ...signalOf(opts) });
  }

  async patch<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    namespace: string | undefined,
    body: unknown,
    type: PatchType,
    opts: WriteOptions & { subresource?: string; force?: boolean } = {},
  ): Promise<T> {
    const query = writeQuery(opts);
    if (type === 'apply') {
      if (opts.fieldManager === undefined) {
        throw new FerryError(CODES.INVALID_CONFIG, `apply patch of ${rt.kind} ${name} needs a fieldManager`);
      }
      if (opts.force === true) query.force = 'true';
    }
    const path = resourcePath(rt, {
      namespace: this.#ns(rt, namespace),
      name,
      subresource: opts.subresource,
    });
    return this.request<T>('PATCH', path, {
      body,
      contentType: PATCH_CONTENT_TYPES[type],
      query,
      ...signalOf(opts),
    });
  }

  /** Deletes an object; a missing object is a K8sApiError with isNotFound(). */
  async delete(
    rt: ResourceType,
    name: string,
    namespace?: string,
    opts: {
      propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
      preconditions?: { uid?: string; resourceVersion?: string };
      gracePeriodSeconds?: number;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<void> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.propagationPolicy !== undefined) body.propagationPolicy = opts.propagationPolicy;
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.preconditions !== undefined) body.preconditions = opts.preconditions;
    await this.request('DELETE', resourcePath(rt, { namespace: this.#ns(rt, namespace), name }), {
      body,
      ...signalOf(opts),
    });
  }

  /**
   * Opens one watch request and yields its events until the server closes the stream (clean end),
   * the signal aborts (clean end) or the stream fails (throws). The stream is parsed in a single
   * awaited loop so events are yielded strictly in order, with backpressure. A stream silent for
   * slightly longer than timeoutSeconds is treated as half-open and fails with K8S_TRANSPORT.
   * In-stream ERROR events are yielded, not thrown; the caller decides (e.g. 410 → relist).
   */
  async *watch<T extends KubeObject>(
    rt: ResourceType,
    opts: WatchOptions,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent<T>> {
    const query: Record<string, string> = { watch: 'true' };
    setIf(query, 'labelSelector', opts.labelSelector);
    setIf(query, 'fieldSelector', opts.fieldSelector);
    setIf(query, 'resourceVersion', opts.resourceVersion);
    setIf(query, 'timeoutSeconds', opts.timeoutSeconds);
    if (opts.allowWatchBookmarks === true) query.allowWatchBookmarks = 'true';
    if (opts.sendInitialEvents === true) {
      query.sendInitialEvents = 'true';
      query.resourceVersionMatch = 'NotOlderThan';
    }
    const idleSeconds = opts.timeoutSeconds ?? DEFAULT_WATCH_IDLE_SECONDS;
    const idleMs = Math.ceil(idleSeconds * 1000 + Math.max(1000, idleSeconds * 100));
    const path = resourcePath(rt, { namespace: opts.namespace });
    const ctx = `WATCH ${path}`;
    if (signal.aborted) return;
    const res = await this.#send('GET', path, {
      query,
      accept: opts.metadataOnly ? ACCEPT_META_WATCH : ACCEPT_JSON,
      signal,
      bodyTimeout: idleMs,
    });
    if (res === undefined) return;
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw await this.#errorOf(ctx, res);
    }
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') yield parseWatchLine<T>(ctx, line);
          nl = buffered.indexOf('\n');
        }
      }
      buffered += decoder.decode();
      if (buffered.trim() !== '') yield parseWatchLine<T>(ctx, buffered);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof FerryError) throw err;
      throw new FerryError(CODES.K8S_TRANSPORT, `${ctx}: stream failed: ${errorMessage(err)}`, {
        cause: err,
      });
    } finally {
      // Ends the response if the consumer stopped early, so the socket is not left half-read.
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  /** TokenRequest for a service account (the token is returned, never logged). */
  async createToken(
    namespace: string,
    serviceAccount: string,
    spec: {
      audiences?: string[];
      expirationSeconds?: number;
      /** Binds the token to an object (kubelet binds pod tokens to their Pod). */
      boundObjectRef?: { kind: 'Pod' | 'Secret'; apiVersion: 'v1'; name: string; uid: string };
    },
  ): Promise<{ token: string; expirationTimestamp: string }> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`;
    const res = await this.request<{ status?: { token?: string; expirationTimestamp?: string } }>(
      'POST',
      path,
      {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec },
      },
    );
    const token = res.status?.token;
    const expirationTimestamp = res.status?.expirationTimestamp;
    if (typeof token !== 'string' || typeof expirationTimestamp !== 'string') {
      throw new FerryError(CODES.K8S_API, `POST ${path}: TokenRequest response has no status.token`);
    }
    return { token, expirationTimestamp };
  }

  /** A raw JSON request against an API path (e.g. "/version"). */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const ctx = `${method} ${path}`;
    const res = await this.#send(method, path, opts);
    if (res === undefined) {
      throw new FerryError(CODES.K8S_TRANSPORT, `${ctx}: aborted`, { cause: opts.signal?.reason });
    }
    if (res.statusCode < 200 || res.statusCode >= 300) throw await this.#errorOf(ctx, res);
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new FerryError(CODES.K8S_TRANSPORT, `${ctx}: reading response failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      // The body is not echoed: it may be a Secret.
      throw new FerryError(CODES.K8S_API, `${ctx}: response is not JSON`);
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  #ns(rt: ResourceType, namespace: string | undefined): string | undefined {
    return rt.namespaced ? namespace : undefined;
  }

  async #send(
    method: string,
    path: string,
    opts: RequestOptions & { bodyTimeout?: number },
  ): Promise<Dispatcher.ResponseData | undefined> {
    // Every request, watches included, takes a token first (as client-go's).
    if (this.#bucket !== undefined && !(await this.#bucket.acquire(opts.signal))) return undefined;
    const headers: Record<string, string> = {
      accept: opts.accept ?? ACCEPT_JSON,
      'user-agent': this.#userAgent,
    };
    const token = this.#token();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const qs = opts.query && Object.keys(opts.query).length > 0 ? `?${new URLSearchParams(opts.query)}` : '';
    const requestOpts: Dispatcher.RequestOptions = {
      origin: this.#origin,
      path: `${this.#basePath}${path}${qs}`,
      method: method as Dispatcher.HttpMethod,
      headers,
      body: body ?? null,
      headersTimeout: this.#timeoutMs,
      bodyTimeout: opts.bodyTimeout ?? this.#timeoutMs,
    };
    if (opts.signal !== undefined) requestOpts.signal = opts.signal;
    try {
      const res = await this.#agent.request(requestOpts);
      if (res.statusCode === 401 && this.#conn.tokenFile !== undefined) {
        // The token may have rotated under us; re-read it on the next request.
        this.#cachedToken = undefined;
      }
      return res;
    } catch (err) {
      if (opts.signal?.aborted) return undefined;
      throw new FerryError(CODES.K8S_TRANSPORT, `${method} ${path}: ${errorMessage(err)}`, { cause: err });
    }
  }

  #token(): string | undefined {
    if (this.#conn.token !== undefined) return this.#conn.token;
    const file = this.#conn.tokenFile;
    if (file === undefined) return undefined;
    const now = this.#clock.now();
    if (this.#cachedToken !== undefined && now - this.#cachedToken.readAt < this.#tokenRefreshMs) {
      return this.#cachedToken.value;
    }
    try {
      this.#cachedToken = { value: readFileSync(file, 'utf8').trim(), readAt: now };
    } catch (err) {
      // Keep using the last token if a rotation is mid-flight; fail only if there never was one.
      if (this.#cachedToken === undefined) {
        throw new FerryError(CODES.KUBECONFIG, `cannot read token file ${file}`, { cause: err });
      }
    }
    return this.#cachedToken.value;
  }

  async #errorOf(ctx: string, res: Dispatcher.ResponseData): Promise<Error> {
    let text = '';
    try {
      text = await res.body.text();
    } catch {
      // The status code alone still makes a useful error.
    }
    const retryAfter = res.headers['retry-after'];
    return errorFromResponse(
      ctx,
      res.statusCode,
      text,
      Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
      () => this.#clock.now(),
    );
  }
}

function parseWatchLine<T>(ctx: string, line: string): WatchEvent<T> {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    // The line is not quoted: it may contain Secret data.
    throw new FerryError(CODES.K8S_WATCH, `${ctx}: malformed watch event`);
  }
  const e = ev as { type?: unknown; object?: unknown };
  if (typeof e.object !== 'object' || e.object === null) {
    throw new FerryError(CODES.K8S_WATCH, `${ctx}: watch event without an object`);
  }
  switch (e.type) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
    case 'BOOKMARK':
      return { type: e.type, object: e.object as T };
    case 'ERROR':
      return { type: 'ERROR', object: isStatus(e.object) ? e.object : { message: 'unknown watch error' } };
    default:
      throw new FerryError(
        CODES.K8S_WATCH,
        `${ctx}: unknown watch event type ${String(e.type).slice(0, 32)}`,
      );
  }
}

/** Turns an in-stream watch ERROR into a K8sApiError (410 there means "relist"). */
export function watchErrorToException(rt: ResourceType, status: Status): K8sApiError {
  return errorFromStatus(`WATCH ${resourcePath(rt)}`, status);
}

function requireName(rt: ResourceType, obj: KubeObject): string {
  const name = obj.metadata.name;
  if (name === undefined || name === '') throw new FerryError(CODES.INVALID_CONFIG, `${rt.kind} has no name`);
  return name;
}

function writeQuery(opts: WriteOptions): Record<string, string> {
  const q: Record<string, string> = {};
  if (opts.fieldManager !== undefined) q.fieldManager = opts.fieldManager;
  if (opts.dryRun === true) q.dryRun = 'All';
  return q;
}

function signalOf(opts: { signal?: AbortSignal | undefined }): { signal?: AbortSignal } {
  return opts.signal ? { signal: opts.signal } : {};
}

function setIf(q: Record<string, string>, key: string, v: string | number | undefined): void {
  if (v !== undefined && v !== '') q[key] = String(v);
}
