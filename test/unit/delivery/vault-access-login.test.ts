// What each VaultAuth method sends to Vault's login endpoint when resolved through the
// VaultAccessResolver: JWT from a Secret or from a TokenRequest (VSO's two sources), AppRole from a
// Secret or from a secret-id file, and fields inherited from a VaultAuthGlobal. Vault is a loopback
// fake; the end-to-end proof against real Vault/OpenBao is test/e2e/auth-methods.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { VaultAuth } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../../src/api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../../../src/api/v1beta1/vaultconnection.ts';
import {
  connectionOptions,
  secretIdPathUid,
  type VaultAccessDeps,
  VaultAccessResolver,
} from '../../../src/delivery/vault-access.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Secrets, ServiceAccounts } from '../../../src/k8s/resources.ts';
import { setSecretIdDir } from '../../../src/vault/confined-file.ts';
import { FakeKube } from '../controllers/harness.ts';
import { authBody, FakeVault, ManualClock } from '../vault/helpers.ts';
import { storeOf } from './helpers.ts';

const OP = 'ferry-system';
const NS = 'app';

type TokenRequest = {
  namespace: string;
  serviceAccount: string;
  audiences?: string[];
  expirationSeconds?: number;
};

/** FakeKube plus the TokenRequest subresource, recording what was asked. */
class TokenKube extends FakeKube {
  readonly tokenRequests: TokenRequest[] = [];
  async createToken(
    namespace: string,
    serviceAccount: string,
    spec: { audiences?: string[]; expirationSeconds?: number },
  ): Promise<{ token: string; expirationTimestamp: string }> {
    this.tokenRequests.push({ namespace, serviceAccount, ...spec });
    return { token: `sa-token-${this.tokenRequests.length}`, expirationTimestamp: '2030-01-01T00:00:00Z' };
  }
}

