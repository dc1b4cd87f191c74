// A private dev server behind its own CA, reached through a VaultConnection with caCertSecretRef:
// TLS health, a sealed Vault and a stopped Vault never touch the destination, and sync resumes after
// unseal without restarting the operator.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VaultConnections, VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultConnection } from '../../src/api/v1beta1/vaultconnection.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import { type DevVault, devVaultBinary, startDevVault } from '../../stack/lib/devvault.ts';
import {
  adminClient,
  apply,
  condition,
  decodeData,
  ensureNamespace,
  eventually,
  kubernetesVaultAuth,
  kvSecret,
  type Manifest,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { operatorIncarnation, type StackEnv, uniqueName, useStack } from './harness.ts';

const API = 'secrets.hashicorp.com/v1beta1';

describe('Vault behind its own CA, sealed and stopped', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let dev: DevVault;
  let vault: VaultAdmin;
  let ns: string;

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    const bin = devVaultBinary(env.flavor);
    assert.ok(bin, `no ${env.flavor} binary`);
    dev = await startDevVault(bin, { tls: true });
    vault = new VaultAdmin(env, dev);
    await vault.setup();
    ns = uniqueName('outage');
    await ensureNamespace(kube, ns, ['app']);
    await vault.policy('app', `path "kvv2/data/${ns}/*" { capabilities = ["read"] }\n`);
    await vault.kubernetesRole('app', { serviceAccount: 'app', namespace: ns, policies: ['app'] });
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'vault-ca', namespace: ns },
      stringData: { 'ca.crt': dev.caPem },
    } as Manifest);
    for (const [name, spec] of [
      ['tls', { address: dev.addr, caCertSecretRef: 'vault-ca', skipTLSVerify: false }],
      ['no-ca', { address: dev.addr, skipTLSVerify: false }],
    ] as const) {
      await apply(kube, {
        apiVersion: API,
        kind: 'VaultConnection',
        metadata: { name, namespace: ns },
        spec,
      } as Manifest);
    }
    await apply(
      kube,
      kubernetesVaultAuth(env, ns, 'auth', {
        role: 'app',
        connection: 'tls',
        mount: 'kubernetes',
        audiences: null,
      }),
    );
  });
  after(async () => {
    dev?.stop();
    await vault?.close();
    await kube?.close();
  });

  it('reports TLS health: healthy with the CA Secret, unhealthy without a CA', async () => {
    const healthy = await eventually('tls connection healthy', async () => {
      const c = await kube.get<VaultConnection>(VaultConnections, 'tls', ns);
      return condition(c, 'Healthy')?.status === 'True' ? c : undefined;
    });
    assert.equal(healthy.status?.valid, true);
    const bad = await eventually('no-ca connection unhealthy', async () => {
      const c = await kube.get<VaultConnection>(VaultConnections, 'no-ca', ns);
      return condition(c, 'Healthy')?.status === 'False' ? c : undefined;
    });
    assert.equal(bad.status?.valid, false);
    assert.match(condition(bad, 'VaultPing')?.message ?? '', /certificate/i);
  });

  it('keeps the destination through a seal, says why, and resumes after unseal without a restart', async () => {
    await vault.kvPut('kvv2', `${ns}/app`, { v: 'one' });
    await apply(
      kube,
      kvSecret(ns, 'app', {
        refreshAfter: '1s',
      }),
    );
    const first = await eventually('first sync', async () => {
      const s = await kube.get<Secret>(Secrets, 'app', ns).catch(() => undefined);
      return s && decodeData(s.data).v === 'one' ? s : undefined;
    });
    const operatorPid = await operatorIncarnation(env);

    await vault.call('PUT', 'sys/seal');
    const failed = await eventually('sealed reported', async () => {
      const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'app', ns);
      const c = condition(o, 'SecretSynced');
      return c?.status === 'False' ? c : undefined;
    });
    assert.match(failed.message, /sealed|503/i);
    await eventually(
      'connection unhealthy while sealed',
      async () => {
        const c = await kube.get<VaultConnection>(VaultConnections, 'tls', ns);
        return condition(c, 'Healthy')?.status === 'False';
      },
      30_000,
    );
    const during = await kube.get<Secret>(Secrets, 'app', ns);
    assert.equal(
      during.metadata.resourceVersion,
      first.metadata.resourceVersion,
      'the destination is untouched while sealed',
    );

    await vault.call('PUT', 'sys/unseal', { key: dev.unsealKey });
    await vault.kvPut('kvv2', `${ns}/app`, { v: 'two' });
    // The operator backs off to at most 60 s between attempts (VSO's source backoff).
    await eventually(
      'sync resumes after unseal',
      async () => decodeData((await kube.get<Secret>(Secrets, 'app', ns)).data).v === 'two',
      75_000,
      500,
    );
    await eventually(
      'status healthy again',
      async () =>
        condition(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'app', ns), 'SecretSynced')
          ?.status === 'True',
    );
    assert.equal(await operatorIncarnation(env), operatorPid);
  });

  it('keeps the destination when Vault is gone altogether', async () => {
    const before = await kube.get<Secret>(Secrets, 'app', ns);
    dev.stop();
    const failed = await eventually('unreachable reported', async () => {
      const c = condition(await kube.get<VaultStaticSecret>(VaultStaticSecrets, 'app', ns), 'SecretSynced');
      return c?.status === 'False' ? c : undefined;
    });
    assert.ok(failed.message.length > 0);
    const after = await kube.get<Secret>(Secrets, 'app', ns);
    assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal(decodeData(after.data).v, 'two');
  });
});
