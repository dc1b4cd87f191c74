// A private Vault/OpenBao dev server for tests that must seal, stop or TLS-wrap a server without
// disturbing the shared one. Same binary as the stack's flavor.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
