// What the operator benchmark observes from outside the operator: a pass-through proxy in front of
// Vault that counts requests and logins, /proc samples of the operator process, and the API
// server's own request counters.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'undici';
import { apiserverRequests, parseProc } from './stats.ts';

export interface VaultCounts {
  requests: number;
  /** `/v1/auth/<mount>/login` */
  logins: number;
  /** Reads of the workload's kv-v2 secrets. */
  kvReads: number;
  /** Database credentials issued (`/v1/db/creds/…`). */
  creds: number;
  /** Lease renewals. */
  renewals: number;
}

/** Forwards every request to `target` unchanged and counts it by kind (see VaultCounts). */
export class VaultProxy {
  readonly counts: VaultCounts = { requests: 0, logins: 0, kvReads: 0, creds: 0, renewals: 0 };
  #server: Server | undefined;
  /** Per kv path, the times (s, performance.now) it was read while recording. */
  #reads: Map<string, number[]> | undefined;
  readonly #agent = new Agent({ connections: 512, keepAliveTimeout: 30_000 });
  readonly target: string;
  constructor(target: string) {
    this.target = target;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const url = req.url ?? '';
      this.counts.requests++;
      if (/^\/v1\/auth\/.+\/login(\/|$|\?)/.test(url)) this.counts.logins++;
      else if (url.startsWith('/v1/kvv2/data/')) {
        this.counts.kvReads++;
        const path = url.split('?')[0] as string;
        const times = this.#reads?.get(path) ?? [];
        if (times.push(performance.now() / 1000) === 1) this.#reads?.set(path, times);
      } else if (url.startsWith('/v1/db/creds/')) this.counts.creds++;
      else if (url.startsWith('/v1/sys/leases/renew')) this.counts.renewals++;
      const headers = { ...req.headers };
      delete headers.host;
      delete headers.connection;
      request(`${this.target}${req.url ?? '/'}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers,
        body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
        dispatcher: this.#agent,
      }).then(
        (up) => {
          const out: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers)) {
            if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding' && k !== 'keep-alive')
              out[k] = v;
          }
          res.writeHead(up.statusCode, out);
          up.body.pipe(res);
        },
        () => {
          res.writeHead(502).end();
        },
      );
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.#server = server;
    const addr = server.address();
    return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }

  /** Starts recording when each kv path is read (refreshIntervals in stats.ts reads the result). */
  recordReads(): void {
    this.#reads = new Map();
  }

  /** The reads recorded since recordReads(), and stops recording. */
  takeReads(): Map<string, number[]> {
    const out = this.#reads ?? new Map<string, number[]>();
    this.#reads = undefined;
    return out;
  }

  snapshot(): VaultCounts {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((r) => this.#server?.close(r) ?? r(undefined));
    await this.#agent.close();
  }
}

/** RSS (and its peak) and CPU seconds of a process now; undefined once it has exited. */
export function procSample(pid: number): ReturnType<typeof parseProc> | undefined {
  try {
    return parseProc(readFileSync(`/proc/${pid}/status`, 'utf8'), readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Samples RSS every `intervalMs` into a series of [seconds since t0, MB]; `also` runs on each
 * sample while the process lives. */
export class RssSampler {
  readonly points: [number, number][] = [];
  peak = 0;
  #timer: NodeJS.Timeout;
  constructor(pid: number, t0: number, intervalMs = 500, also?: () => void) {
    const tick = (): void => {
      const s = procSample(pid);
      if (!s) return;
      also?.();
      this.points.push([(performance.now() - t0) / 1000, Math.round(s.rssMb * 10) / 10]);
      this.peak = Math.max(this.peak, s.rssMb);
    };
    tick();
    this.#timer = setInterval(tick, intervalMs);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** The API server's request counters (its /metrics, as the admin). */
export async function apiserverCounts(
  server: string,
  token: string,
  caPem: string,
): Promise<ReturnType<typeof apiserverRequests>> {
  const agent = new Agent({ connect: { ca: caPem } });
  try {
    const res = await request(`${server}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
      dispatcher: agent,
    });
    return apiserverRequests(await res.body.text());
  } finally {
    await agent.close();
  }
}
