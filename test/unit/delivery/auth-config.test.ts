import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { effectiveAuth, isAllowedNamespace } from '../../../src/delivery/auth-config.ts';
import { isFerryError } from '../../../src/errors.ts';

describe('isAllowedNamespace', () => {
  const op = 'ferry-system';
  // [target namespace, target name, consumer namespace, allowedNamespaces, expected]
  const cases: [string, string, string, string[] | undefined, boolean][] = [
    ['app', 'auth', 'app', undefined, true],
    ['shared', 'auth', 'app', undefined, false],
    ['shared', 'auth', 'app', [], false],
    ['shared', 'auth', 'app', ['*'], true],
    ['shared', 'auth', 'app', ['*', 'other'], false],
    ['shared', 'auth', 'app', ['other', 'app'], true],
    ['shared', 'auth', 'app', ['other'], false],
    [op, 'default', 'app', undefined, true],
    [op, 'default', 'app', ['other'], true],
    [op, 'other', 'app', undefined, false],
    ['shared', 'default', 'app', undefined, false],
  ];
  for (const [ns, name, consumer, allowed, want] of cases) {
    it(`${consumer} → ${ns}/${name} with ${JSON.stringify(allowed)} is ${want}`, () => {
      assert.equal(isAllowedNamespace({ namespace: ns, name }, consumer, allowed, op), want);
    });
  }
});

describe('effectiveAuth', () => {
  it('takes method fields from the VaultAuth first, then the global method object', () => {
    const eff = effectiveAuth(
      { vaultAuthGlobalRef: { name: 'g' }, kubernetes: { role: 'r1', audiences: [] } },
      {
        defaultAuthMethod: 'kubernetes',
        defaultMount: 'k8s',
        kubernetes: { role: 'r0', serviceAccount: 'sa', audiences: ['vault'], namespace: 'team' },
      },
    );
    assert.deepEqual(eff, {
      method: 'kubernetes',
      mount: 'k8s',
      vaultNamespace: 'team',
      params: {},
      headers: {},
      kubernetes: { role: 'r1', serviceAccount: 'sa', audiences: ['vault'] },
    });
  });
  it('merges headers and params by strategy', () => {
    const global = {
      defaultAuthMethod: 'kubernetes' as const,
      defaultMount: 'k',
      headers: { a: 'g', b: 'g' },
      kubernetes: { headers: { b: 'm', c: 'm' } },
    };
    const auth = (s: 'union' | 'replace' | 'none') => ({
      headers: { c: 'a' },
      vaultAuthGlobalRef: { mergeStrategy: { headers: s } },
    });
    assert.deepEqual(effectiveAuth(auth('union'), global).headers, { a: 'g', b: 'm', c: 'a' });
    assert.deepEqual(effectiveAuth(auth('replace'), global).headers, { c: 'a' });
    assert.deepEqual(
      effectiveAuth({ vaultAuthGlobalRef: { mergeStrategy: { headers: 'replace' } } }, global).headers,
      { b: 'm', c: 'm' },
    );
    assert.deepEqual(effectiveAuth(auth('none'), global).headers, { c: 'a' });
  });
  it('refuses a configuration without method or mount', () => {
    assert.throws(() => effectiveAuth({ mount: 'k' }), isFerryError);
    assert.throws(() => effectiveAuth({ method: 'kubernetes' }), isFerryError);
  });
});
