// The effect paths of the status-only kinds against the fake-backed harness: what a check finds goes
// to status and a Warning Event (once per problem) with the reason and timing classifyFinding gives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_VERSION, SecretTransformations, VaultAuths } from '../../../src/api/resources.ts';
import type { SecretTransformation } from '../../../src/api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultConnection } from '../../../src/api/v1beta1/vaultconnection.ts';
import type { ControllerContext } from '../../../src/controllers/context.ts';
import { secretTransformationReconciler } from '../../../src/controllers/secrettransformation/reconcile.ts';
import { vaultAuthReconciler } from '../../../src/controllers/vaultauth/reconcile.ts';
import { storeOf } from '../delivery/helpers.ts';
import { harness } from './harness.ts';

const meta = (name: string) => ({ name, namespace: 'app', uid: `uid-${name}`, generation: 1 });
const reasons = (events: { type: string; reason: string }[]) => events.map((e) => `${e.type}:${e.reason}`);

describe('SecretTransformation effects', () => {
  const st = (text: string): SecretTransformation => ({
    apiVersion: API_VERSION,
    kind: 'SecretTransformation',
    metadata: meta('t'),
    spec: { templates: { out: { text } } },
  });

  it('reports a broken template once with TransformationError, waits for a change, and recovers', async () => {
    const h = harness<SecretTransformation>(SecretTransformations, (h) =>
      secretTransformationReconciler({
        ...h.ctx,
        informers: { transformations: { store: h.store } },
      } as unknown as ControllerContext),
    );
    h.apply(st('{{ .Secrets.x'));
    assert.deepEqual(await h.run('t'), { awaitChange: true });
    assert.equal(h.store.get('app', 't')?.status?.valid, false);
    assert.deepEqual(await h.run('t'), { awaitChange: true });
    assert.deepEqual(reasons(h.events), ['Warning:TransformationError'], 'one Event per problem');
    h.apply({ ...st('{{ .Secrets.x }}'), metadata: { ...meta('t'), generation: 2 } });
    assert.deepEqual(await h.run('t'), { awaitChange: true });
    assert.equal(h.store.get('app', 't')?.status?.valid, true);
    assert.deepEqual(reasons(h.events), ['Warning:TransformationError']);
  });
});

describe('VaultAuth effects', () => {
  const auth = (spec: NonNullable<VaultAuth['spec']>): VaultAuth => ({
    apiVersion: API_VERSION,
    kind: 'VaultAuth',
    metadata: meta('a'),
    spec,
  });
  const connection: VaultConnection = {
    apiVersion: API_VERSION,
    kind: 'VaultConnection',
    metadata: meta('conn'),
    spec: { address: 'http://127.0.0.1:8200', skipTLSVerify: false },
  };
  const setup = (connections: VaultConnection[]) => {
    const pruned: string[] = [];
    const h = harness<VaultAuth>(VaultAuths, (h) =>
      vaultAuthReconciler({
        ...h.ctx,
        vaultClients: {
          pruneAuth: async (uid: string) => {
            pruned.push(uid);
          },
        },
        informers: {
          auths: { store: h.store },
          authGlobals: { store: storeOf() },
          connections: { store: storeOf(...connections) },
        },
      } as unknown as ControllerContext),
    );
    return { h, pruned };
  };
  const spec = {
    method: 'kubernetes' as const,
    mount: 'kubernetes',
    vaultConnectionRef: 'conn',
    kubernetes: { role: 'r', serviceAccount: 'default' },
  };

  it("reports a missing VaultConnection with VSO's Accepted Warning and waits for a change", async () => {
    const { h, pruned } = setup([]);
    h.apply(auth(spec));
    assert.deepEqual(await h.run('a'), { awaitChange: true });
    const status = h.store.get('app', 'a')?.status;
    assert.equal(status?.valid, false);
    assert.match(status?.error ?? '', /VaultConnection app\/conn not found/);
    assert.deepEqual(reasons(h.events), ['Warning:Accepted']);
    assert.deepEqual(pruned, ['uid-a'], 'cached clients of older generations are pruned');
  });

  it('reports an incomplete login configuration, and accepts a valid one with a Normal Event', async () => {
    const { h } = setup([connection]);
    h.apply(auth({ ...spec, mount: '' }));
    assert.deepEqual(await h.run('a'), { awaitChange: true });
    assert.match(h.store.get('app', 'a')?.status?.error ?? '', /mount/);
    h.apply({ ...auth(spec), metadata: { ...meta('a'), generation: 2 } });
    assert.deepEqual(await h.run('a'), { awaitChange: true });
    assert.equal(h.store.get('app', 'a')?.status?.valid, true);
    assert.deepEqual(reasons(h.events), ['Warning:Accepted', 'Normal:Accepted']);
  });
});
