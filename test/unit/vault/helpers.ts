// In-process fakes for the Vault unit tests: a manual clock and a loopback HTTP server that records
// requests and answers from a handler. End-to-end behaviour is covered against real OpenBao in
// test/e2e/vault-client.test.ts.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock, Timer } from '../../../src/clock.ts';

export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  #seq = 0;

  readonly #flush: () => Promise<void>;

  /** `flush` lets async work triggered by a timer finish; the default allows loopback HTTP. */
  constructor(opts: { start?: number; flush?: () => Promise<void> } = {}) {
    this.#now = opts.start ?? 1_700_000_000_000;
    this.#flush = opts.flush ?? settle;
  }

  /** Moves time without firing timers, as if the process had been suspended. */
  jump(ms: number): void {
    this.#now += ms;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
      },
    };
  }

  /** Delays of the pending timers, relative to now, in creation order. */
  pending(): number[] {
    return this.#timers.filter((t) => !t.cancelled).map((t) => t.at - this.#now);
  }

  /** Moves time forward, firing due timers in order and letting their async work settle. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => !t.cancelled && t.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = due.at;
      due.fn();
      await this.#flush();
    }
    this.#now = target;
    await this.#flush();
  }
}

/** Lets pending promise chains and loopback HTTP round trips complete. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5));
}

/** Lets promise chains without I/O complete. */
export async function microFlush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface Reply {
  status?: number;
  body?: unknown;
  /** Sent verbatim instead of JSON.stringify(body) (JSON that JS cannot produce, e.g. `8080.0`). */
  raw?: string;
  headers?: Record<string, string>;
}

export class FakeVault {
  readonly requests: Recorded[] = [];
  handler: (req: Recorded) => Reply | Promise<Reply> = () => ({ status: 404, body: { errors: [] } });
  #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<FakeVault> {
    let self: FakeVault | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://x');
        const text = Buffer.concat(chunks).toString();
        const rec: Recorded = {
          method: req.method ?? '',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: text ? JSON.parse(text) : undefined,
        };
        self?.requests.push(rec);
        void Promise.resolve(self?.handler(rec)).then((reply) => {
          res.writeHead(reply?.status ?? 200, { 'content-type': 'application/json', ...reply?.headers });
          res.end(reply?.raw ?? (reply?.body === undefined ? '' : JSON.stringify(reply.body)));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new FakeVault(server);
    return self;
  }

  get address(): string {
    const a = this.#server.address();
    return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }
}

/** An auth answer as Vault sends it. */
export function authBody(
  token: string,
  opts: { accessor?: string; ttl?: number; renewable?: boolean; policies?: string[] } = {},
) {
  return {
    auth: {
      client_token: token,
      accessor: opts.accessor ?? `acc-${createHash('sha256').update(token).digest('hex').slice(0, 12)}`,
      policies: opts.policies ?? ['default'],
      lease_duration: opts.ttl ?? 0,
      renewable: opts.renewable ?? true,
    },
  };
}

/** A hostile server: answers every request with `send`, and reports how many body bytes it wrote. */
export async function hostileServer(send: (res: ServerResponse, sent: { bytes: number }) => Promise<void>) {
  const sent = { bytes: 0 };
  const server = createServer((_req, res) => {
    res.on('error', () => {});
    send(res, sent).catch(() => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    address: `http://127.0.0.1:${port}`,
    sent,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A 200 JSON answer `total` bytes long, written as fast as the client reads it. */
export function floodBody(total: number) {
  return async (res: ServerResponse, sent: { bytes: number }): Promise<void> => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    res.write('{"data":{"k":"');
    while (sent.bytes < total && !res.destroyed) {
      sent.bytes += chunk.length;
      if (!res.write(chunk)) await drainedOrClosed(res);
    }
    res.end('"}}');
  };
}

/** A 200 JSON answer that trickles in one byte every `everyMs`, `bytes` times: never idle long. */
export function dripBody(bytes: number, everyMs: number) {
  return async (res: ServerResponse): Promise<void> => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"data":{"k":"');
    for (let i = 0; i < bytes && !res.destroyed; i++) {
      res.write('x');
      await new Promise((r) => setTimeout(r, everyMs));
    }
    res.end('"}}');
  };
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}
