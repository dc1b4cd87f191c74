// CSISecrets status: the decision (spec patterns, VaultAuth → VaultAuthGlobal → VaultConnection,
// SecretTransformation references), the status and Event a verdict produces, and a reconciler run
// against in-process fakes (one status write and one Event per change, none in steady state).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CSISecrets, CSISecretsStatus, VaultAuthRef } from '../../../src/api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../../../src/api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../../src/api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../../../src/api/v1beta1/vaultconnection.ts';
import type { ControllerContext } from '../../../src/controllers/context.ts';
import {
  type CSISecretsRefs,
  type CSISecretsVerdict,
  checkCSISecrets,
  csiSecretsReconciler,
  csiSecretsStatus,
  csiTransformationRefKeys,
} from '../../../src/controllers/csisecrets/reconcile.ts';
import { classifyFinding } from '../../../src/controllers/outcome.ts';
import { csiSecretsConsumer } from '../../../src/delivery/vault-access.ts';
import type { KubeObject } from '../../../src/k8s/types.ts';
import { createStore, type Store } from '../../../src/runtime/store.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

const OP = 'ferry-system';
const API = 'secrets.hashicorp.com/v1beta1';

function storeOf<T extends KubeObject>(...items: T[]): Store<T> & { put(o: T): void; del(o: T): void } {
  const { store, writer } = createStore<T>();
  writer.apply({ type: 'init' });
  for (const object of items) writer.apply({ type: 'initApply', object });
  writer.apply({ type: 'initDone' });
  return Object.assign(store, {
    put: (object: T) => writer.apply({ type: 'apply', object }),
    del: (object: T) => writer.apply({ type: 'delete', object }),
  });
}

const meta = (namespace: string, name: string) => ({ namespace, name, uid: `${namespace}-${name}` });
const connection = (namespace: string, name: string, address = 'https://vault:8200'): VaultConnection => ({
  apiVersion: API,
  kind: 'VaultConnection',
  metadata: meta(namespace, name),
  spec: { address, skipTLSVerify: false },
});
const vaultAuth = (namespace: string, name: string, spec: Partial<NonNullable<VaultAuth['spec']>> = {}) =>
  ({
    apiVersion: API,
    kind: 'VaultAuth',
    metadata: meta(namespace, name),
    spec: {
      vaultConnectionRef: `${OP}/default`,
      method: 'kubernetes',
      mount: 'kubernetes',
      kubernetes: { role: 'r', serviceAccount: 'app' },
      ...spec,
    },
  }) as VaultAuth;
const transformation = (namespace: string, name: string, valid?: boolean): SecretTransformation => ({
  apiVersion: API,
  kind: 'SecretTransformation',
  metadata: meta(namespace, name),
  spec: { templates: { k: { text: '{{ .Secrets.a }}' } } },
  ...(valid === undefined ? {} : { status: { valid, error: valid ? '' : 'bad template' } }),
});
const csi = (spec: Partial<NonNullable<CSISecrets['spec']>> = {}, namespace = 'app'): CSISecrets => ({
  apiVersion: API,
  kind: 'CSISecrets',
  metadata: { ...meta(namespace, 'c'), generation: 1 },
  spec: {
    vaultAuthRef: { name: 'auth' },
    accessControl: { serviceAccountPattern: '^app$' },
    secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: 'p', type: 'kv-v2' }] },
    ...spec,
  },
});

function refs(o: Partial<Record<'auths' | 'globals' | 'conns' | 'transforms', KubeObject[]>> = {}) {
  return {
    operatorNamespace: OP,
    allowDefaultGlobals: true,
    auths: storeOf(...((o.auths ?? [vaultAuth('app', 'auth')]) as VaultAuth[])),
    authGlobals: storeOf(...((o.globals ?? []) as VaultAuthGlobal[])),
    connections: storeOf(...((o.conns ?? [connection(OP, 'default')]) as VaultConnection[])),
    transformations: storeOf(...((o.transforms ?? []) as SecretTransformation[])),
  } satisfies CSISecretsRefs;
}

function notReady(v: CSISecretsVerdict, reason: string, message: RegExp): void {
  assert.equal(v.ready, false, `expected not ready, got ${JSON.stringify(v)}`);
  if (v.ready) return;
  assert.equal(classifyFinding('CSISecrets', v.finding).reason, reason);
  assert.match(v.message, message);
}

