// Change detection for Vault CE and OpenBao, which have no event notifications: a socket audit
// device (TCP) streams one JSON line per audited request to this listener. Only the response
// entries of successful KV writes are used, and of those only the mount and path: Vault HMACs every
// value in an audit entry, and nothing here keeps or logs more than the path. The input is
// unauthenticated, so it is bounded (peers, connections, line size) and only ever causes reads: a
// forged line costs at most one extra Vault read of a secret some resource already syncs.
import { BlockList, createServer, isIP, type Server, type Socket } from 'node:net';

/** Operations that change a KV secret (kv-v1 write/delete, kv-v2 data/metadata/delete/destroy). */
const WRITES = new Set(['create', 'update', 'delete', 'patch']);
/** kv-v2 API prefixes under the mount; the secret's own path follows. */
const KV2_PREFIXES = ['data/', 'metadata/', 'delete/', 'undelete/', 'destroy/'];

const trimSlashes = (s: string): string => s.replace(/^\/+|\/+$/g, '');

/** `mount/path` with surrounding slashes trimmed: the key by which resources are indexed. */
export function kvSecretKey(mount: string, path: string): string {
  return `${trimSlashes(mount)}/${trimSlashes(path)}`;
}

/** A Vault namespace path without surrounding slashes; '' is the root namespace. */
export function vaultNamespaceKey(namespace: string | undefined): string {
  return trimSlashes(namespace ?? '');
}

/** A committed KV write: the Vault namespace it was made in and the secrets it may have changed. */
export interface KVChange {
  /** vaultNamespaceKey() of the request's namespace ('' on Vault CE and in the root namespace). */
  namespace: string;
  /** kvSecretKey()s, relative to the namespace. */
  keys: string[];
}

/**
 * The KV write in one audit line; undefined for anything else (requests, reads, failures, other
 * engines, malformed lines). A kv-v2 path and the kv-v1 reading of the same path are both returned:
 * audit entries do not say the KV version, and the unused candidate matches no resource (or costs
 * one read). In a namespace, `mount_point` carries the namespace's path and `path` does not (seen on
 * OpenBao 2.7: `ns1/kvv2/` and `kvv2/data/x`).
 */
export function kvChangeOf(line: string): KVChange | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (
    !isObject(entry) ||
    entry.type !== 'response' ||
    (typeof entry.error === 'string' && entry.error !== '')
  )
    return undefined;
  const req = entry.request;
  if (!isObject(req) || req.mount_type !== 'kv' || !WRITES.has(String(req.operation))) return undefined;
  const nsPath = isObject(req.namespace) && typeof req.namespace.path === 'string' ? req.namespace.path : '';
  const namespace = vaultNamespaceKey(nsPath);
  let mount = typeof req.mount_point === 'string' ? req.mount_point : '';
  if (namespace !== '' && mount.startsWith(`${namespace}/`)) mount = mount.slice(namespace.length + 1);
  const path = typeof req.path === 'string' ? req.path : '';
  if (mount === '' || !path.startsWith(mount) || path.length === mount.length) return undefined;
  const rel = path.slice(mount.length);
  const keys = [kvSecretKey(mount, rel)];
  const prefix = KV2_PREFIXES.find((p) => rel.startsWith(p) && rel.length > p.length);
  if (prefix) keys.push(kvSecretKey(mount, rel.slice(prefix.length)));
  return { namespace, keys };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface AuditStreamOptions {
  /** `host:port` to listen on. */
  host: string;
  port: number;
  /** Peers (IP addresses or CIDRs) whose connections are accepted; empty accepts any. */
  allowedPeers: readonly string[];
  /** Concurrent connections (Vault keeps one per server node); more are refused. Default 8. */
  maxConnections?: number;
  /** Longest line read; longer lines are skipped up to their newline. Default 256 KiB. */
  maxLineBytes?: number;
}

export interface AuditStreamHandlers {
  /** A KV write was committed. */
  onChange(change: KVChange): void;
  /** A peer connected: changes made while no stream was connected may have been missed. */
  onConnect(peer: string): void;
  onRefused?(peer: string, why: string): void;
}

/** Parses `a.b.c.d`, `a::b` or a CIDR of either into a BlockList; throws on anything else. */
export function peerList(peers: readonly string[]): BlockList {
  const list = new BlockList();
  for (const p of peers) {
    const [addr = '', bits] = p.split('/');
    const family = isIP(addr);
    if (family === 0) throw new RangeError(`not an IP address or CIDR: ${p}`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(addr, type);
    else {
      const n = Number(bits);
      if (!Number.isInteger(n) || n < 0 || n > (family === 4 ? 32 : 128))
        throw new RangeError(`not an IP address or CIDR: ${p}`);
      list.addSubnet(addr, n, type);
    }
  }
  return list;
}

/** Splits a byte stream into lines, skipping (never buffering) the rest of an over-long line. */
export class LineSplitter {
  readonly #max: number;
  #parts: Buffer[] = [];
  #size = 0;
  #skipping = false;

  constructor(maxLineBytes: number) {
    this.#max = maxLineBytes;
  }

  push(chunk: Buffer, onLine: (line: string) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.#skipping) {
        if (this.#size + (end - start) > this.#max) {
          this.#skipping = true;
          this.#parts = [];
          this.#size = 0;
        } else if (end > start) {
          this.#parts.push(chunk.subarray(start, end));
          this.#size += end - start;
        }
      }
      if (nl < 0) return;
      if (!this.#skipping && this.#size > 0) onLine(Buffer.concat(this.#parts).toString('utf8'));
      this.#parts = [];
      this.#size = 0;
      this.#skipping = false;
      start = nl + 1;
    }
  }
}

/** Listens until `signal` aborts (resolves) or the server fails (rejects), then closes everything. */
export async function runAuditStream(
  opts: AuditStreamOptions,
  handlers: AuditStreamHandlers,
  signal: AbortSignal,
): Promise<void> {
  const allowed = opts.allowedPeers.length > 0 ? peerList(opts.allowedPeers) : undefined;
  const maxConnections = opts.maxConnections ?? 8;
  const maxLine = opts.maxLineBytes ?? 256 * 1024;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const peer = socket.remoteAddress ?? '';
    const family = socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4';
    const refuse = (why: string): void => {
      handlers.onRefused?.(peer, why);
      socket.destroy();
    };
    if (allowed && !allowed.check(peer.replace(/^::ffff:/, ''), peer.startsWith('::ffff:') ? 'ipv4' : family))
      return refuse('peer not allowed');
    if (sockets.size >= maxConnections) return refuse('too many connections');
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // Vault only writes; a peer that never sends is kept (Vault holds the connection between
    // requests), but what it sends is never echoed nor buffered beyond one line.
    const lines = new LineSplitter(maxLine);
    socket.on('data', (chunk: Buffer) =>
      lines.push(chunk, (line) => {
        const change = kvChangeOf(line);
        if (change) handlers.onChange(change);
      }),
    );
    handlers.onConnect(peer);
  });
  server.maxConnections = maxConnections + 1; // past it the kernel-level refusal; ours is above
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Runs until the abort, or until the server fails (the caller retries).
  let failed: unknown;
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    server.once('error', (err) => {
      failed = err;
      resolve();
    });
  });
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
  if (failed !== undefined) throw failed;
}
