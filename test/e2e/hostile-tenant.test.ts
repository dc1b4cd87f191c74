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
import {
  CSISecretsResource,
  VaultAuths,
  VaultConnections,
  VaultDynamicSecrets,
  VaultStaticSecrets,
} from '../../src/api/resources.ts';
import type { VaultConnection } from '../../src/api/v1beta1/vaultconnection.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import { grpcCodeName } from '../../src/csi/client.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Namespaces, type ResourceType, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import { csiSecretsManifest, makePod, startTestDriver, targetOf } from '../../stack/lib/csi.ts';
import {
  adminClient,
  admissionPolicy,
  apply,
  assertNoLeak,
  canary,
  condition,
  decodeData,
  ensureNamespace,
  eventsOf,
  eventually,
  kubernetesVaultAuth,
  kvSecret,
  type Manifest,
  synced,
  tenant,
  VaultAdmin,
  vaultAuth,
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
    await tenant(env, kube, vault, ns, { connection: { name: 'own', address: env.vaultAddr } });
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
    const removePolicy = await admissionPolicy(kube, `ferry-e2e-quote-${ns}`, ns, {
      matchConstraints: {
        resourceRules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['secrets'] },
        ],
      },
      matchConditions: [{ name: 'leaky', expression: "object.metadata.name == 'leaky'" }],
      validations: [
        { expression: 'false', messageExpression: "'password is ' + string(object.data.password)" },
      ],
    });
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
      await removePolicy();
      await kube.delete(VaultDynamicSecrets, 'leaky', ns).catch(() => {});
    }
  });
});