describe('checkCSISecrets', () => {
  it('accepts a valid CSISecrets and names what it resolved', () => {
    const v = checkCSISecrets(csi(), refs());
    assert.deepEqual(v, {
      ready: true,
      message: `accepted: VaultAuth app/auth, VaultConnection ${OP}/default`,
    });
  });

  it('refuses a pattern RE2 cannot compile, wherever it is, naming the field', () => {
    notReady(
      checkCSISecrets(csi({ accessControl: { serviceAccountPattern: '(' } }), refs()),
      'InvalidConfiguration',
      /^invalid CSISecrets: spec\.accessControl\.serviceAccountPattern: invalid RE2/,
    );
    notReady(
      checkCSISecrets(
        csi({ accessControl: { serviceAccountPattern: '.*', namespacePatterns: ['ok', '[z-a]'] } }),
        refs(),
      ),
      'InvalidConfiguration',
      /spec\.accessControl\.namespacePatterns\[1\]/,
    );
    notReady(
      checkCSISecrets(csi({ syncConfig: { containerState: { imagePattern: '*x' } } }), refs()),
      'InvalidConfiguration',
      /spec\.syncConfig\.containerState\.imagePattern/,
    );
    notReady(
      checkCSISecrets(
        csi({
          secrets: {
            vaultStaticSecrets: [
              { mount: 'm', path: 'p', type: 'kv-v2', transformation: { excludes: ['('] } },
            ],
          },
        }),
        refs(),
      ),
      'InvalidConfiguration',
      /spec\.secrets\.vaultStaticSecrets\[0\]\.transformation\.excludes\[0\]/,
    );
  });

  it('spec problems come before reference problems', () => {
    notReady(
      checkCSISecrets(csi({ accessControl: { serviceAccountPattern: '(' } }), refs({ auths: [] })),
      'InvalidConfiguration',
      /serviceAccountPattern/,
    );
  });

  it('reports a missing VaultAuth, named or the default one', () => {
    notReady(
      checkCSISecrets(csi(), refs({ auths: [] })),
      'InvalidResourceRef',
      /^VaultAuth app\/auth not found$/,
    );
    const noRef = csi();
    delete noRef.spec?.vaultAuthRef;
    notReady(
      checkCSISecrets(noRef, refs()),
      'InvalidResourceRef',
      new RegExp(`^VaultAuth ${OP}/default not found$`),
    );
    const ok = checkCSISecrets(
      noRef,
      refs({ auths: [vaultAuth(OP, 'default', { vaultConnectionRef: '' })] }),
    );
    assert.equal(ok.ready, true, JSON.stringify(ok));
  });

  it('resolves vaultAuthRef as the driver does', () => {
    const spec = (vaultAuthRef?: VaultAuthRef) => ({
      accessControl: { serviceAccountPattern: 'x' },
      secrets: {},
      ...(vaultAuthRef ? { vaultAuthRef } : {}),
    });
    assert.deepEqual(csiSecretsConsumer('app', spec()), {
      namespace: 'app',
      vaultAuthRef: undefined,
      vaultNamespace: undefined,
    });
    assert.equal(csiSecretsConsumer('app', spec({ name: 'a' })).vaultAuthRef, 'a');
    const shared = csiSecretsConsumer('app', spec({ name: 'a', namespace: 'shared' }));
    assert.equal(shared.vaultAuthRef, 'shared/a');
    assert.equal(shared.providerNamespace, undefined, 'providers in the CSISecrets namespace');
    const trusted = spec({ name: 'a', namespace: 'shared', trustNamespace: true });
    assert.equal(csiSecretsConsumer('app', trusted).providerNamespace, 'shared');
    assert.equal(
      csiSecretsConsumer('app', spec({ name: 'a', trustNamespace: true })).providerNamespace,
      undefined,
      'trustNamespace without a namespace changes nothing',
    );
    notReady(
      checkCSISecrets(csi({ vaultAuthRef: { name: '', namespace: 'shared' } }), refs()),
      'InvalidResourceRef',
      /^spec\.vaultAuthRef: invalid reference/,
    );
  });

  it('enforces the VaultAuth allowedNamespaces (the default VaultAuth serves everyone)', () => {
    const shared = vaultAuth('shared', 'auth');
    const ref = { vaultAuthRef: { name: 'auth', namespace: 'shared' } };
    notReady(
      checkCSISecrets(csi(ref), refs({ auths: [shared] })),
      'InvalidResourceRef',
      /^VaultAuth shared\/auth does not allow namespace app$/,
    );
    const open = vaultAuth('shared', 'auth', { allowedNamespaces: ['app'] });
    assert.equal(checkCSISecrets(csi(ref), refs({ auths: [open] })).ready, true);
    const def = vaultAuth(OP, 'default');
    assert.equal(
      checkCSISecrets(csi({ vaultAuthRef: { name: 'default', namespace: OP } }), refs({ auths: [def] }))
        .ready,
      true,
    );
  });

  it('reports a VaultAuth that cannot be used: incomplete, or its VaultAuthGlobal missing', () => {
    notReady(
      checkCSISecrets(csi(), refs({ auths: [vaultAuth('app', 'auth', { kubernetes: { role: 'r' } })] })),
      'InvalidResourceRef',
      /^VaultAuth app\/auth cannot be used: invalid VaultAuth: spec\.kubernetes\.serviceAccount: is required$/,
    );
    const viaGlobal = vaultAuth('app', 'auth', { vaultAuthGlobalRef: { name: 'g' } });
    notReady(
      checkCSISecrets(csi(), refs({ auths: [viaGlobal] })),
      'InvalidResourceRef',
      /VaultAuthGlobal app\/g not found/,
    );
    const g: VaultAuthGlobal = {
      apiVersion: API,
      kind: 'VaultAuthGlobal',
      metadata: meta('app', 'g'),
      spec: {},
    };
    assert.equal(checkCSISecrets(csi(), refs({ auths: [viaGlobal], globals: [g] })).ready, true);
  });

  it('reports a missing or invalid VaultConnection', () => {
    notReady(
      checkCSISecrets(csi(), refs({ conns: [] })),
      'InvalidResourceRef',
      new RegExp(`^VaultConnection ${OP}/default not found$`),
    );
    notReady(
      checkCSISecrets(csi(), refs({ conns: [connection(OP, 'default', 'ftp://vault')] })),
      'InvalidResourceRef',
      /is invalid: spec\.address: scheme must be http or https/,
    );
  });

  it('reports every missing or invalid SecretTransformation, from any transformation in spec.secrets', () => {
    const t = (name: string, namespace?: string) => ({
      transformationRefs: [{ name, ...(namespace ? { namespace } : {}) }],
    });
    const obj = csi({
      secrets: {
        transformation: t('all'),
        vaultStaticSecrets: [{ mount: 'm', path: 'p', type: 'kv-v2', transformation: t('own', 'lib') }],
        vaultAppRoleSecretIDs: [{ mount: 'approle', role: 'r', transformation: t('all') }],
      },
    });
    assert.deepEqual(csiTransformationRefKeys(obj), ['app/all', 'lib/own']);
    const leased = csi({
      secrets: {
        vaultDynamicSecrets: [{ mount: 'db', path: 'creds/r', transformation: t('dyn') }],
        vaultPKISecrets: [{ mount: 'pki', role: 'r', transformation: t('pki', 'lib') }],
      },
    });
    assert.deepEqual(csiTransformationRefKeys(leased), ['app/dyn', 'lib/pki']);
    notReady(
      checkCSISecrets(obj, refs()),
      'InvalidResourceRef',
      /^SecretTransformation app\/all not found; SecretTransformation lib\/own not found$/,
    );
    notReady(
      checkCSISecrets(
        obj,
        refs({ transforms: [transformation('app', 'all'), transformation('lib', 'own', false)] }),
      ),
      'InvalidResourceRef',
      /^SecretTransformation lib\/own is not valid$/,
    );
    assert.equal(
      checkCSISecrets(
        obj,
        refs({ transforms: [transformation('app', 'all', true), transformation('lib', 'own')] }),
      ).ready,
      true,
    );
  });

  it('reports a missing spec', () => {
    const obj = csi();
    delete obj.spec;
    notReady(checkCSISecrets(obj, refs()), 'InvalidConfiguration', /spec is missing/);
  });
});

