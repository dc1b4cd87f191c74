// VaultAuth methods other than kubernetes, end to end: each VaultAuth logs in to the real Vault/OpenBao
// and a VaultStaticSecret using it syncs.
// - jwt: Vault's jwt auth method trusts the stack API server's ServiceAccount tokens, once through
//   the signing key (`jwt_validation_pubkeys` = pki/sa.pub, `bound_issuer` = the API server) and once
//   through the API server's own JWKS (`/openid/v1/jwks`, readable anonymously once
//   system:service-account-issuer-discovery is bound to system:unauthenticated). Both of VSO's JWT
//   sources: a Secret's `jwt` key, and a TokenRequest for a ServiceAccount with the VaultAuth's
//   audiences (the Vault role accepts only that audience, so a token without it would be refused).
// - appRole: both secret-id sources, a Secret's `id` key and a file (`secretIDPath`) in the
//   operator's --approle-secret-id-dir (the stack mounts it into the operator pod).
// - gcp, as far as it goes here: Google cannot be reached, and Vault's gcp method checks ID tokens
//   with Google's keys. The test shows the Kubernetes half on the real API server (the VaultAuth is
//   valid; the ServiceAccount token for the workload identity pool is issued) and that the status
//   names the unreachable Google STS; the exchange itself is unit-tested against loopback fakes
//   (test/unit/delivery/vault-access-login.test.ts).
// No credential (JWT, secret-id) may reach the operator log, Events or status.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VaultAuths, VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultAuth } from '../../src/api/v1beta1/vaultauth.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  condition,
  eventually,
  type Manifest,
  methodVaultAuth,
  syncsVia,
  tenant,
  VaultAdmin,
  vssVia,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

