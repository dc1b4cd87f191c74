import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VaultAuth } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../../src/api/v1beta1/vaultauthglobal.ts';
import { connectionRefOf, resolveAuthConfig, resolveAuthGlobal } from '../../../src/delivery/vault-access.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { storeOf } from './helpers.ts';

const OP = 'ferry-system';

const globals = (...items: VaultAuthGlobal[]) => storeOf(...items);

const global = (namespace: string, name: string, spec: VaultAuthGlobal['spec'] = {}): VaultAuthGlobal => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultAuthGlobal',
  metadata: { namespace, name, uid: `${namespace}-${name}` },
  spec,
});
const auth = (namespace: string, name: string, spec: NonNullable<VaultAuth['spec']>): VaultAuth => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultAuth',
  metadata: { namespace, name, uid: 'u' },
  spec,
});
const code = (c: string) => (e: unknown) => isFerryError(e) && e.code === c;

describe('resolveAuthGlobal', () => {
  const store = globals(
    global('app', 'default', { defaultMount: 'app-default' }),
    global(OP, 'default', { defaultMount: 'op-default', allowedNamespaces: ['*'] }),
    global('shared', 'named', { allowedNamespaces: ['app'] }),
    global('shared', 'private'),
  );
  it('finds a named global in the ref namespace or the VaultAuth namespace', () => {
    assert.equal(
      resolveAuthGlobal(
        auth('app', 'a', { vaultAuthGlobalRef: { name: 'named', namespace: 'shared' } }),
        store,
        OP,
        true,
      )?.metadata.name,
      'named',
    );
    assert.throws(
      () => resolveAuthGlobal(auth('app', 'a', { vaultAuthGlobalRef: { name: 'named' } }), store, OP, true),
      code(CODES.INVALID_REF),
    );
  });
  it('enforces the global allowedNamespaces against the VaultAuth namespace', () => {
    assert.throws(
      () =>
        resolveAuthGlobal(
          auth('app', 'a', { vaultAuthGlobalRef: { name: 'private', namespace: 'shared' } }),
          store,
          OP,
          true,
        ),
      code(CODES.NAMESPACE_NOT_ALLOWED),
    );
  });
  it('looks for the default global in the VaultAuth namespace first, then the operator namespace', () => {
    assert.equal(
      resolveAuthGlobal(auth('app', 'a', { vaultAuthGlobalRef: { allowDefault: true } }), store, OP, true)
        ?.spec?.defaultMount,
      'app-default',
    );
    assert.equal(
      resolveAuthGlobal(auth('other', 'a', { vaultAuthGlobalRef: { allowDefault: true } }), store, OP, true)
        ?.spec?.defaultMount,
      'op-default',
    );
  });
  it('refuses allowDefault when the operator option is off', () => {
    assert.throws(
      () =>
        resolveAuthGlobal(auth('app', 'a', { vaultAuthGlobalRef: { allowDefault: true } }), store, OP, false),
      code(CODES.INVALID_CONFIG),
    );
  });
  it('uses no global without a ref', () => {
    assert.equal(resolveAuthGlobal(auth('app', 'a', {}), store, OP, true), undefined);
  });
});

describe('resolveAuthConfig and connectionRefOf', () => {
  const deps = {
    authGlobals: globals(
      global(OP, 'default', {
        defaultAuthMethod: 'kubernetes',
        defaultMount: 'k8s',
        allowedNamespaces: ['*'],
        kubernetes: { role: 'r', serviceAccount: 'sa' },
      }),
    ),
    operatorNamespace: OP,
    allowDefaultGlobals: true,
  };
  it('merges the default global and validates the result', () => {
    const eff = resolveAuthConfig(auth('app', 'a', { vaultAuthGlobalRef: { allowDefault: true } }), deps);
    assert.equal(eff.mount, 'k8s');
    assert.deepEqual(eff.kubernetes, { role: 'r', serviceAccount: 'sa' });
  });
  it('refuses an incomplete kubernetes configuration with the field named', () => {
    assert.throws(
      () => resolveAuthConfig(auth('app', 'a', { method: 'kubernetes', mount: 'k' }), deps),
      (e) => isFerryError(e) && /kubernetes/.test(e.message),
    );
  });
  it('requires vaultConnectionRef in the operator namespace except for default', () => {
    const eff = resolveAuthConfig(
      auth(OP, 'x', { method: 'kubernetes', mount: 'k', kubernetes: { role: 'r', serviceAccount: 's' } }),
      deps,
    );
    assert.throws(() => connectionRefOf(auth(OP, 'x', {}), eff, OP), code(CODES.INVALID_CONFIG));
    assert.deepEqual(connectionRefOf(auth(OP, 'default', {}), eff, OP), { namespace: OP, name: 'default' });
    assert.deepEqual(connectionRefOf(auth('app', 'x', {}), eff, OP), { namespace: OP, name: 'default' });
    assert.deepEqual(connectionRefOf(auth('app', 'x', {}), { ...eff, vaultConnectionRef: 'mine' }, OP), {
      namespace: 'app',
      name: 'mine',
    });
  });
});