describe('csiSecretsStatus', () => {
  const at = (now: number, generation = 1) => ({ now, generation });
  const bad: CSISecretsVerdict = {
    ready: false,
    finding: 'reference',
    message: 'VaultAuth app/auth not found',
  };
  const good: CSISecretsVerdict = { ready: true, message: 'accepted' };

  it('sets Ready with observedGeneration; a Warning only when the problem is new', () => {
    const first = csiSecretsStatus(undefined, bad, at(1_000_000));
    assert.deepEqual(first.status.conditions, [
      {
        type: 'Ready',
        status: 'False',
        reason: 'InvalidResourceRef',
        message: 'VaultAuth app/auth not found',
        lastTransitionTime: '1970-01-01T00:16:40Z',
        observedGeneration: 1,
      },
    ]);
    assert.deepEqual(first.event, { type: 'Warning', reason: 'InvalidResourceRef', message: bad.message });
    const again = csiSecretsStatus(first.status, bad, at(2_000_000, 2));
    assert.equal(again.event, undefined, 'the same problem: no second Event');
    assert.equal(again.status.conditions?.[0]?.observedGeneration, 2);
    assert.equal(again.status.conditions?.[0]?.lastTransitionTime, '1970-01-01T00:16:40Z');
    const other = csiSecretsStatus(
      again.status,
      { ...bad, message: 'VaultConnection x/y not found' },
      at(3_000_000),
    );
    assert.equal(other.event?.type, 'Warning', 'another problem is worth an Event');
  });

  it('is silent for a CSISecrets valid from the start, and says Normal Accepted on recovery', () => {
    const ok = csiSecretsStatus(undefined, good, at(1_000_000));
    assert.equal(ok.event, undefined);
    assert.equal(ok.status.conditions?.[0]?.reason, 'Accepted');
    assert.equal(ok.status.conditions?.[0]?.status, 'True');
    assert.equal(csiSecretsStatus(ok.status, good, at(2_000_000)).event, undefined);
    const broken = csiSecretsStatus(ok.status, bad, at(3_000_000));
    const healed = csiSecretsStatus(broken.status, good, at(4_000_000));
    assert.deepEqual(healed.event, { type: 'Normal', reason: 'Accepted', message: 'accepted' });
    assert.equal(healed.status.conditions?.length, 1);
  });

  it('keeps conditions of other types', () => {
    const previous: CSISecretsStatus = {
      conditions: [{ type: 'Other', status: 'True', reason: 'X', message: '', lastTransitionTime: 't' }],
    };
    const next = csiSecretsStatus(previous, good, at(1_000_000));
    assert.deepEqual(
      next.status.conditions?.map((c) => c.type),
      ['Other', 'Ready'],
    );
  });
});