describe('VaultAuth methods: jwt, appRole, gcp', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  const credentials: string[] = [];
  const mounts: string[] = [];
  const files: string[] = [];

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('auth');
    await tenant(env, kube, vault, ns);
  });
  after(async () => {
    await assertNoLeak(env, kube, ns, VaultAuths, credentials, 'a credential');
    await assertNoLeak(env, kube, ns, VaultStaticSecrets, credentials, 'a credential');
    for (const m of mounts) await vault.call('DELETE', `sys/auth/${m}`).catch(() => {});
    for (const f of files) rmSync(f, { force: true });
    await vault.close();
    await kube.close();
  });

  const syncsWith = (auth: string): Promise<void> => syncsVia(kube, vault, ns, auth);

  /** A jwt auth mount configured by `config`, with role `app` for ServiceAccount `app` of the
   * namespace and only audience `aud`. */
  async function jwtMount(mount: string, config: Record<string, unknown>, aud: string): Promise<void> {
    await vault.call('POST', `sys/auth/${mount}`, { type: 'jwt' });
    mounts.push(mount);
    await vault.call('POST', `auth/${mount}/config`, { bound_issuer: env.apiServer, ...config });
    await vault.call('POST', `auth/${mount}/role/app`, {
      role_type: 'jwt',
      user_claim: 'sub',
      bound_subject: `system:serviceaccount:${ns}:app`,
      bound_audiences: [aud],
      token_policies: [`t-${ns}`],
      token_period: '1h',
    });
  }

  describe('jwt trusting the API server signing key', () => {
    const aud = 'ferry-e2e-jwt';
    let mount: string;
    before(async () => {
      mount = `jwt-pk-${ns}`;
      await jwtMount(
        mount,
        { jwt_validation_pubkeys: [readFileSync(join(env.dir, 'pki', 'sa.pub'), 'utf8')] },
        aud,
      );
    });

    it('logs in with the JWT held in a Secret (secretRef, key jwt)', async () => {
      const { token } = await kube.createToken(ns, 'app', { audiences: [aud], expirationSeconds: 3600 });
      credentials.push(token);
      await apply(kube, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'jwt-token', namespace: ns },
        stringData: { jwt: token },
      } as Manifest);
      await apply(
        kube,
        methodVaultAuth(env, ns, 'jwt-secret', 'jwt', mount, { role: 'app', secretRef: 'jwt-token' }),
      );
      await syncsWith('jwt-secret');
    });

    it('logs in with a requested ServiceAccount token carrying the VaultAuth audiences', async () => {
      await apply(
        kube,
        methodVaultAuth(env, ns, 'jwt-sa', 'jwt', mount, {
          role: 'app',
          serviceAccount: 'app',
          audiences: [aud],
          tokenExpirationSeconds: 900,
        }),
      );
      await syncsWith('jwt-sa');
    });
  });

  describe("jwt trusting the API server's JWKS (/openid/v1/jwks)", () => {
    it('logs in with a requested ServiceAccount token', async () => {
      // Vault fetches the key set anonymously, as it would from any OIDC issuer.
      await apply(kube, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'ferry-e2e-service-account-issuer-discovery' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:service-account-issuer-discovery',
        },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:unauthenticated' }],
      } as Manifest);
      const aud = 'ferry-e2e-jwks';
      const mount = `jwt-jwks-${ns}`;
      // The binding takes effect once the API server's RBAC cache has it: retry the config write
      // (Vault fetches the key set when the config is written).
      await eventually('Vault accepting the JWKS URL', async () => {
        await jwtMount(
          mount,
          { jwks_url: `${env.apiServer}/openid/v1/jwks`, jwks_ca_pem: readFileSync(env.caFile, 'utf8') },
          aud,
        );
        return true;
      });
      await apply(
        kube,
        methodVaultAuth(env, ns, 'jwt-jwks', 'jwt', mount, {
          role: 'app',
          serviceAccount: 'app',
          audiences: [aud],
        }),
      );
      await syncsWith('jwt-jwks');
    });
  });

  describe('appRole', () => {
    let mount: string;
    let roleId: string;
    const newSecretId = async (): Promise<string> => {
      const res = await vault.call('POST', `auth/${mount}/role/app/secret-id`, {});
      const id = String((res?.data as { secret_id?: string } | undefined)?.secret_id);
      credentials.push(id);
      return id;
    };
    before(async () => {
      mount = `approle-${ns}`;
      await vault.call('POST', `sys/auth/${mount}`, { type: 'approle' });
      mounts.push(mount);
      await vault.call('POST', `auth/${mount}/role/app`, { token_policies: [`t-${ns}`], token_period: '1h' });
      const res = await vault.call('GET', `auth/${mount}/role/app/role-id`);
      roleId = String((res?.data as { role_id?: string } | undefined)?.role_id);
    });

    it('logs in with the secret-id held in a Secret (secretRef, key id)', async () => {
      await apply(kube, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'approle-secret-id', namespace: ns },
        stringData: { id: await newSecretId() },
      } as Manifest);
      await apply(
        kube,
        methodVaultAuth(env, ns, 'approle-secret', 'appRole', mount, {
          roleId,
          secretRef: 'approle-secret-id',
        }),
      );
      await syncsWith('approle-secret');
    });

    it('logs in with the secret-id read from a file (secretIDPath) in the operator', async () => {
      const dir = env.approleDir;
      assert.ok(dir, 'the stack has no AppRole secret-id directory (started by an older checkout?)');
      const file = join(dir.host, `${ns}.secret-id`);
      files.push(file);
      // A trailing newline, as `echo` or a mounted file leaves it: VSO trims it.
      writeFileSync(file, `${await newSecretId()}\n`);
      chmodSync(file, 0o644);
      await apply(
        kube,
        methodVaultAuth(env, ns, 'approle-file', 'appRole', mount, {
          roleId,
          secretIDPath: `${dir.operator}/${ns}.secret-id`,
        }),
      );
      await syncsWith('approle-file');
    });

    it('refuses a secretIDPath outside that directory, naming why, without reading it', async () => {
      await apply(
        kube,
        methodVaultAuth(env, ns, 'approle-escape', 'appRole', mount, {
          roleId,
          secretIDPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
        }),
      );
      await apply(kube, vssVia(ns, 'approle-escape'));
      const message = await eventually('the VaultStaticSecret to report the refused path', async () => {
        const o = await kube.getIfExists<VaultStaticSecret>(VaultStaticSecrets, 'approle-escape', ns);
        const m = condition(o, 'SecretSynced')?.message ?? '';
        return /secretIDPath/.test(m) ? m : undefined;
      });
      assert.match(
        message,
        /secretIDPath \/var\/run\/secrets\/kubernetes\.io\/serviceaccount\/token is not under/,
      );
      assert.equal(await kube.getIfExists<Secret>(Secrets, 'approle-escape', ns), undefined);
    });
  });

  describe('gcp (Google cannot be reached here)', () => {
    /** The SecretSynced message of a VaultStaticSecret using VaultAuth `auth`, once it names `re`. */
    async function failureOf(auth: string, re: RegExp): Promise<string> {
      await apply(kube, vssVia(ns, auth));
      return eventually(`VaultStaticSecret ${auth} to report ${re}`, async () => {
        const o = await kube.getIfExists<VaultStaticSecret>(VaultStaticSecrets, auth, ns);
        const m = condition(o, 'SecretSynced')?.message ?? '';
        return re.test(m) ? m : undefined;
      });
    }

    it('gets the workload identity pool token and reports the unreachable Google STS', async () => {
      await apply(kube, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: 'wi',
          namespace: ns,
          annotations: { 'iam.gke.io/gcp-service-account': 'app@ferry-e2e.iam.gserviceaccount.com' },
        },
      } as Manifest);
      await apply(
        kube,
        methodVaultAuth(env, ns, 'gcp', 'gcp', 'gcp', {
          role: 'app',
          workloadIdentityServiceAccount: 'wi',
          projectID: 'ferry-e2e',
          region: 'europe-west1',
          clusterName: 'stack',
        }),
      );
      const auth = await eventually('VaultAuth gcp to be validated', async () => {
        const a = await kube.getIfExists<VaultAuth>(VaultAuths, 'gcp', ns);
        return a?.status?.valid !== undefined ? a : undefined;
      });
      assert.equal(auth.status?.valid, true, auth.status?.error);
      await failureOf(
        'gcp',
        /Google STS token exchange: cannot reach https:\/\/sts\.googleapis\.com\/v1\/token/,
      );
    });

    it('without project, location or cluster, says the GKE metadata server is not there', async () => {
      await apply(
        kube,
        methodVaultAuth(env, ns, 'gcp-meta', 'gcp', 'gcp', {
          role: 'app',
          workloadIdentityServiceAccount: 'wi',
        }),
      );
      await failureOf(
        'gcp-meta',
        /GCP metadata project\/project-id is not available \(not on GKE\?\); set it in spec\.gcp/,
      );
    });
  });
});
