// VaultAuth method aws, end to end against Vault's aws auth method. AWS itself cannot be reached from
// here, so STS and IAM are moto's server mode (PyPI `moto[server]`, `moto_server` on PATH or
// FERRY_MOTO_SERVER), listening on 127.0.0.1 only: Vault's `sts_endpoint` points at it, and so does the
// VaultAuth's `stsEndpoint` for IRSA's AssumeRoleWithWebIdentity. moto does not check signatures or
// web identity tokens, so this proves the wiring (the login fields Vault replays, the credential
// sources, the server-id header, the role binding by caller ARN); the SigV4 signature itself is checked
// against AWS's published test vector in test/unit/vault/aws-auth.test.ts.
// Needs the `vault` flavor: OpenBao ships without the aws auth plugin.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  canary,
  condition,
  eventually,
  type Manifest,
  methodVaultAuth,
  syncsVia,
  tenant,
  VaultAdmin,
  vssVia,
} from '../../stack/lib/fixtures.ts';
import { freePort } from '../../stack/lib/proc.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

const ACCOUNT = '123456789012'; // moto's account
const env0 = await useStack();
const motoBin = ((): string | undefined => {
  const explicit = process.env.FERRY_MOTO_SERVER;
  if (explicit) return explicit;
  try {
    return execFileSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();
const skip =
  env0.flavor !== 'vault'
    ? 'needs the vault flavor (OpenBao has no aws auth plugin)'
    : motoBin
      ? false
      : "needs moto's server (pip install 'moto[server]')";

describe('VaultAuth method aws (STS emulated by moto on loopback)', { skip }, () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let moto: ChildProcess | undefined;
  let motoUrl: string;
  let mount: string;
  const credentials: string[] = [];

  before(async () => {
    env = env0;
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('aws');
    await tenant(env, kube, vault, ns);
    const port = await freePort();
    moto = spawn(motoBin ?? 'moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    motoUrl = `http://127.0.0.1:${port}`;
    await eventually('moto to listen', async () => (await fetch(`${motoUrl}/moto-api/`)).ok, 30_000);
    mount = `aws-${ns}`;
    await vault.call('POST', `sys/auth/${mount}`, { type: 'aws' });
    await vault.call('POST', `auth/${mount}/config/client`, {
      sts_endpoint: motoUrl,
      sts_region: 'us-east-1',
      iam_endpoint: motoUrl,
      // Vault's own calls (none with resolve_aws_unique_ids=false); moto accepts any key.
      access_key: 'vault',
      secret_key: 'vault',
      iam_server_id_header_value: 'ferry-e2e',
    });
  });
  after(async () => {
    if (kube) await assertNoLeak(env, kube, ns, VaultStaticSecrets, credentials, 'an AWS credential');
    moto?.kill('SIGTERM');
    await vault?.call('DELETE', `sys/auth/${mount}`).catch(() => {});
    await vault?.close();
    await kube?.close();
  });

  const awsRole = (name: string, arn: string) =>
    vault.call('POST', `auth/${mount}/role/${name}`, {
      auth_type: 'iam',
      bound_iam_principal_arn: [arn],
      resolve_aws_unique_ids: false,
      token_policies: [`t-${ns}`],
      token_period: '1h',
    });

  const syncsWith = (auth: string): Promise<void> => syncsVia(kube, vault, ns, auth);

  it('logs in with static credentials from a Secret (secretRef) and the server-id header', async () => {
    // moto answers GetCallerIdentity for a key it does not know as its default user.
    await awsRole('static', `arn:aws:iam::${ACCOUNT}:user/moto`);
    const secretKey = canary('aws-secret-key', credentials);
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'aws-creds', namespace: ns },
      stringData: { access_key_id: 'AKIAFERRYE2E', secret_access_key: secretKey },
    } as Manifest);
    await apply(
      kube,
      methodVaultAuth(env, ns, 'aws-secret', 'aws', mount, {
        role: 'static',
        region: 'us-east-1',
        headerValue: 'ferry-e2e',
        secretRef: 'aws-creds',
      }),
    );
    await syncsWith('aws-secret');
  });

  it('logs in as the IRSA role of an annotated ServiceAccount (AssumeRoleWithWebIdentity)', async () => {
    const role = `ferry-${ns}`;
    await awsRole('irsa', `arn:aws:iam::${ACCOUNT}:role/${role}`);
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        name: 'irsa',
        namespace: ns,
        annotations: {
          'eks.amazonaws.com/role-arn': `arn:aws:iam::${ACCOUNT}:role/${role}`,
          'eks.amazonaws.com/token-expiration': '3600',
        },
      },
    } as Manifest);
    await apply(
      kube,
      methodVaultAuth(env, ns, 'aws-irsa', 'aws', mount, {
        role: 'irsa',
        headerValue: 'ferry-e2e',
        irsaServiceAccount: 'irsa',
        stsEndpoint: motoUrl,
      }),
    );
    await syncsWith('aws-irsa');
  });

  it('is refused by a role bound to another principal', async () => {
    await awsRole('other', `arn:aws:iam::${ACCOUNT}:role/someone-else`);
    await apply(
      kube,
      methodVaultAuth(env, ns, 'aws-other', 'aws', mount, {
        role: 'other',
        headerValue: 'ferry-e2e',
        secretRef: 'aws-creds',
      }),
    );
    await apply(kube, vssVia(ns, 'aws-other'));
    await eventually('the login to be refused', async () => {
      const o = await kube.getIfExists<VaultStaticSecret>(VaultStaticSecrets, 'aws-other', ns);
      const c = condition(o, 'SecretSynced');
      return c?.status === 'False' && /auth\/aws-.*\/login/.test(c.message ?? '') ? c : undefined;
    });
    assert.equal(await kube.getIfExists<Secret>(Secrets, 'aws-other', ns), undefined);
  });
});
