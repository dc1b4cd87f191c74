// A scenario-driven loopback apiserver for ConfigMaps in one namespace (kube-rs mock_tests style).
// resourceVersions are deliberately non-numeric strings ("rv-<n>") so any numeric comparison in the
// code under test would break. It supports paginated lists at a snapshot, watches from a
// resourceVersion, bookmarks, compaction (410 in-stream), dropped connections and injected failures.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ConfigMap, Status } from '../../../src/k8s/types.ts';

interface LogEntry {
  rev: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: ConfigMap;
}

export interface Injected {
  status: number;
  body?: Status | string;
  headers?: Record<string, string>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

const rvOf = (rev: number): string => `rv-${rev}`;
const revOf = (rv: string): number => Number(rv.slice(3));

export class FakeApiServer {
  readonly namespace = 'ns1';
  readonly requests: RecordedRequest[] = [];
  #server: Server;
  #sockets = new Set<Socket>();
  #log: LogEntry[] = [];
  #rev = 100;
  #compactedRev = 0;
  #watchers = new Set<{ res: ServerResponse; fromRev: number }>();
  #listFailures: Injected[] = [];
  #watchFailures: Injected[] = [];
  #silentWatches = 0;
  #afterList: (() => void) | undefined;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  /** The current world, as a fresh list would see it. */
  world(): Map<string, ConfigMap> {
    return this.#snapshot(this.#rev);
  }

  put(name: string, data: Record<string, string>): ConfigMap {
    const exists = this.world().has(name);
    this.#rev++;
    const object: ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: this.namespace,
        resourceVersion: rvOf(this.#rev),
        managedFields: [{ manager: 'test' }],
      },
      data,
    };
    this.#append({ rev: this.#rev, type: exists ? 'MODIFIED' : 'ADDED', object });
    return object;
  }

  del(name: string): void {
    const prev = this.world().get(name);
    if (prev === undefined) return;
    this.#rev++;
    const object = { ...prev, metadata: { ...prev.metadata, resourceVersion: rvOf(this.#rev) } };
    this.#append({ rev: this.#rev, type: 'DELETED', object });
  }

  /** History up to now becomes unavailable to watches: older resourceVersions get 410. */
  compact(): void {
    this.#compactedRev = this.#rev;
  }

  bookmark(): void {
    this.#rev++; // Bookmarks may carry a resourceVersion no object has.
    for (const w of this.#watchers) this.#send(w.res, { type: 'BOOKMARK', object: this.#bookmarkObject() });
  }

  /** Ends every watch cleanly, as the server does at timeoutSeconds. */
  endWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  /** Kills every TCP connection (a network failure, not a clean close). */
  dropConnections(): void {
    for (const s of this.#sockets) s.destroy();
    this.#watchers.clear();
  }

  failLists(...f: Injected[]): void {
    this.#listFailures.push(...f);
  }
  failWatches(...f: Injected[]): void {
    this.#watchFailures.push(...f);
  }
  /** The next n watches send headers and then nothing (a half-open connection). */
  silenceWatches(n: number): void {
    this.#silentWatches += n;
  }

  /** Runs once, right after the next list page is served. */
  afterNextList(fn: () => void): void {
    this.#afterList = fn;
  }

  watchRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.query.get('watch') === 'true');
  }
  listRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.query.get('watch') !== 'true');
  }

  #append(e: LogEntry): void {
    this.#log.push(e);
    for (const w of this.#watchers) if (e.rev > w.fromRev) this.#send(w.res, e);
  }

  #snapshot(rev: number): Map<string, ConfigMap> {
    const m = new Map<string, ConfigMap>();
    for (const e of this.#log) {
      if (e.rev > rev) break;
      const name = e.object.metadata.name ?? '';
      if (e.type === 'DELETED') m.delete(name);
      else m.set(name, e.object);
    }
    return m;
  }

  #bookmarkObject(): ConfigMap {
    return { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: rvOf(this.#rev) } };
  }

  #send(res: ServerResponse, ev: { type: string; object: unknown }): void {
    res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
  }

  #fail(res: ServerResponse, f: Injected): void {
    res.writeHead(f.status, { 'content-type': 'application/json', ...f.headers });
    res.end(typeof f.body === 'string' ? f.body : JSON.stringify(f.body ?? {}));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
    });
    if (url.pathname !== `/api/v1/namespaces/${this.namespace}/configmaps`) {
      this.#fail(res, {
        status: 404,
        body: { kind: 'Status', code: 404, reason: 'NotFound', message: 'no route' },
      });
      return;
    }
    if (url.searchParams.get('watch') === 'true') this.#watch(url, res);
    else this.#list(url, res);
  }

  #list(url: URL, res: ServerResponse): void {
    const injected = this.#listFailures.shift();
    if (injected) {
      this.#fail(res, injected);
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? '0');
    const cont = url.searchParams.get('continue');
    let rev = this.#rev;
    let offset = 0;
    if (cont) {
      const [r, o] = cont.split(':');
      rev = Number(r);
      offset = Number(o);
      if (rev < this.#compactedRev) {
        this.#fail(res, {
          status: 410,
          body: { kind: 'Status', code: 410, reason: 'Expired', message: 'continue token expired' },
        });
        return;
      }
    }
    const all = [...this.#snapshot(rev).values()].sort((a, b) =>
      (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
    );
    const items = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
    const more = limit > 0 && offset + limit < all.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'ConfigMapList',
        apiVersion: 'v1',
        metadata: { resourceVersion: rvOf(rev), ...(more && { continue: `${rev}:${offset + limit}` }) },
        // Real list items carry no apiVersion/kind.
        items: items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
      }),
    );
    const after = this.#afterList;
    this.#afterList = undefined;
    after?.();
  }

  #watch(url: URL, res: ServerResponse): void {
    const injected = this.#watchFailures.shift();
    if (injected) {
      this.#fail(res, injected);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    if (this.#silentWatches > 0) {
      this.#silentWatches--;
      return;
    }
    const rv = url.searchParams.get('resourceVersion') ?? rvOf(this.#rev);
    const fromRev = revOf(rv);
    if (fromRev < this.#compactedRev) {
      this.#send(res, {
        type: 'ERROR',
        object: {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          code: 410,
          reason: 'Expired',
          message: `too old resource version: ${rv}`,
        },
      });
      res.end();
      return;
    }
    for (const e of this.#log) if (e.rev > fromRev) this.#send(res, e);
    const w = { res, fromRev };
    this.#watchers.add(w);
    res.on('close', () => this.#watchers.delete(w));
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeout > 0) {
      const t = setTimeout(() => {
        this.#watchers.delete(w);
        res.end();
      }, timeout * 1000);
      res.on('close', () => clearTimeout(t));
    }
  }
}
