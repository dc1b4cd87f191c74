// The CSI driver logs in to Vault with the pod's own kubelet-issued token (CSIDriver tokenRequests,
// src/csi/pod-tokens.ts), under deploy/csi/rbac.yaml, which grants neither TokenRequest nor Secret
// reads: the real API server says so, and the logins work anyway. A republish hands the driver a
// fresh token that a later re-login uses; what the driver cannot do fails naming the chart value
// that changes it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  type CsiTenant,
  csiSecretsManifest,
  csiTenant,
  LOGIN_AUDIENCES,
  makePod,
  outcomeOf,
  type PodRef,
  podToken,
  type TestDriver,
  targetOf,
} from '../../stack/lib/csi.ts';
import { apply, canary, eventually, kubernetesVaultAuth, type VaultAdmin } from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

describe('CSI driver logins with the pod’s kubelet-issued token', () => {
  let env: StackEnv;
  let t: CsiTenant;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let csi: TestDriver;
  let dir: string;
  let ns: string;
  let value: string;
  const published = new Set<PodRef>();

  const codeOf = outcomeOf;
  /** A CSISecrets `name` reading the tenant's secret through VaultAuth `auth`. */
  const csiSecrets = (name: string, auth: string) =>
    apply(
      kube,
      csiSecretsManifest(ns, name, {
        vaultAuthRef: { name: auth },
        accessControl: { serviceAccountPattern: 'web|worker' },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/pod`, type: 'kv-v2' }] },
      }),
    );
  const publish = (p: PodRef, csiSecretsName: string, o: Parameters<TestDriver['publish']>[1] = {}) => {
    published.add(p);
    return csi.publish(p, { ...o, attrs: { csiSecretsName } });
  };
  const file = (p: PodRef) => readFile(join(targetOf(dir, p), 'static_secret_0_v'), 'utf8');
  /** What the driver's ServiceAccount may do, as the API server's authorizer answers. */
  const driverMay = async (verb: string, resource: string, subresource = ''): Promise<boolean> => {
    const res = await kube.request<{ status?: { allowed?: boolean } }>(
      'POST',
      '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      {
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: 'system:serviceaccount:ferry-system:ferry-csi-driver',
            groups: ['system:serviceaccounts', 'system:serviceaccounts:ferry-system', 'system:authenticated'],
            resourceAttributes: { namespace: ns, verb, resource, subresource, name: 'web' },
          },
        },
      },
    );
    return res?.status?.allowed === true;
  };

  before(async () => {
    env = await useStack();
    // Without the pod watch (csi.driver.watchPods=false): nothing here needs containerState re-syncs.
    t = await csiTenant(env, uniqueName('csi-tok'), ['web', 'worker'], () => ({ watchPods: false }));
    ({ kube, vault, csi, dir, ns } = t);
    value = canary('csi-pod-token');
    await vault.kvPut('kvv2', `${ns}/pod`, { v: value });
  });

  after(async () => {
    for (const p of published) await csi?.unpublish(p).catch(() => {});
    await t?.close();
  });

  it('may neither mint tokens nor read Secrets, and logs in as the pod (not the VaultAuth’s ServiceAccount)', async () => {
    assert.equal(await driverMay('create', 'serviceaccounts', 'token'), false, 'TokenRequest');
    assert.equal(await driverMay('get', 'serviceaccounts'), false, 'ServiceAccount reads');
    assert.equal(await driverMay('get', 'secrets'), false, 'Secret reads');
    // A Vault role for ns/web only; the VaultAuth names `app`, which only a TokenRequest could act as.
    await vault.kubernetesRole(`web-${ns}`, { serviceAccount: 'web', namespace: ns, policies: [`t-${ns}`] });
    await apply(kube, kubernetesVaultAuth(env, ns, 'web-only', { role: `web-${ns}`, serviceAccount: 'app' }));
    // No audiences: the token for the API server's default audience "".
    await apply(
      kube,
      kubernetesVaultAuth(env, ns, 'default-audience', { role: `web-${ns}`, audiences: null }),
    );
    await csiSecrets('web-only', 'web-only');
    await csiSecrets('default-audience', 'default-audience');
    for (const [name, cs] of [
      ['a', 'web-only'],
      ['b', 'default-audience'],
    ] as const) {
      const p = await makePod(kube, {
        namespace: ns,
        name: `pod-${name}`,
        serviceAccount: 'web',
        csiSecretsName: cs,
      });
      await eventually(`published through ${cs}`, async () => {
        await publish(p, cs);
        return true;
      });
      assert.equal(await file(p), value);
    }
  });

  it('a VaultAuth audience kubelet issues no token for: FAILED_PRECONDITION naming the chart value', async () => {
    await apply(
      kube,
      kubernetesVaultAuth(env, ns, 'elsewhere', {
        role: `web-${ns}`,
        audiences: ['https://vault.elsewhere'],
      }),
    );
    await csiSecrets('elsewhere', 'elsewhere');
    const p = await makePod(kube, {
      namespace: ns,
      name: 'pod-c',
      serviceAccount: 'web',
      csiSecretsName: 'elsewhere',
    });
    const r = await eventually('refused for the audience', async () => {
      const r = await codeOf(publish(p, 'elsewhere'));
      return r.code === 'FAILED_PRECONDITION' ? r : undefined;
    });
    assert.match(r.message, /"https:\/\/vault\.elsewhere".*csi\.driver\.tokenAudiences/);
    assert.ok(!r.message.includes(p.token) && !r.message.includes(p.loginTokens.vault?.token ?? '-'));
  });

  it('a VaultAuth that needs a Secret: FAILED_PRECONDITION naming csi.driver.readSecrets', async () => {
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultAuth',
      metadata: { name: 'approle', namespace: ns },
      spec: {
        vaultConnectionRef: `${env.operatorNamespace}/default`,
        method: 'appRole',
        mount: 'approle',
        appRole: { roleId: 'role', secretRef: 'approle-secret-id' },
      },
    } as Parameters<typeof apply>[1]);
    await csiSecrets('approle', 'approle');
    const p = await makePod(kube, {
      namespace: ns,
      name: 'pod-d',
      serviceAccount: 'web',
      csiSecretsName: 'approle',
    });
    const r = await eventually('refused for the Secret', async () => {
      const r = await codeOf(publish(p, 'approle'));
      return r.code === 'FAILED_PRECONDITION' ? r : undefined;
    });
    assert.match(r.message, new RegExp(`Secret ${ns}/approle-secret-id.*csi\\.driver\\.readSecrets`));
  });

  it('a republish hands the driver a fresh token, which the next re-login uses', async () => {
    // Vault tokens of this role live 2 s: the session logs in again every few seconds. Its pods run
    // as `worker`, so no other test's pod (and token) shares their session.
    await vault.call('POST', `auth/${env.vaultKubernetesMount}/role/short-${ns}`, {
      bound_service_account_names: ['worker'],
      bound_service_account_namespaces: [ns],
      token_policies: [`t-${ns}`],
      token_ttl: '2s',
      token_max_ttl: '2s',
    });
    await apply(kube, kubernetesVaultAuth(env, ns, 'short', { role: `short-${ns}` }));
    await csiSecrets('short', 'short');
    // kubelet's tokens as the driver sees them: `stale` says it expired a second ago (the token
    // itself is genuine, so only the driver's bookkeeping can refuse it).
    const tokens = async (p: PodRef, expiresInMs: number): Promise<PodRef['loginTokens']> => {
      const out: PodRef['loginTokens'] = {};
      for (const aud of LOGIN_AUDIENCES) {
        const t = await podToken(kube, p, aud);
        out[aud] = { token: t.token, expirationTimestamp: new Date(Date.now() + expiresInMs).toISOString() };
      }
      return out;
    };
    const p = await makePod(kube, {
      namespace: ns,
      name: 'pod-e',
      serviceAccount: 'worker',
      csiSecretsName: 'short',
    });
    const q = await makePod(kube, {
      namespace: ns,
      name: 'pod-f',
      serviceAccount: 'worker',
      csiSecretsName: 'short',
    });
    await eventually('p published', async () => {
      await publish(p, 'short', { loginTokens: await tokens(p, 1000) });
      return true;
    });
    assert.equal(await file(p), value);
    // The Vault token has expired and every token the driver holds for ns/worker has too.
    await new Promise((r) => setTimeout(r, 4500));
    const stale = await tokens(q, -1000);
    const r = await codeOf(publish(q, 'short', { loginTokens: stale }));
    assert.equal(r.code, 'FAILED_PRECONDITION', r.message);
    assert.match(r.message, /expired; kubelet passes a fresh one at its next republish/);
    // kubelet republishes p (nothing changed, so nothing is fetched) with a fresh token.
    await publish(p, 'short', { loginTokens: await tokens(p, 600_000) });
    await eventually(
      'q published with the token p’s republish brought',
      async () => (await codeOf(publish(q, 'short', { loginTokens: stale }))).code === 'OK',
      15_000,
    );
    assert.equal(await file(q), value);
  });
});
