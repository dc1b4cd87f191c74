import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_KINDS } from '../../../src/api/kinds.ts';
import {
  adviceFor,
  type LoginProbe,
  loginAdvice,
  parseTarget,
  runDoctor,
} from '../../../src/command/doctor.ts';
import { CsiLoginError } from '../../../src/command/vault-login.ts';
import { CODES, type ErrorCode, FerryError } from '../../../src/errors.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import { event, fakeKube as fake } from './fakes.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const ALL_CRDS = ALL_KINDS.map((d) => `${d.resource.plural}.secrets.hashicorp.com`);
const lease = (renewTime: string) => ({
  metadata: { name: 'ferry.secrets.hashicorp.com', namespace: 'ferry-system' },
  spec: { holderIdentity: 'pod-1', renewTime, leaseDurationSeconds: 15 },
});

describe('ferry doctor', () => {
  it('stops at missing CRDs, naming the kinds and how to install them', async () => {
    const checks = await runDoctor(fake({}, ALL_CRDS.slice(1)), { namespace: undefined }, NOW);
    assert.equal(checks.length, 1);
    assert.equal(checks[0]?.ok, false);
    assert.match(checks[0]?.message ?? '', /VaultConnection/);
    assert.match(checks[0]?.fix ?? '', /kubectl apply -f deploy\/crds/);
  });

  it('a stale leader Lease, an unhealthy connection and a failing consumer are problems with fixes', async () => {
    const checks = await runDoctor(
      fake(
        {
          Lease: [lease('2026-01-01T11:50:00Z')],
          VaultConnection: [
            {
              metadata: { name: 'default', namespace: 'ferry-system' },
              spec: { address: 'https://vault:8200' },
              status: {
                conditions: [
                  { type: 'Healthy', status: 'False', reason: 'Unhealthy', message: '' },
                  {
                    type: 'Ready',
                    status: 'False',
                    reason: 'Ready',
                    message: 'x509: certificate signed by unknown authority',
                  },
                ],
              },
            },
          ],
          VaultAuth: [
            { metadata: { name: 'auth', namespace: 'app' }, status: { valid: true, conditions: [] } },
          ],
          VaultStaticSecret: [
            {
              metadata: { name: 's', namespace: 'app' },
              spec: { vaultAuthRef: 'auth' },
              status: { conditions: [] },
            },
          ],
          Event: [
            event(
              { kind: 'VaultStaticSecret', name: 's', namespace: 'app' },
              'Warning',
              'VaultClientError',
              'Vault PUT auth/kubernetes/login failed with status 403: permission denied',
              '2026-01-01T11:59:00Z',
            ),
          ],
        },
        ALL_CRDS,
      ),
      { namespace: undefined },
      NOW,
    );
    const failed = checks.filter((c) => !c.ok).map((c) => `${c.check} ${c.object ?? ''}`.trim());
    assert.deepEqual(failed, [
      'operator ferry-system/ferry.secrets.hashicorp.com',
      'connection ferry-system/default',
      'auth app/auth',
      'secrets',
    ]);
    for (const c of checks.filter((x) => !x.ok)) assert.ok(c.fix, `${c.check} names a fix`);
    assert.match(checks.find((c) => c.check === 'operator')?.message ?? '', /10m ago/);
    assert.match(checks.find((c) => c.check === 'connection')?.fix ?? '', /caCertSecretRef/);
    assert.match(checks.find((c) => c.check === 'auth')?.fix ?? '', /bound_service_account_names/);
  });

  it('logs in through each valid VaultAuth as one of its consumers, each failure with its fix', async () => {
    const asked: string[] = [];
    const login = async (auth: string, ns: string) => {
      asked.push(`${auth} as ${ns}`);
      if (auth === 'app/broken')
        throw new Error('Vault PUT auth/kubernetes/login failed with status 400: invalid role name "x"');
      if (auth === 'ferry-system/default')
        throw new K8sApiError(403, 'Forbidden', 'serviceaccounts "app" is forbidden');
      return { policies: ['default', 'app'] };
    };
    const auth = (name: string, valid = true) => ({
      metadata: { name, namespace: 'app' },
      status: { valid, conditions: [] },
    });
    const checks = await runDoctor(
      fake(
        {
          Lease: [lease('2026-01-01T11:59:58Z')],
          VaultAuth: [auth('good'), auth('broken'), auth('invalid', false)],
          VaultStaticSecret: [
            {
              metadata: { name: 's', namespace: 'app' },
              spec: {},
              status: { conditions: [{ type: 'Ready', status: 'True' }] },
            },
          ],
        },
        ALL_CRDS,
      ),
      { namespace: 'app', login },
      NOW,
    );
    // The operator namespace's default is logged in as the namespace that uses it.
    assert.deepEqual(asked, ['app/broken as app', 'app/good as app', 'ferry-system/default as app']);
    const logins = checks.filter((c) => c.check === 'login');
    assert.deepEqual(
      logins.map((c) => `${c.object} ${c.ok}`),
      ['app/good true', 'app/broken false', 'ferry-system/default false'],
    );
    assert.match(logins[0]?.message ?? '', /policies default, app/);
    assert.match(logins[1]?.fix ?? '', /the Vault role does not exist/);
    assert.match(logins[2]?.message ?? '', /as a consumer in app failed/);
    assert.match(logins[2]?.fix ?? '', /create serviceaccounts\/token.*--no-login/);
  });

  it("a CSISecrets' login is checked as the CSI driver makes it, naming the identity and the fix", async () => {
    const seen: unknown[] = [];
    const login: LoginProbe = async (_auth, _ns, csi) => {
      seen.push(csi?.spec?.accessControl.serviceAccountPattern);
      throw new CsiLoginError(
        'Vault PUT auth/kubernetes/login failed with status 403: permission denied',
        'ServiceAccount app/web (the CSI driver logs in as the pod’s ServiceAccount)',
        'the Vault role demo must accept ServiceAccount app/web: …, or set csi.driver.tokenRequestLogin=true',
      );
    };
    const checks = await runDoctor(
      fake(
        {
          Lease: [lease('2026-01-01T11:59:58Z')],
          VaultAuth: [{ metadata: { name: 'default', namespace: 'app' }, status: { valid: true } }],
          CSISecrets: [
            {
              metadata: { name: 'c', namespace: 'app' },
              spec: { vaultAuthRef: { name: 'default' }, accessControl: { serviceAccountPattern: 'web' } },
              status: { conditions: [{ type: 'Ready', status: 'True' }] },
            },
          ],
        },
        ALL_CRDS,
      ),
      { namespace: 'app', login },
      NOW,
    );
    assert.deepEqual(seen, ['web']);
    const c = checks.find((x) => x.check === 'login');
    assert.match(c?.message ?? '', /as ServiceAccount app\/web .* failed: .*permission denied/);
    assert.match(c?.fix ?? '', /tokenRequestLogin=true/);
  });

  it('a login refused before Vault is asked names the object to fix', () => {
    const err = (code: ErrorCode) => new FerryError(code, 'x');
    assert.match(loginAdvice(err(CODES.INVALID_REF), 'app'), /create the missing object/);
    assert.match(loginAdvice(err(CODES.NAMESPACE_NOT_ALLOWED), 'app'), /add app to .*allowedNamespaces/);
    assert.match(loginAdvice(err(CODES.INVALID_CONFIG), 'app'), /ferry lint/);
    assert.match(loginAdvice(new Error('dial tcp: ECONNREFUSED'), 'app'), /VaultConnection address/);
    assert.match(adviceFor('VaultAuth app/gone not found'), /create the missing object/);
    assert.match(adviceFor('Vault GET kv/data/x failed with status 404: not found'), /mount, path and type/);
  });

  it('a leading operator and healthy objects pass', async () => {
    const checks = await runDoctor(
      fake({ Lease: [lease('2026-01-01T11:59:58Z')] }, ALL_CRDS),
      { namespace: 'app' },
      NOW,
    );
    assert.ok(
      checks.every((c) => c.ok),
      JSON.stringify(checks),
    );
  });

  it("checks the operator ServiceAccount's permissions and the CSI driver's registration", async () => {
    const deployment = {
      metadata: { name: 'ferry-controller-manager', namespace: 'ferry-system' },
      spec: { replicas: 1, template: { spec: { serviceAccountName: 'ferry' } } },
      status: { readyReplicas: 1 },
    };
    const checks = await runDoctor(
      fake(
        {
          Lease: [lease('2026-01-01T11:59:58Z')],
          Deployment: [deployment],
          CSISecrets: [{ metadata: { name: 'p', namespace: 'app' } }],
          CSIDriver: [{ metadata: { name: 'csi.vso.hashicorp.com' } }],
          CSINode: [
            { metadata: { name: 'n1' }, spec: { drivers: [{ name: 'csi.vso.hashicorp.com' }] } },
            { metadata: { name: 'n2' }, spec: { drivers: null } },
          ],
        },
        ALL_CRDS,
        ['patch vaultstaticsecrets/status', 'create serviceaccounts/token'],
      ),
      { namespace: 'app' },
      NOW,
    );
    const rbac = checks.find((c) => c.check === 'rbac');
    assert.equal(rbac?.object, 'ferry-system/ferry');
    assert.equal(
      rbac?.message,
      'may not: create serviceaccounts/token, patch vaultstaticsecrets.secrets.hashicorp.com/status',
    );
    const csi = checks.find((c) => c.check === 'csi');
    assert.equal(csi?.message, 'not registered on 1 of 2 node(s): n2');
    assert.ok(csi?.fix);
  });

  it('KIND/NAME: the resource, the chain it depends on, and what it lacks', async () => {
    const checks = await runDoctor(
      fake(
        {
          Lease: [lease('2026-01-01T11:59:58Z')],
          VaultStaticSecret: [
            {
              metadata: { name: 'app', namespace: 'team' },
              spec: {
                vaultAuthRef: 'auth',
                destination: { name: 'by-hand', create: false },
                rolloutRestartTargets: [{ kind: 'Deployment', name: 'web' }],
              },
              status: {
                conditions: [{ type: 'Ready', status: 'False', reason: 'x', message: 'Vault is sealed' }],
              },
            },
          ],
          VaultAuth: [
            {
              metadata: { name: 'auth', namespace: 'team' },
              spec: { vaultConnectionRef: 'vc' },
              status: { valid: true, conditions: [{ type: 'Ready', status: 'True', reason: 'Ready' }] },
            },
          ],
        },
        ALL_CRDS,
      ),
      { namespace: 'team', resource: { ...parseTarget('vss/app'), namespace: 'team' } },
      NOW,
    );
    assert.deepEqual(
      checks
        .filter((c) => c.check === 'resource' || c.check === 'reference')
        .map((c) => `${c.object} ${c.ok}`),
      ['team/app false', 'team/auth true', 'team/vc false', 'team/by-hand false', 'team/web false'],
    );
    assert.match(checks.find((c) => c.object === 'team/app')?.fix ?? '', /unseal/);
    assert.throws(() => parseTarget('pods/x'), /not KIND\/NAME of a Ferry kind/);
    assert.equal(parseTarget('VaultDynamicSecret/db').rt.kind, 'VaultDynamicSecret');
  });

  it('turns Vault errors into actions', () => {
    assert.match(adviceFor('Vault is sealed'), /unseal/);
    assert.match(adviceFor('connect ECONNREFUSED 127.0.0.1:8200'), /address/);
    assert.match(
      adviceFor('Vault PUT auth/kubernetes/login failed with status 400: invalid role name "x"'),
      /role does not exist/,
    );
    assert.match(
      adviceFor('Vault GET kvv2/data/x failed with status 403: permission denied'),
      /policies must grant read/,
    );
  });
});
