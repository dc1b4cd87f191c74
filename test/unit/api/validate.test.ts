import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VaultAuthSpec } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultConnectionSpec } from '../../../src/api/v1beta1/vaultconnection.ts';
import {
  parseDuration,
  parseRef,
  refreshPeriodMs,
  validateCSISecrets,
  validateTransformation,
  validateVaultAuth,
  validateVaultConnection,
} from '../../../src/api/validate.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { loadFixture } from '../../fixtures/api/fixtures.ts';

const ctx = { namespace: 'app', operatorNamespace: 'vault-secrets-operator-system' };

describe('parseRef', () => {
  const ok: [string | undefined, string, string][] = [
    [undefined, 'vault-secrets-operator-system', 'default'],
    ['', 'vault-secrets-operator-system', 'default'],
    ['auth', 'app', 'auth'],
    ['default', 'app', 'default'],
    ['other/auth', 'other', 'auth'],
    ['vault-secrets-operator-system/default', 'vault-secrets-operator-system', 'default'],
  ];
  for (const [ref, namespace, name] of ok) {
    it(`${JSON.stringify(ref)} → ${namespace}/${name}`, () =>
      assert.deepEqual(parseRef(ref, ctx), { namespace, name }));
  }
  for (const bad of ['a/b/c', '/name', 'ns/', '/', 'a//b']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(
        () => parseRef(bad, ctx),
        (err) => isFerryError(err) && err.code === CODES.INVALID_REF,
      ));
  }
});

describe('refreshPeriodMs', () => {
  it('0s and unset mean no periodic refresh, as in VSO', () => {
    assert.equal(refreshPeriodMs(undefined), undefined);
    assert.equal(refreshPeriodMs(''), undefined);
    assert.equal(refreshPeriodMs('0s'), undefined);
    assert.equal(refreshPeriodMs('0.0h'), undefined);
  });

  it('never schedules a poll sooner than one second', () => {
    assert.equal(refreshPeriodMs('0.001s'), 1000);
    assert.equal(refreshPeriodMs('0.5s'), 1000);
    assert.equal(refreshPeriodMs('1s'), 1000);
    assert.equal(refreshPeriodMs('1.5s'), 1500);
    assert.equal(refreshPeriodMs('1h'), 3_600_000);
  });
});

describe('parseDuration', () => {
  const ok: [string, number][] = [
    ['0s', 0],
    ['1s', 1000],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['0.001s', 1],
    ['1.5m', 90_000],
    ['10m', 600_000],
    ['0.1h', 360_000],
    ['24h', 86_400_000],
    ['600s', 600_000],
  ];
  for (const [input, ms] of ok) it(`${input} = ${ms} ms`, () => assert.equal(parseDuration(input), ms));

  it('accepts days only when asked', () => {
    assert.equal(parseDuration('7d', { allowDays: true }), 604_800_000);
    assert.equal(parseDuration('1.5d', { allowDays: true }), 129_600_000);
    assert.throws(() => parseDuration('7d'));
  });

  for (const bad of ['', '1', '1ms', '1h30m', '-1s', '.5s', '1.s', ' 1s', '1S', '1w', '1e3s']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(
        () => parseDuration(bad, { allowDays: true }),
        (err) => isFerryError(err) && err.code === CODES.INVALID_CONFIG,
      ));
  }

  it('refuses values beyond safe integers', () => assert.throws(() => parseDuration('99999999999999999h')));
});

const fields = (problems: { field: string }[]) => problems.map((p) => p.field);

describe('validateVaultConnection', () => {
  const base: VaultConnectionSpec = { address: 'https://vault:8200', skipTLSVerify: false };

  it('accepts the fixtures', () => {
    for (const doc of loadFixture('VaultConnection')) {
      assert.deepEqual(validateVaultConnection(doc.spec as VaultConnectionSpec), []);
    }
  });
  it('caCertSecretRef and caCertPath are exclusive', () => {
    assert.deepEqual(
      fields(validateVaultConnection({ ...base, caCertSecretRef: 'ca', caCertPath: '/ca.crt' })),
      ['spec.caCertPath'],
    );
  });
  it('caCertPath must be absolute and without ..', () => {
    assert.deepEqual(fields(validateVaultConnection({ ...base, caCertPath: 'ca.crt' })), ['spec.caCertPath']);
    assert.deepEqual(fields(validateVaultConnection({ ...base, caCertPath: '/etc/../ca.crt' })), [
      'spec.caCertPath',
    ]);
  });
  it('refuses the X-Vault-Namespace header in any case', () => {
    const problems = validateVaultConnection({ ...base, headers: { 'x-vault-namespace': 'ns', Other: 'v' } });
    assert.deepEqual(fields(problems), ['spec.headers.x-vault-namespace']);
  });
  it('needs an http(s) URL', () => {
    assert.deepEqual(fields(validateVaultConnection({ ...base, address: 'vault:8200' })), ['spec.address']);
    assert.deepEqual(fields(validateVaultConnection({ ...base, address: 'not a url' })), ['spec.address']);
  });
});

