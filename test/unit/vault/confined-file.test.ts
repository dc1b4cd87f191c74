// VaultConnection.caCertPath (issue 14): confined to the configured directory, regular files only,
// with a size cap; every refusal is an INVALID_CONFIG error for the resource's status.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { VaultConnection } from '../../../src/api/v1beta1/vaultconnection.ts';
import { connectionOptions } from '../../../src/delivery/vault-access.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { readCaCertFile, setCaCertDir } from '../../../src/vault/confined-file.ts';
import { UNRELATED_CA_PEM } from './fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'ferry-ca-'));
const dir = join(root, 'ca');
mkdirSync(dir);
writeFileSync(join(dir, 'ca.crt'), UNRELATED_CA_PEM);
// A mounted ConfigMap: the key is a symlink through ..data to a timestamped directory.
mkdirSync(join(dir, '..2026_12_04'));
writeFileSync(join(dir, '..2026_12_04', 'bundle.pem'), UNRELATED_CA_PEM);
symlinkSync('..2026_12_04', join(dir, '..data'));
symlinkSync('..data/bundle.pem', join(dir, 'bundle.pem'));
writeFileSync(join(root, 'outside.pem'), UNRELATED_CA_PEM);
symlinkSync('/dev/zero', join(dir, 'zero'));
symlinkSync(join(root, 'outside.pem'), join(dir, 'escape.pem'));
execFileSync('mkfifo', [join(dir, 'fifo')]);
writeFileSync(join(dir, 'big.pem'), Buffer.alloc(2048, 0x41));
after(() => rmSync(root, { recursive: true, force: true }));

async function refusal(path: string, d = dir, max?: number): Promise<string> {
  try {
    await readCaCertFile(path, d, max);
  } catch (e) {
    assert.ok(isFerryError(e), String(e));
    assert.equal(e.code, CODES.INVALID_CONFIG);
    return e.message;
  }
  assert.fail(`${path} was read`);
}

describe('caCertPath', () => {
  it('reads a PEM file in the directory, also through a mounted ConfigMap symlink', async () => {
    assert.equal(await readCaCertFile(join(dir, 'ca.crt'), dir), UNRELATED_CA_PEM);
    assert.equal(await readCaCertFile(join(dir, 'bundle.pem'), dir), UNRELATED_CA_PEM);
  });

  it('refuses paths outside the directory without touching them', async () => {
    assert.match(await refusal('/dev/zero'), /caCertPath \/dev\/zero is not under /);
    assert.match(await refusal('/var/run/secrets/kubernetes.io/serviceaccount/token'), /is not under/);
    assert.match(await refusal(join(root, 'outside.pem')), /is not under/);
    assert.match(await refusal(`${dir}/../outside.pem`), /is not under/);
    assert.match(await refusal(dir), /is not under/);
  });

  it('refuses links that leave the directory', async () => {
    assert.match(await refusal(join(dir, 'zero')), /resolves outside/);
    assert.match(await refusal(join(dir, 'escape.pem')), /resolves outside/);
  });

  it('refuses devices, FIFOs (without blocking) and missing files', async () => {
    assert.match(await refusal('/dev/zero', '/dev'), /is not a regular file/);
    assert.match(await refusal(join(dir, 'fifo')), /is not a regular file/);
    assert.match(await refusal(join(dir, 'nope.pem')), /cannot be read: ENOENT/);
  });

  it('refuses files beyond the size cap', async () => {
    assert.match(await refusal(join(dir, 'big.pem'), dir, 1024), /is larger than 1024 bytes/);
  });

  it('reaches the VaultConnection as an invalid configuration', async () => {
    const conn = (caCertPath: string): VaultConnection => ({
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { namespace: 'tenant', name: 'hostile' },
      spec: { address: 'https://vault:8200', skipTLSVerify: false, caCertPath },
    });
    setCaCertDir(dir);
    const kube = {} as KubeClient;
    const opts = await connectionOptions(conn(join(dir, 'ca.crt')), kube, undefined);
    assert.equal(opts.caCertPem, UNRELATED_CA_PEM);
    await assert.rejects(
      connectionOptions(conn('/dev/zero'), kube, undefined),
      (e: unknown) => isFerryError(e) && e.code === CODES.INVALID_CONFIG && /not under/.test(e.message),
    );
  });
});
