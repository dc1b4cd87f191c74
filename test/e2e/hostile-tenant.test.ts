// A hostile tenant against the real operator (issue 14): a template bomb, a zero refreshAfter and
// a VaultConnection whose caCertPath names a device each end in a status the tenant can read,
// while the operator stays responsive for everyone else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VaultConnections, VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultConnection } from '../../src/api/v1beta1/vaultconnection.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  adminClient,
  apply,
  condition,
  eventually,
  kvSecret,
  type Manifest,
  synced,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

describe('hostile tenant', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let metricsUrl: string;

  /** controller_runtime_reconcile_total of the VaultStaticSecret controller, over all results. */
  const vssReconciles = async (): Promise<number> => {
    const body = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
    let n = 0;
    for (const m of body.matchAll(
      /^controller_runtime_reconcile_total\{[^}]*controller="vaultstaticsecret"[^}]*\} (\d+)$/gm,
    ))
      n += Number(m[1]);
    return n;
  };
  const getVss = (name: string) => kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns);
  /** A kv-v2 VaultStaticSecret of the one secret this tenant plants (`<ns>/app`). */
  const appSecret = (name: string, spec: Record<string, unknown> = {}) =>
    kvSecret(ns, name, { path: `${ns}/app`, ...spec });

  before(async () => {
    env = await useStack();
    assert.ok(env.operator, 'the stack runs the operator');
    metricsUrl = `${env.operator.metrics}/metrics`;
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('hostile');
    await tenant(env, kube, vault, ns);
    await vault.kvPut('kvv2', `${ns}/app`, { password: 'hunter2-value' });
  });
  after(async () => {
    await vault.close();
    await kube.close();
  });

  it('refreshAfter: 0s syncs once and does not spin', async () => {
    await apply(kube, appSecret('zero', { refreshAfter: '0s', hmacSecretData: false }));
    await eventually('synced', async () => synced(await getVss('zero')));
    const before = await vssReconciles();
    await new Promise((r) => setTimeout(r, 3_000));
    // It used to requeue at once: tens of thousands of reconciles in these three seconds.
    const spent = (await vssReconciles()) - before;
    assert.ok(spent < 20, `${spent} reconciles in 3 s`);
    await kube.delete(VaultStaticSecrets, 'zero', ns);
  });

  it('a template bomb fails at the allocation limit, reported in status, and others still sync', async () => {
    await apply(
      kube,
      appSecret('bomb', {
        destination: {
          name: 'bomb',
          create: true,
          transformation: { templates: { k: { text: '{{ indent 400000000 .Secrets.password }}' } } },
        },
      }),
    );
    const failed = await eventually('limit in status', async () => {
      const o = await getVss('bomb');
      const c = condition(o, 'SecretSynced');
      return c?.status === 'False' && /limit/.test(c.message ?? '') ? c : undefined;
    });
    assert.match(
      failed.message ?? '',
      /k:1:\d+: .*execution exceeded the allocation limit \(33554432 bytes\)/,
    );
    assert.doesNotMatch(failed.message ?? '', /hunter2/);
    await apply(kube, appSecret('neighbour'));
    await eventually('a neighbour still syncs', async () => synced(await getVss('neighbour')));
    await kube.delete(VaultStaticSecrets, 'bomb', ns);
  });

  it('a caCertPath outside the CA directory is an invalid VaultConnection, not a read of /dev/zero', async () => {
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'zero', namespace: ns },
      spec: { address: env.vaultAddr, skipTLSVerify: false, caCertPath: '/dev/zero' },
    } as Manifest);
    const conn = await eventually('VaultConnection invalid', async () => {
      const c = await kube.get<VaultConnection>(VaultConnections, 'zero', ns);
      return c.status?.valid === false ? c : undefined;
    });
    assert.match(condition(conn, 'VaultClient')?.message ?? '', /caCertPath \/dev\/zero is not under \//);
  });
});
