// The generated CRDs against the real kube-apiserver: every-field manifests are accepted and keep
// every field (nothing pruned), server-side defaults appear, printer columns render, and invalid
// manifests are refused with a 422 that names the offending field.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildCrd } from '../../src/api/crd.ts';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { API_VERSION, VaultStaticSecrets } from '../../src/api/resources.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { loadKubeConnection } from '../../src/k8s/config.ts';
import { isK8sApiError } from '../../src/k8s/errors.ts';
import { CustomResourceDefinitions, Namespaces, type ResourceType } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { eventually } from '../../stack/lib/fixtures.ts';
import { INVALID_CASES, invalidManifest, loadFixture, type Manifest } from '../fixtures/api/fixtures.ts';
import { uniqueName, useStack } from './harness.ts';

const env = await useStack();
const client = new KubeClient(loadKubeConnection({ kubeconfig: env.kubeconfig }), {
  userAgent: 'ferry-e2e-api',
});
const namespace = uniqueName('api');

type Spec = Record<string, unknown>;
type Crd = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };

function resourceOf(kind: string): ResourceType {
  const def = ALL_KINDS.find((k) => k.resource.kind === kind);
  assert.ok(def, kind);
  return def.resource;
}

async function waitEstablished(name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const crd = await client.get<Crd>(CustomResourceDefinitions, name);
    if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > deadline) throw new Error(`CRD ${name} not established after 30s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function create(kind: string, name: string, spec: Spec): Promise<Manifest> {
  const obj: Manifest = { apiVersion: API_VERSION, kind, metadata: { name, namespace }, spec };
  return client.create<Manifest>(resourceOf(kind), obj);
}

/** Every leaf of `want` is present and equal in `got`: the server pruned nothing we sent. */
function assertContains(got: unknown, want: unknown, path: string): void {
  if (typeof want !== 'object' || want === null) {
    assert.deepEqual(got, want, path);
    return;
  }
  assert.equal(typeof got, 'object', path);
  for (const [k, v] of Object.entries(want)) {
    assertContains(
      (got as Record<string, unknown>)[k],
      v,
      Array.isArray(want) ? `${path}[${k}]` : `${path}.${k}`,
    );
  }
}

before(async () => {
  // Server-side apply, so the test is idempotent on a stack that installed older CRDs.
  for (const def of ALL_KINDS) {
    const crd = buildCrd(def);
    await client.patch(CustomResourceDefinitions, crd.metadata.name, undefined, crd, 'apply', {
      fieldManager: 'ferry-crdgen',
      force: true,
    });
  }
  for (const def of ALL_KINDS) await waitEstablished(buildCrd(def).metadata.name);
  await client.create(Namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
});

after(async () => {
  await client.delete(Namespaces, namespace).catch(() => undefined);
  await client.close();
});

describe('every-field manifests are accepted unchanged', () => {
  for (const def of ALL_KINDS) {
    const kind = def.resource.kind;
    for (const doc of loadFixture(kind)) {
      it(`${kind}/${doc.metadata.name}`, async () => {
        const created = await create(kind, doc.metadata.name ?? 'x', doc.spec);
        assertContains(created.spec, doc.spec, 'spec');
      });
    }
  }
});

describe('server-side defaults', () => {
  const dest = { name: 'out' };
  const cases: [string, Spec, (spec: Spec) => void][] = [
    ['VaultConnection', { address: 'http://vault:8200' }, (s) => assert.equal(s.skipTLSVerify, false)],
    [
      'VaultDynamicSecret',
      { mount: 'db', path: 'creds/app', destination: dest },
      (s) => {
        assert.equal(s.renewalPercent, 67);
        assert.deepEqual(s.destination, { name: 'out', create: false, overwrite: false });
      },
    ],
    [
      'VaultStaticSecret',
      { mount: 'kv', path: 'app', type: 'kv-v2', destination: dest },
      (s) => assert.equal(s.hmacSecretData, true),
    ],
    [
      'VaultAuth',
      { method: 'kubernetes', mount: 'kubernetes', kubernetes: { role: 'r', serviceAccount: 'sa' } },
      (s) => assert.equal((s.kubernetes as Spec).tokenExpirationSeconds, 600),
    ],
    ['HCPAuth', { organizationID: 'o', projectID: 'p' }, (s) => assert.equal(s.method, 'servicePrincipal')],
    [
      'HCPVaultSecretsApp',
      { appName: 'web', destination: dest, syncConfig: { dynamic: {} } },
      (s) => {
        assert.equal(s.refreshAfter, '600s');
        assert.deepEqual(s.syncConfig, { dynamic: { renewalPercent: 67 } });
      },
    ],
    [
      'CSISecrets',
      { accessControl: { serviceAccountPattern: '^app$' }, secrets: {} },
      (s) => assert.equal((s.accessControl as Spec).matchPolicy, 'all'),
    ],
  ];
  for (const [kind, spec, check] of cases) {
    it(kind, async () => {
      const created = await create(kind, `defaults-${kind.toLowerCase()}`, spec);
      check(created.spec);
    });
  }
});

describe('status subresource and printer columns', () => {
  it('VaultStaticSecret shows Synced/Healthy/Ready from status.conditions', async () => {
    // The operator reconciles this object too (its default VaultAuth does not exist, so it reports
    // a failure): read the columns once its status has settled and compare them with the conditions.
    const created = await create('VaultStaticSecret', 'columns', {
      mount: 'kv',
      path: 'app',
      type: 'kv-v2',
      destination: { name: 'out' },
    });
    type WithStatus = Manifest & { status?: { conditions?: { type: string; status: string }[] } };
    const settled = await eventually('operator status', async () => {
      const o = await client.get<WithStatus>(VaultStaticSecrets, 'columns', namespace);
      return (o.status?.conditions?.length ?? 0) >= 3 ? o : undefined;
    });
    assert.deepEqual(settled.spec, created.spec, 'a status write must not touch spec');
    const statusOf = (type: string) => settled.status?.conditions?.find((c) => c.type === type)?.status;
    const table = await client.request<{
      columnDefinitions: { name: string }[];
      rows: { cells: unknown[] }[];
    }>('GET', `/apis/${API_VERSION}/namespaces/${namespace}/vaultstaticsecrets/columns`, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    assert.deepEqual(
      table.columnDefinitions.map((c) => c.name),
      ['Name', 'Synced', 'Healthy', 'Ready', 'Age'],
    );
    assert.deepEqual(table.rows[0]?.cells.slice(0, 4), [
      'columns',
      statusOf('SecretSynced'),
      statusOf('Healthy'),
      statusOf('Ready'),
    ]);
  });

  it('status fields are validated too (condition status must be True/False/Unknown)', async () => {
    await create('VaultStaticSecret', 'bad-status', {
      mount: 'kv',
      path: 'app',
      type: 'kv-v2',
      destination: { name: 'out' },
    });
    // A merge patch carries no resourceVersion, so the operator's own status writes cannot race it.
    const bad = {
      status: {
        lastGeneration: 1,
        conditions: [
          {
            type: 'Ready',
            status: 'Maybe',
            reason: 'Test',
            message: '',
            lastTransitionTime: '2025-01-01T00:00:00Z',
          },
        ],
      },
    };
    await assert.rejects(
      client.patch(VaultStaticSecrets, 'bad-status', namespace, bad, 'merge', { subresource: 'status' }),
      (err) => {
        assert.ok(isK8sApiError(err) && err.status === 422, String(err));
        assert.match(err.message, /status\.conditions\[0\]\.status/);
        return true;
      },
    );
  });
});

describe('invalid manifests are refused with 422 naming the field', () => {
  for (const [i, c] of INVALID_CASES.entries()) {
    it(c.name, async () => {
      const manifest = invalidManifest(c);
      manifest.metadata = { name: `invalid-${i}`, namespace };
      await assert.rejects(client.create(resourceOf(c.kind), manifest), (err) => {
        assert.ok(isK8sApiError(err), String(err));
        assert.equal(err.status, 422, err.message);
        assert.ok(err.message.includes(c.field), `expected "${c.field}" in: ${err.message}`);
        return true;
      });
    });
  }
});
