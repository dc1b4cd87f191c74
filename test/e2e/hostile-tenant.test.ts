// A hostile tenant against the real operator (issue 14): a template bomb, a zero refreshAfter, a
// VaultConnection whose caCertPath names a device or whose address is outside the operator's
// allowlist each end in a status the tenant can read, while the operator stays responsive for
// everyone else; a pod of another namespace cannot mount a CSISecrets, whatever its labels; and a
// policy that quotes the Secret it rejects gets no secret value into status or Events.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VaultConnections, VaultDynamicSecrets, VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultConnection } from '../../src/api/v1beta1/vaultconnection.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import { grpcCodeName } from '../../src/csi/client.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { type ResourceType, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import { csiSecretsManifest, makePod, startTestDriver, targetOf } from '../../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  canary,
  condition,
  ensureNamespace,
  eventsOf,
  eventually,
  kubernetesVaultAuth,
  kvSecret,
  type Manifest,
  synced,
  tenant,
  VaultAdmin,
  vds,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

describe('hostile tenant', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let metricsUrl: string;

  /** Vault reads through this file's own VaultConnection: resources of other files, reconciled in
   * parallel, use others, so the count is this tenant's alone. */
  const vaultReads = async (): Promise<number> => {
    const body = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
    const series = `vso_client_operations_total{operation="read",vault_connection="${ns}/own"} `;
    const line = body.split('\n').find((l) => l.startsWith(series));
    return line ? Number(line.slice(series.length)) : 0;
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
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'own', namespace: ns },
      spec: { address: env.vaultAddr, skipTLSVerify: false },
    } as Manifest);
    await apply(kube, kubernetesVaultAuth(env, ns, 'auth', { role: `t-${ns}`, connection: `${ns}/own` }));
    await vault.kvPut('kvv2', `${ns}/app`, { password: 'hunter2-value' });
  });
  after(async () => {
    await vault.close();
    await kube.close();
  });

  it('refreshAfter: 0s syncs once and does not spin', async () => {
    await apply(kube, appSecret('zero', { refreshAfter: '0s', hmacSecretData: false }));
    await eventually('synced', async () => synced(await getVss('zero')));
    const before = await vaultReads();
    await new Promise((r) => setTimeout(r, 3_000));
    // It used to requeue at once: tens of thousands of reconciles, each a Vault read, in these three
    // seconds.
    const spent = (await vaultReads()) - before;
    assert.ok(spent < 20, `${spent} Vault reads in 3 s`);
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

  it('a VaultConnection address outside the allowlist is refused in status and an Event, never dialled', async () => {
    // The stack allows loopback only (STACK_VAULT_ADDRESS_ALLOWLIST): an internal port scan target.
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'scan', namespace: ns },
      spec: { address: 'http://10.255.255.1:22', skipTLSVerify: false },
    } as Manifest);
    const conn = await eventually('VaultConnection refused', async () => {
      const c = await kube.get<VaultConnection>(VaultConnections, 'scan', ns);
      return c.status?.valid === false ? c : undefined;
    });
    const cond = condition(conn, 'VaultClient');
    assert.equal(cond?.reason, 'VaultAddressNotAllowed');
    assert.match(
      cond?.message ?? '',
      /http:\/\/10\.255\.255\.1:22 is not in the operator's --vault-address-allowlist/,
    );
    await eventually('a Warning Event', async () =>
      (await eventsOf(kube, ns, 'scan')).find(
        (e) => e.type === 'Warning' && e.reason === 'VaultAddressNotAllowed',
      ),
    );
  });

  it('a CSISecrets serves only its own namespace without namespacePatterns; labels never widen it', async () => {
    const other = uniqueName('hostile-other');
    await ensureNamespace(kube, other, ['app']);
    const value = canary('csi-own');
    await vault.kvPut('kvv2', `${ns}/csi`, { password: value });
    const secrets = { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/csi`, type: 'kv-v2' }] };
    await apply(
      kube,
      csiSecretsManifest(ns, 'own', {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern: 'app' },
        secrets,
      }),
    );
    await apply(
      kube,
      csiSecretsManifest(ns, 'labelled', {
        vaultAuthRef: { name: 'auth' },
        accessControl: {
          serviceAccountPattern: 'app',
          namespacePatterns: [ns],
          podLabels: { team: 'a' },
          matchPolicy: 'any',
        },
        secrets,
      }),
    );
    const dir = await mkdtemp(join(tmpdir(), 'ferry-hostile-csi-'));
    const csi = await startTestDriver(env, kube, dir);
    try {
      const intruder = await makePod(kube, {
        namespace: other,
        name: 'intruder',
        serviceAccount: 'app',
        labels: { team: 'a' },
      });
      const mine = await makePod(kube, { namespace: ns, name: 'mine', serviceAccount: 'app' });
      const codeOf = (p: Promise<unknown>) =>
        p.then(
          () => 'OK',
          (e: unknown) => grpcCodeName(e),
        );
      for (const name of ['own', 'labelled']) {
        assert.equal(
          await codeOf(csi.publish(intruder, { csiSecretsNamespace: ns, attrs: { csiSecretsName: name } })),
          'PERMISSION_DENIED',
          `a pod of ${other} mounted ${ns}/${name}`,
        );
      }
      await csi.publish(mine, { attrs: { csiSecretsName: 'own' } });
      assert.equal(await readFile(join(targetOf(dir, mine), 'static_secret_0_password'), 'utf8'), value);
      await csi.unpublish(mine);
    } finally {
      await csi.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a policy that quotes the Secret it rejects gets no value of a VaultDynamicSecret into status or Events', async () => {
    // A ValidatingAdmissionPolicy whose message quotes the data, as a tenant (or a careless policy)
    // could write: the operator's error carries it unless redacted.
    const value = canary('vds-leak');
    await vault.kvPut('kvv1', `${ns}/leak`, { password: value }, 1);
    const VAP: ResourceType = {
      group: 'admissionregistration.k8s.io',
      version: 'v1',
      kind: 'ValidatingAdmissionPolicy',
      plural: 'validatingadmissionpolicies',
      namespaced: false,
    };
    const BINDING: ResourceType = {
      ...VAP,
      kind: 'ValidatingAdmissionPolicyBinding',
      plural: 'validatingadmissionpolicybindings',
    };
    const policy = `ferry-e2e-quote-${ns}`;
    await kube.create<KubeObject>(VAP, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: policy },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['secrets'],
            },
          ],
        },
        matchConditions: [{ name: 'leaky', expression: "object.metadata.name == 'leaky'" }],
        validations: [
          { expression: 'false', messageExpression: "'password is ' + string(object.data.password)" },
        ],
      },
    } as KubeObject);
    await kube.create<KubeObject>(BINDING, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: policy },
      spec: {
        policyName: policy,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
      },
    } as KubeObject);
    try {
      // Policies take effect once the API server has loaded them: probe with a dry-run create.
      await eventually('the policy in effect', () =>
        kube
          .create<Secret>(
            Secrets,
            {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: { name: 'leaky', namespace: ns },
              data: { password: '' },
            },
            { dryRun: true },
          )
          .then(
            () => false,
            (e: unknown) => /ValidatingAdmissionPolicy/.test(String(e)),
          ),
      );
      await apply(
        kube,
        vds(ns, 'leaky', {
          vaultAuthRef: 'auth',
          mount: 'kvv1',
          path: `${ns}/leak`,
          requestHTTPMethod: 'GET',
          destination: { name: 'leaky', create: true },
        }),
      );
      await eventually('the rejection in status', async () => {
        const o = await kube.get<
          KubeObject & { status?: { conditions?: { type: string; message?: string }[] } }
        >(VaultDynamicSecrets, 'leaky', ns);
        return /denied request|ValidatingAdmissionPolicy/.test(condition(o, 'SecretSynced')?.message ?? '')
          ? o
          : undefined;
      });
      const forms = [value, Buffer.from(value).toString('base64')];
      await assertNoLeak(env, kube, ns, VaultDynamicSecrets, forms);
    } finally {
      await kube.delete(BINDING, policy).catch(() => {});
      await kube.delete(VAP, policy).catch(() => {});
      await kube.delete(VaultDynamicSecrets, 'leaky', ns).catch(() => {});
    }
  });
});
