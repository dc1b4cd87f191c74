// CSISecrets status end to end: the operator (as its own ServiceAccount, under deploy/rbac.yaml)
// reports in a Ready condition whether a CSISecrets could be served, without any pod mounting it:
// a pattern the CRD accepts but RE2 does not, and a VaultAuth that appears later, which must be
// picked up without touching the CSISecrets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CSISecretsResource } from '../../src/api/resources.ts';
import type { CSISecrets } from '../../src/api/v1beta1/csisecrets.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import type { CoreEvent } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  canary,
  condition,
  eventsOf,
  eventually,
  kubernetesVaultAuth,
  type Manifest,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

const csiSecrets = (ns: string, name: string, spec: Record<string, unknown>): Manifest =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'CSISecrets',
    metadata: { name, namespace: ns },
    spec: {
      vaultAuthRef: { name: 'auth' },
      accessControl: { serviceAccountPattern: '^app$' },
      secrets: { vaultStaticSecrets: [{ mount: 'kvv2', type: 'kv-v2', path: `${ns}/db` }] },
      ...spec,
    },
  }) as Manifest;

describe('CSISecrets status', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  const canaries: string[] = [];

  /** The Ready condition once it describes the object's current generation and matches `want`. */
  const ready = (name: string, want: 'True' | 'False', namespace = ns) =>
    eventually(`CSISecrets ${namespace}/${name} Ready=${want}`, async () => {
      const o = await kube.get<CSISecrets>(CSISecretsResource, name, namespace);
      const c = condition(o, 'Ready');
      return c?.status === want && c.observedGeneration === o.metadata.generation ? { o, c } : undefined;
    });
  /** How many times the csisecrets controller has reconciled (all results). */
  const reconciles = async (): Promise<number> => {
    assert.ok(env.operator, 'the stack runs the operator');
    const body = await (await fetch(`${env.operator.metrics}/metrics`)).text();
    let n = 0;
    for (const m of body.matchAll(
      /^controller_runtime_reconcile_total\{[^}]*controller="csisecrets"[^}]*\} (\d+)$/gm,
    ))
      n += Number(m[1]);
    return n;
  };
  const warnings = async (name: string, namespace = ns): Promise<CoreEvent[]> =>
    (await eventsOf(kube, namespace, name)).filter((e) => e.type === 'Warning');

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('csistatus');
    await tenant(env, kube, vault, ns);
    // A value in Vault the CSISecrets points at: the operator never reads it, and it must not show.
    await vault.kvPut('kvv2', `${ns}/db`, { password: canary('csi-status', canaries) });
  });
  after(async () => {
    await assertNoLeak(env, kube, ns, CSISecretsResource, canaries);
    await vault.close();
    await kube.close();
  });

  it('a valid CSISecrets becomes Ready=True, with no Warning', async () => {
    await apply(kube, csiSecrets(ns, 'good', {}));
    const { c } = await ready('good', 'True');
    assert.equal(c.reason, 'Accepted');
    assert.equal(
      c.message,
      `accepted: VaultAuth ${ns}/auth, VaultConnection ${env.operatorNamespace}/default`,
    );
    assert.equal((await warnings('good')).length, 0);
  });

  it('a pattern the CRD accepts but RE2 refuses: Ready=False and one Warning Event, not repeated', async () => {
    await apply(kube, csiSecrets(ns, 'badregex', { accessControl: { serviceAccountPattern: '^app(' } }));
    const { c } = await ready('badregex', 'False');
    assert.equal(c.reason, 'InvalidConfiguration');
    assert.match(c.message, /spec\.accessControl\.serviceAccountPattern: invalid RE2 regular expression/);
    const events = await eventually('a Warning Event', async () => {
      const w = await warnings('badregex');
      return w.length > 0 ? w : undefined;
    });
    assert.equal(events.length, 1);
    assert.equal(events[0]?.reason, 'InvalidConfiguration');
    assert.equal(events[0]?.involvedObject?.kind, 'CSISecrets');
    assert.equal(events[0]?.count ?? 1, 1);

    // A change to the VaultAuth (here a label) re-checks the CSISecrets; the same problem must not
    // be reported again.
    const before = await reconciles();
    await apply(kube, kubernetesVaultAuth(env, ns, 'auth', { role: `t-${ns}`, labels: { touched: 'yes' } }));
    await eventually('a csisecrets reconcile', async () => (await reconciles()) > before);
    await new Promise((r) => setTimeout(r, 500));
    const after = await warnings('badregex');
    assert.equal(after.length, 1);
    assert.equal(after[0]?.count ?? 1, 1, 'the same problem is not reported again');

    // Fixing the spec makes it Ready.
    await apply(kube, csiSecrets(ns, 'badregex', { accessControl: { serviceAccountPattern: '^app$' } }));
    await ready('badregex', 'True');
  });

  it('a missing VaultAuth: Ready=False; creating it makes Ready=True without touching the CSISecrets', async () => {
    await apply(kube, csiSecrets(ns, 'later', { vaultAuthRef: { name: 'later-auth' } }));
    const { o, c } = await ready('later', 'False');
    assert.equal(c.reason, 'InvalidResourceRef');
    assert.equal(c.message, `VaultAuth ${ns}/later-auth not found`);
    await eventually('a Warning Event', async () =>
      (await warnings('later')).some((e) => e.reason === 'InvalidResourceRef'),
    );

    await apply(kube, kubernetesVaultAuth(env, ns, 'later-auth', { role: `t-${ns}` }));
    const done = await ready('later', 'True');
    assert.equal(done.o.metadata.generation, o.metadata.generation, 'the spec was not touched');
    assert.equal(done.c.reason, 'Accepted');
  });

  it('a missing SecretTransformation: Ready=False until it is created', async () => {
    await apply(
      kube,
      csiSecrets(ns, 'tref', {
        secrets: {
          transformation: { transformationRefs: [{ name: 'shape' }] },
          vaultStaticSecrets: [{ mount: 'kvv2', type: 'kv-v2', path: `${ns}/db` }],
        },
      }),
    );
    const { c } = await ready('tref', 'False');
    assert.equal(c.message, `SecretTransformation ${ns}/shape not found`);
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'SecretTransformation',
      metadata: { name: 'shape', namespace: ns },
      spec: { templates: { pw: { text: '{{ .Secrets.password }}' } } },
    } as Manifest);
    await ready('tref', 'True');
  });
});