// Tenant B against tenant A, one row per reference B may write (vso-api.md §1.3): what VSO allows is
// allowed (allowedNamespaces, the operator namespace's default VaultAuth, another namespace's
// VaultConnection or SecretTransformation), the rest is refused with a condition and a Warning Event
// that name why, and nothing B writes lands in A.
describe('hostile tenant: namespace A × B isolation matrix', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let a: string;
  let b: string;
  let value: string;
  let aSecretVersion: string | undefined;
  const defaultAuth = (allowedNamespaces?: string[]) =>
    kubernetesVaultAuth(env, env.operatorNamespace, 'default', {
      role: `x-${b}`,
      connection: `${env.operatorNamespace}/default`,
      ...(allowedNamespaces ? { allowedNamespaces } : {}),
    });

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    a = uniqueName('tenant-a');
    b = uniqueName('tenant-b');
    await tenant(env, kube, vault, a);
    await tenant(env, kube, vault, b);
    value = canary('matrix');
    await vault.kvPut('kvv2', `${b}/v`, { value });
    // A role that logs B's ServiceAccount in (VSO: the consumer's), reading B's secrets only: the
    // VaultAuths of A that let B in, and the default one, use it.
    await vault.kubernetesRole(`x-${b}`, { serviceAccount: 'app', namespace: b, policies: [`t-${b}`] });
    const viaB = (name: string, allowedNamespaces: string[]) =>
      kubernetesVaultAuth(env, a, name, { role: `x-${b}`, allowedNamespaces });
    for (const m of [
      viaB('open', [b]),
      viaB('star', ['*']),
      viaB('others', ['kube-system']),
      defaultAuth([a]),
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultConnection',
        metadata: { name: 'conn', namespace: a },
        spec: { address: env.vaultAddr, skipTLSVerify: false },
      },
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'SecretTransformation',
        metadata: { name: 'tmpl', namespace: a },
        spec: { templates: { greeting: { text: 'hello {{ .Secrets.value }}' } } },
      },
      {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultAuthGlobal',
        metadata: { name: 'glob', namespace: a },
        spec: {
          defaultAuthMethod: 'kubernetes',
          defaultMount: env.vaultKubernetesMount,
          kubernetes: { role: `x-${b}`, serviceAccount: 'app', audiences: ['vault'] },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'shared', namespace: a },
        stringData: { k: 'a' },
      },
      // B's own VaultAuths on A's VaultConnection and on A's VaultAuthGlobal.
      kubernetesVaultAuth(env, b, 'viaconn', { role: `t-${b}`, connection: `${a}/conn` }),
      vaultAuth(b, 'viaglobal', { vaultAuthGlobalRef: { name: 'glob', namespace: a } }),
    ] as Manifest[])
      await apply(kube, m);
    aSecretVersion = (await kube.get<Secret>(Secrets, 'shared', a)).metadata.resourceVersion;
  });
  after(async () => {
    await kube.delete(VaultAuths, 'default', env.operatorNamespace).catch(() => {});
    for (const n of [a, b]) await kube.delete(Namespaces, n).catch(() => {});
    await vault.close();
    await kube.close();
  });

  type Expect = 'allowed' | RegExp;
  type Obj = KubeObject & { status?: { conditions?: { type: string; status: string; message?: string }[] } };
  /** B's VaultStaticSecret reading B's `v` into Secret `<name>` through `spec`; its expected result. */
  const vssRows = (): [string, Record<string, unknown>, Expect][] => [
    [
      "A's VaultAuth without allowedNamespaces",
      { vaultAuthRef: `${a}/auth` },
      /VaultAuth \S+\/auth does not allow namespace/,
    ],
    ["A's VaultAuth with allowedNamespaces [B]", { vaultAuthRef: `${a}/open` }, 'allowed'],
    ["A's VaultAuth with allowedNamespaces ['*']", { vaultAuthRef: `${a}/star` }, 'allowed'],
    ["A's VaultAuth allowing another namespace", { vaultAuthRef: `${a}/others` }, /does not allow namespace/],
    [
      'the default VaultAuth whose allowedNamespaces leaves B out (VSO: usable from every namespace)',
      { vaultAuthRef: `${env.operatorNamespace}/default` },
      'allowed',
    ],
    ["B's VaultAuth on A's VaultConnection (VSO: no check)", { vaultAuthRef: 'viaconn' }, 'allowed'],
    [
      "B's VaultAuth on A's VaultAuthGlobal without allowedNamespaces",
      { vaultAuthRef: 'viaglobal' },
      /VaultAuthGlobal \S+\/glob does not allow namespace/,
    ],
    [
      "A's SecretTransformation (VSO: any namespace)",
      { transformation: { transformationRefs: [{ namespace: a, name: 'tmpl' }] } },
      'allowed',
    ],
    [
      "A's missing SecretTransformation",
      { transformation: { transformationRefs: [{ namespace: a, name: 'nope' }] } },
      /not found/,
    ],
  ];

  const vssOf = (name: string, spec: Record<string, unknown>): Manifest => {
    const { transformation, ...rest } = spec;
    return kvSecret(b, name, {
      path: `${b}/v`,
      destination: { name, create: true, ...(transformation ? { transformation } : {}) },
      ...rest,
    });
  };

  /** Waits for the row's result: the Secret in B, or a refusal naming why in status and an Event. */
  async function expectResult(rt: ResourceType, name: string, type: string, want: Expect): Promise<Obj> {
    const o = await eventually(
      `${rt.kind} ${b}/${name} ${want === 'allowed' ? 'allowed' : 'refused'}`,
      async () => {
        const x = await kube.get<Obj>(rt, name, b);
        const c = condition(x, type);
        if (want === 'allowed') return c?.status === 'True' ? x : undefined;
        return c?.status === 'False' && want.test(c.message ?? '') ? x : undefined;
      },
      20_000,
      300,
    ).catch(async (e: unknown) => {
      const x = await kube.getIfExists<Obj>(rt, name, b);
      throw new Error(`${String(e)}: ${JSON.stringify(x?.status?.conditions)}`);
    });
    if (want !== 'allowed')
      await eventually(`a Warning Event on ${name}`, async () =>
        (await eventsOf(kube, b, name)).find((e) => e.type === 'Warning' && want.test(e.message ?? '')),
      );
    return o;
  }

  it('every cross-namespace reference of B is allowed or refused as VSO does', async () => {
    const rows = vssRows().map(([what, spec, want], i) => ({ what, name: `row-${i}`, spec, want }));
    for (const r of rows) await apply(kube, vssOf(r.name, r.spec));
    // CSISecrets name their VaultAuth by namespace and name; trustNamespace changes whose
    // ServiceAccount logs in, never who may use the VaultAuth.
    const csiRows: [string, Record<string, unknown>, Expect][] = [
      ["A's VaultAuth", { name: 'auth', namespace: a }, /does not allow namespace/],
      [
        "A's VaultAuth with trustNamespace",
        { name: 'auth', namespace: a, trustNamespace: true },
        /does not allow namespace/,
      ],
      [
        "A's VaultAuth allowing B, trustNamespace",
        { name: 'open', namespace: a, trustNamespace: true },
        'allowed',
      ],
      ['the default VaultAuth', { name: 'default', namespace: env.operatorNamespace }, 'allowed'],
    ];
    const csi = csiRows.map(([what, ref, want], i) => ({ what, name: `csi-${i}`, ref, want }));
    for (const r of csi)
      await apply(
        kube,
        csiSecretsManifest(b, r.name, {
          vaultAuthRef: r.ref,
          accessControl: { serviceAccountPattern: 'app' },
          secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${b}/v`, type: 'kv-v2' }] },
        }),
      );

    // A Secret named as A's, with overwrite: B's own namespace only.
    await apply(
      kube,
      kvSecret(b, 'shared', {
        path: `${b}/v`,
        destination: { name: 'shared', create: true, overwrite: true },
      }),
    );
    await apply(
      kube,
      kvSecret(b, 'slash', { path: `${b}/v`, destination: { name: `${a}/shared`, create: true } }),
    );

    const failures: string[] = [];
    const check = async (what: string, f: () => Promise<unknown>) =>
      f().catch((e: unknown) => failures.push(`${what}: ${e instanceof Error ? e.message : String(e)}`));
    await Promise.all([
      ...rows.map((r) =>
        check(r.what, async () => {
          await expectResult(VaultStaticSecrets, r.name, 'SecretSynced', r.want);
          const s = await kube.getIfExists<Secret>(Secrets, r.name, b);
          if (r.want !== 'allowed') assert.equal(s, undefined, 'a refused reference wrote a Secret');
          else if (r.spec.transformation) assert.equal(decodeData(s?.data).greeting, `hello ${value}`);
          else assert.equal(decodeData(s?.data).value, value);
        }),
      ),
      ...csi.map((r) =>
        check(`CSISecrets: ${r.what}`, () => expectResult(CSISecretsResource, r.name, 'Ready', r.want)),
      ),
      check("destination named as A's Secret", async () => {
        await expectResult(VaultStaticSecrets, 'shared', 'SecretSynced', 'allowed');
        assert.equal(decodeData((await kube.get<Secret>(Secrets, 'shared', b)).data).value, value);
      }),
      check('destination naming A/shared', () =>
        expectResult(VaultStaticSecrets, 'slash', 'SecretSynced', /shared/),
      ),
    ]);
    assert.deepEqual(failures, []);

    // The default VaultAuth without allowedNamespaces: allowed as well.
    await apply(kube, defaultAuth());
    await apply(kube, vssOf('default-open', { vaultAuthRef: `${env.operatorNamespace}/default` }));
    await expectResult(VaultStaticSecrets, 'default-open', 'SecretSynced', 'allowed');

    // Nothing B did reached A's Secret.
    const shared = await kube.get<Secret>(Secrets, 'shared', a);
    assert.equal(shared.metadata.resourceVersion, aSecretVersion);
    assert.deepEqual(decodeData(shared.data), { k: 'a' });
    await assertNoLeak(env, kube, b, VaultStaticSecrets, [value]);
  });
});
