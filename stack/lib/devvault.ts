// A private Vault/OpenBao dev server for tests that must seal, stop or TLS-wrap a server without
// disturbing the shared one. Same binary as the stack's flavor.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './proc.ts';
import { type Flavor, repoRoot } from './stack.ts';

export interface DevVault {
  addr: string;
  token: string;
  dir: string;
  unsealKey: string;
  /** The dev server's own CA (with `tls`). */
  caPem?: string;
  proc: ChildProcess;
  stop(): void;
}

export function devVaultBinary(flavor: Flavor): string | undefined {
  try {
    const dir = execFileSync('bash', [join(repoRoot, 'stack/peers.sh'), 'path', flavor], {
      encoding: 'utf8',
    }).trim();
    return join(dir, flavor === 'openbao' ? 'bao' : 'vault');
  } catch {
    return undefined;
  }
}

export async function startDevVault(
  bin: string,
  opts: { tls?: boolean; port?: number } = {},
): Promise<DevVault> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'ferry-devvault-'));
  const args = [
    'server',
    '-dev',
    '-dev-root-token-id=root',
    '-dev-no-store-token',
    `-dev-listen-address=127.0.0.1:${port}`,
  ];
  if (opts.tls) args.push('-dev-tls', `-dev-tls-cert-dir=${dir}`);
  const proc = spawn(bin, args, { env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (b: Buffer): void => {
    output += b.toString();
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  const stop = (): void => {
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const addr = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const key = /Unseal Key: (\S+)/.exec(output)?.[1];
    if (key && /Root Token/.test(output)) {
      const dev: DevVault = { addr, token: 'root', dir, unsealKey: key, proc, stop };
      if (opts.tls) dev.caPem = readFileSync(join(dir, 'vault-ca.pem'), 'utf8');
      return dev;
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`dev server did not start:\n${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A private server with storage on disk: restarts keep its data, as a production server's would. */
export interface PersistentVault {
  addr: string;
  token: string;
  /** Stops the server (SIGTERM), starts it again on the same storage and unseals it. */
  restart(): Promise<void>;
  stop(): void;
}

/**
 * Starts a non-dev server (raft storage in a temporary directory, one unseal key), initialises and
 * unseals it. `auditStreamPort`: OpenBao gets a `file` device and the socket device for the
 * operator's listener in its configuration (created at each unseal); on Vault the caller enables
 * them through the API, and they persist in storage.
 */
export async function startPersistentVault(
  flavor: Flavor,
  bin: string,
  opts: { auditStreamPort?: number } = {},
): Promise<PersistentVault> {
  const [port, cluster] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'ferry-vault-'));
  const addr = `http://127.0.0.1:${port}`;
  const audit =
    flavor === 'openbao' && opts.auditStreamPort !== undefined
      ? `audit "file" "always" {\n  options { file_path = "discard" }\n}\n` +
        `audit "socket" "ferry" {\n  options {\n    address = "127.0.0.1:${opts.auditStreamPort}"\n` +
        `    socket_type = "tcp"\n    write_timeout = "1s"\n  }\n}\n`
      : '';
  const config = join(dir, 'server.hcl');
  writeFileSync(
    config,
    `storage "raft" {\n  path = "${dir}/data"\n  node_id = "n1"\n}\n` +
      `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}\n` +
      `api_addr = "${addr}"\ncluster_addr = "http://127.0.0.1:${cluster}"\n` +
      (flavor === 'vault' ? 'disable_mlock = true\n' : '') +
      audit,
  );
  mkdirSync(join(dir, 'data'));
  let proc: ChildProcess | undefined;
  const call = async (method: string, path: string, body?: unknown, token?: string): Promise<Response> =>
    fetch(`${addr}/v1/${path}`, {
      method,
      headers: token ? { 'x-vault-token': token } : {},
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const until = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!(await ok().catch(() => false))) {
      if (proc?.exitCode !== null || Date.now() > deadline) {
        const log = readFileSync(join(dir, 'server.log'), 'utf8');
        throw new Error(`${flavor}: ${what} failed:\n${log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const launch = async (): Promise<void> => {
    const fd = openSync(join(dir, 'server.log'), 'a');
    proc = spawn(bin, ['server', `-config=${config}`], {
      env: { ...process.env, HOME: dir },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    await until('start', async () => (await call('GET', 'sys/seal-status')).ok);
  };
  await launch();
  const init = (await (await call('PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 })).json()) as {
    keys_base64: string[];
    root_token: string;
  };
  const key = init.keys_base64[0] ?? '';
  const token = init.root_token;
  const unseal = async (): Promise<void> => {
    await call('PUT', 'sys/unseal', { key });
    // sys/health answers 200 once the node is active (raft elects its single node first).
    await until('unseal', async () => (await call('GET', 'sys/health')).status === 200);
  };
  await unseal();
  const stopProc = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  };
  return {
    addr,
    token,
    async restart() {
      await stopProc();
      await launch();
      await unseal();
    },
    stop() {
      proc?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