describe('validateVaultAuth', () => {
  const k8s: VaultAuthSpec = {
    method: 'kubernetes',
    mount: 'kubernetes',
    kubernetes: { role: 'r', serviceAccount: 'sa' },
  };

  it('accepts the fixtures', () => {
    for (const doc of loadFixture('VaultAuth'))
      assert.deepEqual(validateVaultAuth(doc.spec as VaultAuthSpec), []);
  });
  it('needs method and mount after the global merge', () => {
    assert.deepEqual(fields(validateVaultAuth({})), ['spec.method', 'spec.mount']);
  });
  it('needs the method settings', () => {
    assert.deepEqual(fields(validateVaultAuth({ ...k8s, kubernetes: {} })), [
      'spec.kubernetes.role',
      'spec.kubernetes.serviceAccount',
    ]);
    assert.deepEqual(fields(validateVaultAuth({ method: 'jwt', mount: 'jwt', jwt: { role: 'r' } })), [
      'spec.jwt',
    ]);
    assert.deepEqual(fields(validateVaultAuth({ method: 'aws', mount: 'aws' })), ['spec.aws.role']);
    assert.deepEqual(fields(validateVaultAuth({ method: 'gcp', mount: 'gcp', gcp: { role: 'r' } })), [
      'spec.gcp.workloadIdentityServiceAccount',
    ]);
  });
  it('appRole: secretRef and secretIDPath are exclusive, and one is required', () => {
    const approle = (appRole: VaultAuthSpec['appRole']) =>
      fields(validateVaultAuth({ method: 'appRole', mount: 'approle', ...(appRole ? { appRole } : {}) }));
    assert.deepEqual(approle({ roleId: 'id', secretRef: 's', secretIDPath: '/p' }), ['spec.appRole']);
    assert.deepEqual(approle({ roleId: 'id' }), ['spec.appRole']);
    assert.deepEqual(approle({ roleId: 'id', secretRef: 's' }), []);
    assert.deepEqual(approle({ roleId: 'id', secretIDPath: '/run/secret-id' }), []);
    assert.deepEqual(approle({ roleId: 'id', secretIDPath: 'relative' }), ['spec.appRole.secretIDPath']);
    assert.deepEqual(approle({ roleId: 'id', secretIDPath: '/run/../etc/shadow' }), [
      'spec.appRole.secretIDPath',
    ]);
  });
});

describe('regex filters', () => {
  it('refuses patterns RE2 cannot compile', () => {
    assert.deepEqual(
      fields(
        validateTransformation('spec.destination.transformation', {
          includes: ['(a', 'ok'],
          excludes: ['(?=x)'],
        }),
      ),
      ['spec.destination.transformation.includes[0]', 'spec.destination.transformation.excludes[0]'],
    );
  });
  it('checks every pattern of CSISecrets', () => {
    const [doc] = loadFixture('CSISecrets');
    assert.ok(doc);
    const spec = structuredClone(doc.spec) as Parameters<typeof validateCSISecrets>[0];
    assert.deepEqual(validateCSISecrets(spec), []);
    spec.accessControl.serviceAccountPattern = '[';
    spec.accessControl.podNamePatterns = ['ok', '('];
    const vss = spec.secrets.vaultStaticSecrets?.[0];
    assert.ok(vss);
    vss.transformation = { excludes: ['\\'] };
    assert.deepEqual(fields(validateCSISecrets(spec)), [
      'spec.accessControl.serviceAccountPattern',
      'spec.accessControl.podNamePatterns[1]',
      'spec.secrets.vaultStaticSecrets[0].transformation.excludes[0]',
    ]);
  });
});