describe('csiSecretsReconciler', () => {
  function harness(initial: CSISecrets, r = refs()) {
    const clock = new FakeClock();
    const patches: { name: string; body: { status: CSISecretsStatus } }[] = [];
    const events: { type: string; reason: string; message: string }[] = [];
    const csiStore = storeOf(initial);
    const ctx = {
      client: {
        patch: async (_rt: unknown, name: string, _ns: unknown, body: { status: CSISecretsStatus }) => {
          patches.push({ name, body });
          return {};
        },
      },
      events: {
        warning: async (_o: unknown, reason: string, message: string) => {
          events.push({ type: 'Warning', reason, message });
        },
        normal: async (_o: unknown, reason: string, message: string) => {
          events.push({ type: 'Normal', reason, message });
        },
      },
      clock,
      options: { operatorNamespace: OP, allowDefaultGlobals: true },
      informers: {
        auths: { store: r.auths },
        authGlobals: { store: r.authGlobals },
        connections: { store: r.connections },
        transformations: { store: r.transformations },
      },
    } as unknown as ControllerContext;
    const reconcile = csiSecretsReconciler(ctx, csiStore);
    const run = () =>
      reconcile({
        key: { namespace: 'app', name: 'c' },
        signal: new AbortController().signal,
        log: undefined as never,
        reconcileId: 'r',
      });
    /** The informer catches up with the last status write. */
    const sync = () => {
      const last = patches.at(-1);
      const obj = csiStore.get('app', 'c');
      if (last && obj) csiStore.put({ ...obj, status: last.body.status });
    };
    return { run, sync, patches, events, r, csiStore };
  }

  it('writes once per change, records one Warning, and nothing in steady state (even on a stale cache)', async () => {
    const h = harness(csi(), refs({ auths: [] }));
    assert.deepEqual(await h.run(), { awaitChange: true });
    assert.equal(h.patches.length, 1);
    assert.equal(h.patches[0]?.body.status.conditions?.[0]?.status, 'False');
    assert.deepEqual(h.events, [
      { type: 'Warning', reason: 'InvalidResourceRef', message: 'VaultAuth app/auth not found' },
    ]);
    // The cache has not seen the write yet: the memo keeps the Event from repeating, and the write
    // is repeated identically at most (a no-op for the API server).
    await h.run();
    assert.equal(h.events.length, 1);
    assert.equal(h.patches.length, 2);
    assert.deepEqual(h.patches[1]?.body, h.patches[0]?.body);
    h.sync();
    await h.run();
    await h.run();
    assert.equal(h.patches.length, 2, 'steady state: no write');
    assert.equal(h.events.length, 1);

    h.r.auths.put(vaultAuth('app', 'auth'));
    await h.run();
    assert.equal(h.patches.length, 3);
    assert.equal(h.patches[2]?.body.status.conditions?.[0]?.status, 'True');
    assert.deepEqual(h.events.at(-1), {
      type: 'Normal',
      reason: 'Accepted',
      message: `accepted: VaultAuth app/auth, VaultConnection ${OP}/default`,
    });
  });

  it('does nothing for a vanished or deleting object', async () => {
    const h = harness({
      ...csi(),
      metadata: { ...csi().metadata, deletionTimestamp: '2024-01-01T00:00:00Z' },
    });
    await h.run();
    h.csiStore.del(csi());
    await h.run();
    assert.equal(h.patches.length, 0);
    assert.equal(h.events.length, 0);
  });
});