const meta = (name: string, namespace = NS) => ({
  name,
  namespace,
  uid: `uid-${namespace}-${name}`,
  generation: 1,
});
const vaultAuth = (name: string, spec: NonNullable<VaultAuth['spec']>): VaultAuth => ({
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultAuth',
  metadata: meta(name),
  spec: { vaultConnectionRef: 'conn', ...spec },
});
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('VaultAccessResolver logins by method', () => {
  let vault: FakeVault;
  let kube: TokenKube;
  let dir: string;
  let sts: Server;
  let stsUrl: string;
  const stsCalls: URLSearchParams[] = [];
  let google: Server;
  let googleUrl: string;
  const googleCalls: { path: string; headers: Record<string, unknown>; body: string }[] = [];
  let metadataUp = true;
  const logins = () => vault.requests.filter((r) => r.path.endsWith('/login'));

  before(async () => {
    vault = await FakeVault.start();
    vault.handler = (req) =>
      req.path.endsWith('/login') ? { body: authBody(`tok-${vault.requests.length}`, { ttl: 3600 }) } : {};
    dir = mkdtempSync(join(tmpdir(), 'ferry-secret-id-'));
    writeFileSync(join(dir, 'id'), '  file-secret-id\n');
    writeFileSync(join(dir, 'empty'), '\n');
    setSecretIdDir(dir);
    sts = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        stsCalls.push(new URLSearchParams(body));
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>' +
            '<AccessKeyId>ASIATEMP</AccessKeyId><SecretAccessKey>temp-secret</SecretAccessKey>' +
            '<SessionToken>temp-session</SessionToken></Credentials></AssumeRoleWithWebIdentityResult>' +
            '</AssumeRoleWithWebIdentityResponse>',
        );
      });
    });
    await new Promise<void>((r) => sts.listen(0, '127.0.0.1', r));
    stsUrl = `http://127.0.0.1:${(sts.address() as AddressInfo).port}/`;
    // Google's STS, IAM Credentials and the GKE metadata server, on one loopback server.
    google = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        const path = req.url ?? '';
        googleCalls.push({ path, headers: req.headers, body });
        const json = (status: number, o: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(o));
        };
        if (path === '/sts/token') return json(200, { access_token: 'federated', token_type: 'Bearer' });
        if (path.endsWith(':generateIdToken')) return json(200, { token: 'google-id-token' });
        const meta: Record<string, string> = {
          '/metadata/project/project-id': 'meta-project',
          '/metadata/instance/attributes/cluster-location': 'europe-west1',
          '/metadata/instance/attributes/cluster-name': 'meta-cluster',
        };
        const m = meta[path];
        if (m && metadataUp && req.headers['metadata-flavor'] === 'Google') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end(m);
        }
        return json(404, { error: 'not found' });
      });
    });
    await new Promise<void>((r) => google.listen(0, '127.0.0.1', r));
    googleUrl = `http://127.0.0.1:${(google.address() as AddressInfo).port}`;
  });
  after(async () => {
    await vault.close();
    sts.closeAllConnections();
    google.closeAllConnections();
    await new Promise((r) => google.close(r));
    await new Promise((r) => sts.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    vault.requests.length = 0;
    kube = new TokenKube();
    kube.put(ServiceAccounts, { metadata: meta('app') });
    kube.put(Secrets, { metadata: meta('jwt-src'), data: { jwt: b64('jwt-from-secret') } });
    kube.put(Secrets, { metadata: meta('approle'), data: { id: b64('secret-secret-id') } });
    kube.put(Secrets, {
      metadata: meta('aws-creds'),
      data: { access_key_id: b64('AKIDSECRET'), secret_access_key: b64('sk'), session_token: b64('st') },
    });
    kube.put(ServiceAccounts, {
      metadata: {
        ...meta('irsa'),
        annotations: {
          'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/app',
          'eks.amazonaws.com/audience': 'aud-x',
        },
      },
    });
    stsCalls.length = 0;
    googleCalls.length = 0;
    metadataUp = true;
    kube.put(ServiceAccounts, {
      metadata: {
        ...meta('wi'),
        annotations: { 'iam.gke.io/gcp-service-account': 'app@proj.iam.gserviceaccount.com' },
      },
    });
  });

  function resolver(
    auths: VaultAuth[],
    globals: VaultAuthGlobal[] = [],
    env?: Record<string, string>,
    over: Partial<VaultAccessDeps> = {},
  ): VaultAccessResolver {
    const connection: VaultConnection = {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: meta('conn'),
      spec: { address: vault.address, skipTLSVerify: false },
    };
    return new VaultAccessResolver({
      client: kube as unknown as KubeClient,
      operatorNamespace: OP,
      auths: storeOf(...auths),
      authGlobals: storeOf(...globals),
      connections: storeOf(connection),
      cacheSize: 10,
      clock: new ManualClock(),
      tasks: { schedule: () => {} },
      allowDefaultGlobals: true,
      ...(env ? { env } : {}),
      gcpEndpoints: {
        sts: `${googleUrl}/sts/token`,
        iamCredentials: `${googleUrl}/iam`,
        metadata: `${googleUrl}/metadata`,
      },
      ...over,
    });
  }

  async function loginWith(auth: VaultAuth, globals: VaultAuthGlobal[] = [], env?: Record<string, string>) {
    const r = resolver([auth], globals, env);
    try {
      const access = await r.get({ namespace: NS, vaultAuthRef: auth.metadata.name });
      return { access, body: logins().at(-1)?.body as Record<string, unknown>, path: logins().at(-1)?.path };
    } finally {
      await r.cache.clear();
    }
  }

  it('jwt: presents the jwt key of secretRef', async () => {
    const { body, path } = await loginWith(
      vaultAuth('a', { method: 'jwt', mount: 'jwt', jwt: { role: 'r', secretRef: 'jwt-src' } }),
    );
    assert.equal(path, '/v1/auth/jwt/login');
    assert.deepEqual(body, { role: 'r', jwt: 'jwt-from-secret' });
    assert.equal(kube.tokenRequests.length, 0);
  });

  it('jwt: requests a ServiceAccount token with the audiences and lifetime, and it wins over secretRef', async () => {
    const { body } = await loginWith(
      vaultAuth('a', {
        method: 'jwt',
        mount: 'jwt',
        jwt: {
          role: 'r',
          serviceAccount: 'app',
          secretRef: 'jwt-src',
          audiences: ['vault', 'other'],
          tokenExpirationSeconds: 1200,
        },
      }),
    );
    assert.deepEqual(body, { role: 'r', jwt: 'sa-token-1' });
    assert.deepEqual(kube.tokenRequests, [
      { namespace: NS, serviceAccount: 'app', audiences: ['vault', 'other'], expirationSeconds: 1200 },
    ]);
  });

  it('jwt: a ServiceAccount token without audiences lasts 600 s by default', async () => {
    await loginWith(
      vaultAuth('a', { method: 'jwt', mount: 'jwt', jwt: { role: 'r', serviceAccount: 'app' } }),
    );
    assert.deepEqual(kube.tokenRequests, [{ namespace: NS, serviceAccount: 'app', expirationSeconds: 600 }]);
  });

  it('jwt: takes role, source and mount from a VaultAuthGlobal', async () => {
    const global: VaultAuthGlobal = {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultAuthGlobal',
      metadata: meta('g'),
      spec: { defaultAuthMethod: 'jwt', jwt: { role: 'gr', secretRef: 'jwt-src', mount: 'gjwt' } },
    };
    const { body, path } = await loginWith(vaultAuth('a', { vaultAuthGlobalRef: { name: 'g' } }), [global]);
    assert.equal(path, '/v1/auth/gjwt/login');
    assert.deepEqual(body, { role: 'gr', jwt: 'jwt-from-secret' });
  });

  it('jwt: refuses a missing role, a missing source and a Secret without the jwt key', async () => {
    await assert.rejects(
      loginWith(vaultAuth('a', { method: 'jwt', mount: 'jwt', jwt: { secretRef: 'jwt-src' } })),
      (e) =>
        isFerryError(e) && e.code === CODES.INVALID_CONFIG && /spec\.jwt\.role: is required/.test(e.message),
    );
    await assert.rejects(
      loginWith(vaultAuth('a', { method: 'jwt', mount: 'jwt', jwt: { role: 'r' } })),
      (e) => isFerryError(e) && /one of secretRef or serviceAccount/.test(e.message),
    );
    await assert.rejects(
      loginWith(vaultAuth('a', { method: 'jwt', mount: 'jwt', jwt: { role: 'r', secretRef: 'approle' } })),
      (e) => isFerryError(e) && e.code === CODES.VAULT_AUTH && /JWT/.test(e.message),
    );
    assert.equal(logins().length, 0);
  });

  it('appRole: reads the id key of secretRef', async () => {
    const { body } = await loginWith(
      vaultAuth('a', {
        method: 'appRole',
        mount: 'approle',
        appRole: { roleId: 'rid', secretRef: 'approle' },
      }),
    );
    assert.deepEqual(body, { role_id: 'rid', secret_id: 'secret-secret-id' });
  });

  it('appRole: reads secretIDPath under the secret-id directory, trimmed, with a stable provider UID', async () => {
    const auth = vaultAuth('a', {
      method: 'appRole',
      mount: 'approle',
      appRole: { roleId: 'rid', secretIDPath: join(dir, 'id') },
    });
    const first = await loginWith(auth);
    assert.deepEqual(first.body, { role_id: 'rid', secret_id: 'file-secret-id' });
    const second = await loginWith(auth);
    assert.equal(first.access.cacheKey, second.access.cacheKey);
    assert.match(secretIdPathUid('/x'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(secretIdPathUid('/x'), secretIdPathUid('/y'));
  });

  it('appRole: refuses a secretIDPath outside the directory, an empty file, and both sources at once', async () => {
    const withPath = (secretIDPath: string) =>
      vaultAuth('a', { method: 'appRole', mount: 'approle', appRole: { roleId: 'rid', secretIDPath } });
    await assert.rejects(
      loginWith(withPath('/etc/hostname')),
      (e) => isFerryError(e) && e.code === CODES.VAULT_AUTH && /secret-id/.test(e.message),
    );
    await assert.rejects(
      loginWith(withPath(join(dir, 'empty'))),
      (e) => isFerryError(e) && e.code === CODES.VAULT_AUTH,
    );
    await assert.rejects(
      loginWith(
        vaultAuth('a', {
          method: 'appRole',
          mount: 'approle',
          appRole: { roleId: 'rid', secretRef: 'approle', secretIDPath: join(dir, 'id') },
        }),
      ),
      (e) => isFerryError(e) && /mutually exclusive/.test(e.message),
    );
    assert.equal(logins().length, 0);
  });

  const iamHeaders = (body: Record<string, unknown>) =>
    JSON.parse(Buffer.from(String(body.iam_request_headers), 'base64').toString()) as Record<
      string,
      string[]
    >;

  it('aws: signs GetCallerIdentity with the credentials of secretRef', async () => {
    const { body, path } = await loginWith(
      vaultAuth('a', {
        method: 'aws',
        mount: 'aws',
        aws: { role: 'r', region: 'eu-west-1', headerValue: 'hv', secretRef: 'aws-creds' },
      }),
    );
    assert.equal(path, '/v1/auth/aws/login');
    assert.equal(body.role, 'r');
    assert.equal(body.iam_http_request_method, 'POST');
    assert.equal(
      Buffer.from(String(body.iam_request_url), 'base64').toString(),
      'https://sts.eu-west-1.amazonaws.com/',
    );
    const h = iamHeaders(body);
    assert.match(h.Authorization?.[0] ?? '', /Credential=AKIDSECRET\/\d{8}\/eu-west-1\/sts\/aws4_request/);
    assert.deepEqual(h['X-Amz-Security-Token'], ['st']);
    assert.deepEqual(h['X-Vault-Aws-Iam-Server-Id'], ['hv']);
  });

  it('aws: IRSA exchanges a token with the annotated audience at STS for the annotated role', async () => {
    const { body } = await loginWith(
      vaultAuth('a', {
        method: 'aws',
        mount: 'aws',
        aws: { role: 'r', irsaServiceAccount: 'irsa', stsEndpoint: stsUrl, sessionName: 'ferry' },
      }),
    );
    assert.deepEqual(kube.tokenRequests, [
      { namespace: NS, serviceAccount: 'irsa', audiences: ['aud-x'], expirationSeconds: 86_400 },
    ]);
    assert.equal(stsCalls.length, 1);
    assert.equal(stsCalls[0]?.get('Action'), 'AssumeRoleWithWebIdentity');
    assert.equal(stsCalls[0]?.get('RoleArn'), 'arn:aws:iam::123456789012:role/app');
    assert.equal(stsCalls[0]?.get('RoleSessionName'), 'ferry');
    assert.equal(stsCalls[0]?.get('WebIdentityToken'), 'sa-token-1');
    const h = iamHeaders(body);
    assert.match(h.Authorization?.[0] ?? '', /Credential=ASIATEMP\/\d{8}\/us-east-1\/sts\/aws4_request/);
    assert.deepEqual(h['X-Amz-Security-Token'], ['temp-session']);
  });

  it('aws: refuses an IRSA ServiceAccount without a role annotation, and the default chain in a process without an environment', async () => {
    await assert.rejects(
      loginWith(
        vaultAuth('a', { method: 'aws', mount: 'aws', aws: { role: 'r', irsaServiceAccount: 'app' } }),
      ),
      (e) => isFerryError(e) && /no eks\.amazonaws\.com\/role-arn annotation/.test(e.message),
    );
    await assert.rejects(
      loginWith(vaultAuth('a', { method: 'aws', mount: 'aws', aws: { role: 'r' } })),
      (e) =>
        isFerryError(e) && e.code === CODES.INVALID_CONFIG && /operator's own credentials/.test(e.message),
    );
    assert.equal(logins().length, 0);
  });

  it('gcp: exchanges a pool-audience ServiceAccount token for a Google ID token of the annotated account', async () => {
    const { body, path } = await loginWith(
      vaultAuth('a', {
        method: 'gcp',
        mount: 'gcp',
        gcp: {
          role: 'r',
          workloadIdentityServiceAccount: 'wi',
          projectID: 'proj',
          region: 'us-central1',
          clusterName: 'c1',
        },
      }),
    );
    assert.equal(path, '/v1/auth/gcp/login');
    assert.deepEqual(body, { role: 'r', jwt: 'google-id-token' });
    assert.deepEqual(kube.tokenRequests, [
      { namespace: NS, serviceAccount: 'wi', audiences: ['proj.svc.id.goog'], expirationSeconds: 600 },
    ]);
    const [stsCall, idCall] = googleCalls;
    assert.deepEqual(JSON.parse(stsCall?.body ?? '{}'), {
      subjectToken: 'sa-token-1',
      subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt',
      requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token',
      grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
      scope: 'https://www.googleapis.com/auth/iam',
      audience:
        'identitynamespace:proj.svc.id.goog:https://container.googleapis.com/v1/projects/proj/locations/us-central1/clusters/c1',
    });
    assert.equal(
      idCall?.path,
      '/iam/projects/-/serviceAccounts/app%40proj.iam.gserviceaccount.com:generateIdToken',
    );
    assert.equal(idCall?.headers.authorization, 'Bearer federated');
    assert.deepEqual(JSON.parse(idCall?.body ?? '{}'), { audience: 'https://vault/r', includeEmail: true });
  });

  it('gcp: takes project, location and cluster from the metadata server when unset, and says so when it is absent', async () => {
    const auth = vaultAuth('a', {
      method: 'gcp',
      mount: 'gcp',
      gcp: { role: 'r', workloadIdentityServiceAccount: 'wi' },
    });
    await loginWith(auth);
    assert.deepEqual(kube.tokenRequests[0]?.audiences, ['meta-project.svc.id.goog']);
    assert.match(
      JSON.parse(googleCalls.find((c) => c.path === '/sts/token')?.body ?? '{}').audience,
      /projects\/meta-project\/locations\/europe-west1\/clusters\/meta-cluster$/,
    );
    metadataUp = false;
    await assert.rejects(
      loginWith(auth),
      (e) =>
        isFerryError(e) &&
        /GCP metadata project\/project-id answered HTTP 404; set it in spec\.gcp/.test(e.message),
    );
  });

  it('gcp: refuses a ServiceAccount without the Workload Identity annotation', async () => {
    await assert.rejects(
      loginWith(
        vaultAuth('a', {
          method: 'gcp',
          mount: 'gcp',
          gcp: {
            role: 'r',
            workloadIdentityServiceAccount: 'app',
            projectID: 'p',
            region: 'r',
            clusterName: 'c',
          },
        }),
      ),
      (e) => isFerryError(e) && /no iam\.gke\.io\/gcp-service-account annotation/.test(e.message),
    );
  });

  it("aws: without secretRef or irsaServiceAccount, signs with the operator's own credentials", async () => {
    const { body } = await loginWith(
      vaultAuth('a', { method: 'aws', mount: 'aws', aws: { role: 'r' } }),
      [],
      {
        AWS_ACCESS_KEY_ID: 'AKIAOPERATOR',
        AWS_SECRET_ACCESS_KEY: 'op-secret',
        AWS_REGION: 'eu-central-1',
      },
    );
    assert.match(iamHeaders(body).Authorization?.[0] ?? '', /Credential=AKIAOPERATOR\/\d{8}\/eu-central-1\//);
    assert.equal(
      Buffer.from(String(body.iam_request_url), 'base64').toString(),
      'https://sts.eu-central-1.amazonaws.com/',
    );
  });

  describe('in the CSI driver: the pod’s kubelet-issued token, and what the driver may not read', () => {
    const asked: { sa: string; audiences: readonly string[] | undefined }[] = [];
    const refusals: (string | undefined)[] = [];
    const csiDeps: Partial<VaultAccessDeps> = {
      podTokens: {
        token: (sa, audiences, opts) => {
          asked.push({ sa: `${sa.namespace}/${sa.name}`, audiences });
          refusals.push(opts?.refuseApiAudience);
          return `pod-token-${sa.name}`;
        },
      },
      withheld: { tokenRequests: 'FIX-TOKEN-REQUESTS', secretReads: 'FIX-SECRET-READS' },
      cacheSize: 100, // a namespace may hold a tenth: room for the sessions below
    };
    const pod = (name: string) => ({ namespace: NS, name });
    const refusedFor = (fix: string) => (e: unknown) =>
      isFerryError(e) && e.code === CODES.CSI_PRECONDITION && e.message.includes(fix);

    it('kubernetes and jwt log in as the pod with its token for the VaultAuth’s audiences: no TokenRequest, no ServiceAccount read', async () => {
      asked.length = 0;
      const auths = [
        vaultAuth('k', {
          method: 'kubernetes',
          mount: 'kubernetes',
          kubernetes: { role: 'r', serviceAccount: 'app', audiences: ['vault'] },
        }),
        vaultAuth('j', { method: 'jwt', mount: 'jwt', jwt: { role: 'r', serviceAccount: 'app' } }),
      ];
      const r = resolver(auths, [], undefined, csiDeps);
      await kube.delete(ServiceAccounts, 'app', NS); // never read: the session is keyed by the pod's ServiceAccount name
      try {
        const web = await r.get({ namespace: NS, vaultAuthRef: 'k', podServiceAccount: pod('web') });
        assert.deepEqual(logins().at(-1)?.body, { role: 'r', jwt: 'pod-token-web' });
        await r.get({ namespace: NS, vaultAuthRef: 'j', podServiceAccount: pod('web') });
        assert.deepEqual(logins().at(-1)?.body, { role: 'r', jwt: 'pod-token-web' });
        // One session per pod ServiceAccount: another pod of `web` shares it, `api` gets its own.
        const again = await r.get({ namespace: NS, vaultAuthRef: 'k', podServiceAccount: pod('web') });
        const api = await r.get({ namespace: NS, vaultAuthRef: 'k', podServiceAccount: pod('api') });
        assert.equal(again.cacheKey, web.cacheKey);
        assert.notEqual(api.cacheKey, web.cacheKey);
        assert.deepEqual(asked, [
          { sa: `${NS}/web`, audiences: ['vault'] },
          { sa: `${NS}/web`, audiences: undefined },
          { sa: `${NS}/api`, audiences: ['vault'] },
        ]);
        assert.equal(kube.tokenRequests.length, 0);
        // The API server's audience token goes only to a VaultConnection of the pod's namespace
        // (here `conn` in NS) or the operator's: a pod of another namespace is refused it.
        await r.get({
          namespace: NS,
          vaultAuthRef: 'k',
          podServiceAccount: { namespace: 'tenant-b', name: 'web' },
        });
        assert.deepEqual(refusals.slice(0, 3), [undefined, undefined, undefined]);
        assert.match(
          refusals[3] ?? '',
          /VaultConnection app\/conn is in neither the pod's namespace nor the operator's/,
        );
      } finally {
        await r.cache.clear();
      }
    });

    it('what needs a TokenRequest or a Secret is refused before any Kubernetes call, naming the fix', async () => {
      const cases: [NonNullable<VaultAuth['spec']>, string, boolean][] = [
        [
          { method: 'kubernetes', mount: 'kubernetes', kubernetes: { role: 'r', serviceAccount: 'app' } },
          'FIX-TOKEN-REQUESTS',
          false,
        ],
        [
          { method: 'appRole', mount: 'approle', appRole: { roleId: 'id', secretRef: 'approle' } },
          'FIX-SECRET-READS',
          true,
        ],
        [{ method: 'jwt', mount: 'jwt', jwt: { role: 'r', secretRef: 'jwt-src' } }, 'FIX-SECRET-READS', true],
        [
          { method: 'aws', mount: 'aws', aws: { role: 'r', secretRef: 'aws-creds' } },
          'FIX-SECRET-READS',
          true,
        ],
        [
          { method: 'aws', mount: 'aws', aws: { role: 'r', irsaServiceAccount: 'irsa' } },
          'FIX-TOKEN-REQUESTS',
          true,
        ],
        [
          {
            method: 'gcp',
            mount: 'gcp',
            gcp: {
              role: 'r',
              workloadIdentityServiceAccount: 'wi',
              projectID: 'p',
              region: 'r',
              clusterName: 'c',
            },
          },
          'FIX-TOKEN-REQUESTS',
          true,
        ],
      ];
      for (const [spec, fix, withPod] of cases) {
        const r = resolver([vaultAuth('a', spec)], [], undefined, csiDeps);
        try {
          await assert.rejects(
            r.get({
              namespace: NS,
              vaultAuthRef: 'a',
              ...(withPod ? { podServiceAccount: pod('web') } : {}),
            }),
            refusedFor(fix),
            `${spec.method}: ${fix}`,
          );
        } finally {
          await r.cache.clear();
        }
      }
      assert.equal(kube.tokenRequests.length, 0);
      assert.equal(stsCalls.length + googleCalls.length, 0);
      const conn: VaultConnection = {
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultConnection',
        metadata: meta('tls'),
        spec: { address: 'https://vault.example:8200', skipTLSVerify: false, caCertSecretRef: 'ca' },
      };
      await assert.rejects(
        connectionOptions(conn, kube as unknown as KubeClient, undefined, {
          secretReads: 'FIX-SECRET-READS',
        }),
        refusedFor('FIX-SECRET-READS'),
      );
    });
  });
});
