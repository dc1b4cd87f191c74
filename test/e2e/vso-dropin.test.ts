// VSO drop-in pieces against the real API server: HCP kinds reported as not supported (status
// condition and a Warning Event, never silence), and the work of the chart's Helm hooks
// (src/command/chart-hooks.ts: server-side apply of the CRDs before an upgrade, finalizer removal
// before an uninstall).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildCrd, type CustomResourceDefinition } from '../../src/api/crd.ts';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { HCPAuths, HCPVaultSecretsApps } from '../../src/api/resources.ts';
import { HOOK_FIELD_MANAGER, removeFinalizers, upgradeCrds } from '../../src/command/chart-hooks.ts';
import { FINALIZERS } from '../../src/consts/finalizers.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { CustomResourceDefinitions, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  condition,
  decodeData,
  ensureNamespace,
  eventsOf,
  eventually,
  type Manifest,
  tenant,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

type Conditioned = KubeObject & {
  status?: {
    valid?: boolean;
    error?: string;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      observedGeneration?: number;
    }[];
  };
};

const manifest = (kind: string, ns: string, name: string, spec: object, finalizers?: string[]): Manifest =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind,
    metadata: { name, namespace: ns, ...(finalizers ? { finalizers } : {}) },
    spec,
  }) as Manifest;

describe('VSO drop-in on the real API server', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let ns: string;

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    ns = uniqueName('dropin');
    await ensureNamespace(kube, ns);
    await tenant(env, kube, new VaultAdmin(env), ns);
  });
  after(async () => {
    await kube.close();
  });

  it('numbers keep the text Vault stores (KV v1: 8080.0, beyond 2^53) in Secret values, _raw and templates', async () => {
    const vault = new VaultAdmin(env);
    // JSON.rawJSON: the request carries the number text as written. KV v1 stores it as sent
    // (json.Number); KV v2 normalises numbers to float64 on both flavours, so VSO sees 8080 there too.
    const raw = (JSON as unknown as { rawJSON(t: string): unknown }).rawJSON;
    await vault.kvPut('kvv1', `${ns}/nums`, { port: raw('8080.0'), big: raw('9007199254740993') }, 1);
    await apply(
      kube,
      vss(ns, 'nums', {
        mount: 'kvv1',
        type: 'kv-v1',
        path: `${ns}/nums`,
        destination: {
          name: 'nums',
          create: true,
          transformation: { templates: { t: { text: '{{ .Secrets.port }}/{{ .Secrets.big }}' } } },
        },
      }),
    );
    const data = await eventually('nums synced', async () => {
      const d = decodeData(
        (await kube.getIfExists<KubeObject & { data?: Record<string, string> }>(Secrets, 'nums', ns))?.data,
      );
      return d.t ? d : undefined;
    });
    assert.equal(data.t, '8080.0/9007199254740993');
    assert.equal(data.port, '8080.0');
    assert.equal(data.big, '9007199254740993');
    assert.equal(data._raw, '{"big":9007199254740993,"port":8080.0}');
  });

  it('HCPAuth and HCPVaultSecretsApp: Ready=False, reason KindNotSupported, and a Warning Event', async () => {
    await apply(
      kube,
      manifest('HCPAuth', ns, 'hcp', {
        organizationID: 'o',
        projectID: 'p',
        servicePrincipal: { secretRef: 'sp' },
      }),
    );
    await apply(
      kube,
      manifest('HCPVaultSecretsApp', ns, 'app', {
        appName: 'web',
        hcpAuthRef: 'hcp',
        destination: { name: 'web', create: true },
      }),
    );
    for (const [rt, name] of [
      [HCPAuths, 'hcp'],
      [HCPVaultSecretsApps, 'app'],
    ] as const) {
      const obj = await eventually(`${rt.kind} status`, async () => {
        const o = await kube.get<Conditioned>(rt, name, ns);
        return condition(o, 'Ready') ? o : undefined;
      });
      const ready = condition(obj, 'Ready');
      assert.equal(ready?.status, 'False');
      assert.equal(ready?.reason, 'KindNotSupported');
      assert.equal(ready?.observedGeneration, obj.metadata.generation);
      assert.match(ready?.message ?? '', new RegExp(`^${rt.kind} is not supported by Ferry`));
      await eventually(`${rt.kind} Warning Event`, async () =>
        (await eventsOf(kube, ns, name)).some((e) => e.type === 'Warning' && e.reason === 'KindNotSupported'),
      );
    }
    const hcp = await kube.get<Conditioned>(HCPAuths, 'hcp', ns);
    assert.equal(hcp.status?.valid, false);
    assert.match(hcp.status?.error ?? '', /end of life/);
    // Nothing was synced for the app.
    assert.equal(await kube.getIfExists(Secrets, 'web', ns), undefined);
  });

  it('the pre-upgrade hook server-side applies every CRD of this version', async () => {
    const names = await upgradeCrds(kube);
    assert.equal(names.length, ALL_KINDS.length);
    for (const def of ALL_KINDS) {
      const want = buildCrd(def);
      const got = await kube.get<CustomResourceDefinition & KubeObject>(
        CustomResourceDefinitions,
        want.metadata.name,
      );
      assert.ok(
        ((got.metadata.managedFields ?? []) as { manager?: string; operation?: string }[]).some(
          (f) => f.manager === HOOK_FIELD_MANAGER && f.operation === 'Apply',
        ),
        `${want.metadata.name} applied by ${HOOK_FIELD_MANAGER}`,
      );
      assert.deepEqual(
        got.spec.versions.map((v) => v.name),
        want.spec.versions.map((v) => v.name),
      );
    }
  });

  it("the pre-delete hook removes Ferry's finalizers and keeps everyone else's", async () => {
    const foreign = 'example.com/keep';
    await apply(
      kube,
      manifest(
        'HCPVaultSecretsApp',
        ns,
        'final',
        { appName: 'web', destination: { name: 'final', create: true } },
        [FINALIZERS.HCPVaultSecretsApp, foreign],
      ),
    );
    assert.equal(await removeFinalizers(kube, ns), 1);
    const o = await kube.get<KubeObject>(HCPVaultSecretsApps, 'final', ns);
    assert.deepEqual(o.metadata.finalizers, [foreign]);
    // Nothing left to do: a second run changes nothing.
    assert.equal(await removeFinalizers(kube, ns), 0);
    await kube.patch(HCPVaultSecretsApps, 'final', ns, { metadata: { finalizers: null } }, 'merge');
  });
});
