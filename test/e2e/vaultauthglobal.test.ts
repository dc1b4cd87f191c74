// VaultAuthGlobal through real objects: VaultAuths that say little more than which global to use log in
// to the real Vault/OpenBao, and VaultStaticSecrets using them sync. Login requests pass through a
// recording proxy in this process (the VaultConnection `recorder` points at it), so the test sees
// the headers and params each merge strategy (union, replace, none) put on the wire.
// Covered: a named global in another namespace (allowedNamespaces enforced), the default global of
// the VaultAuth's namespace, and the operator namespace's default global as the fallback.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { VaultAuthGlobals, VaultAuths } from '../../src/api/resources.ts';
import type { VaultAuth } from '../../src/api/v1beta1/vaultauth.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  adminClient,
  apply,
  ensureNamespace,
  eventually,
  type Manifest,
  syncsVia,
  tenant,
  VaultAdmin,
  vaultAuth,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

interface Login {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A loopback HTTP proxy to Vault that records login requests (the operator runs on this machine
 * or with hostNetwork, so it reaches 127.0.0.1). */
async function recordingProxy(target: string): Promise<{ server: Server; address: string; logins: Login[] }> {
  const logins: Login[] = [];
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (/^\/v1\/auth\/.+\/login$/.test(req.url ?? '') && body.length > 0)
        logins.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(body.toString()) });
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, logins };
}

const obj = (kind: string, ns: string, name: string, spec: Record<string, unknown>): Manifest =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind,
    metadata: { name, namespace: ns },
    spec,
  }) as Manifest;

describe('VaultAuthGlobal', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let shared: string;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let createdOperatorDefault = false;

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('vag');
    shared = `${ns}-shared`;
    await tenant(env, kube, vault, ns);
    await ensureNamespace(kube, shared);
    proxy = await recordingProxy(env.vaultAddr);
    await apply(
      kube,
      obj('VaultConnection', ns, 'recorder', { address: proxy.address, skipTLSVerify: false }),
    );
  });
  after(async () => {
    if (createdOperatorDefault)
      await kube.delete(VaultAuthGlobals, 'default', env.operatorNamespace).catch(() => {});
    proxy.server.closeAllConnections();
    await new Promise((r) => proxy.server.close(r));
    await vault.close();
    await kube.close();
  });

  const syncsWith = (auth: string, vssNs = ns): Promise<void> => syncsVia(kube, vault, vssNs, auth);

  /** The login a VaultAuth made, told apart by the `auth` param every test VaultAuth sends. */
  const loginOf = (name: string): Login => {
    const l = proxy.logins.find((x) => x.body.auth === name);
    assert.ok(l, `no login with auth=${name} passed the proxy`);
    return l;
  };
  const ferryHeaders = (l: Login): Record<string, unknown> =>
    Object.fromEntries(Object.entries(l.headers).filter(([k]) => k.startsWith('x-ferry-')));
  const params = (l: Login): Record<string, unknown> => {
    const { role: _r, jwt: _j, ...rest } = l.body;
    return rest;
  };

  describe('a named global in another namespace', () => {
    before(async () => {
      await apply(
        kube,
        obj('VaultAuthGlobal', shared, 'team', {
          allowedNamespaces: [ns],
          defaultAuthMethod: 'kubernetes',
          defaultMount: env.vaultKubernetesMount,
          vaultConnectionRef: `${ns}/recorder`,
          params: { g: 'global', shared: 'global' },
          headers: { 'X-Ferry-G': 'global', 'X-Ferry-Shared': 'global' },
          kubernetes: {
            role: `t-${ns}`,
            serviceAccount: 'app',
            audiences: ['vault'],
            params: { m: 'method', shared: 'method' },
            headers: { 'X-Ferry-M': 'method', 'X-Ferry-Shared': 'method' },
          },
        }),
      );
    });

    it('union: global, method and VaultAuth maps are merged, the VaultAuth winning', async () => {
      await apply(
        kube,
        vaultAuth(ns, 'union', {
          vaultAuthGlobalRef: {
            name: 'team',
            namespace: shared,
            mergeStrategy: { headers: 'union', params: 'union' },
          },
          params: { auth: 'union', shared: 'auth' },
          headers: { 'X-Ferry-A': 'auth', 'X-Ferry-Shared': 'auth' },
        }),
      );
      await syncsWith('union');
      const l = loginOf('union');
      assert.equal(l.path, `/v1/auth/${env.vaultKubernetesMount}/login`);
      assert.equal(l.body.role, `t-${ns}`);
      assert.deepEqual(params(l), { g: 'global', m: 'method', auth: 'union', shared: 'auth' });
      assert.deepEqual(ferryHeaders(l), {
        'x-ferry-g': 'global',
        'x-ferry-m': 'method',
        'x-ferry-a': 'auth',
        'x-ferry-shared': 'auth',
      });
    });

    it("replace: the first non-empty map wins whole (the VaultAuth's, else the method's)", async () => {
      await apply(
        kube,
        vaultAuth(ns, 'replace', {
          vaultAuthGlobalRef: {
            name: 'team',
            namespace: shared,
            mergeStrategy: { headers: 'replace', params: 'replace' },
          },
          params: { auth: 'replace' },
        }),
      );
      await syncsWith('replace');
      const l = loginOf('replace');
      assert.deepEqual(params(l), { auth: 'replace' });
      assert.deepEqual(ferryHeaders(l), { 'x-ferry-m': 'method', 'x-ferry-shared': 'method' });
    });

    it("none (the default): only the VaultAuth's own maps", async () => {
      await apply(
        kube,
        vaultAuth(ns, 'none', {
          vaultAuthGlobalRef: { name: 'team', namespace: shared },
          params: { auth: 'none' },
        }),
      );
      await syncsWith('none');
      const l = loginOf('none');
      assert.deepEqual(params(l), { auth: 'none' });
      assert.deepEqual(ferryHeaders(l), {});
    });

    it('a global that does not list the namespace is refused in the VaultAuth status', async () => {
      await apply(kube, obj('VaultAuthGlobal', shared, 'private', { defaultAuthMethod: 'kubernetes' }));
      await apply(
        kube,
        vaultAuth(ns, 'refused', { vaultAuthGlobalRef: { name: 'private', namespace: shared } }),
      );
      const status = await eventually('VaultAuth refused to be invalid', async () => {
        const a = await kube.getIfExists<VaultAuth>(VaultAuths, 'refused', ns);
        return a?.status?.valid === false ? a.status : undefined;
      });
      assert.match(
        status.error ?? '',
        new RegExp(`VaultAuthGlobal ${shared}/private does not allow namespace ${ns}`),
      );
    });
  });

  describe('default globals', () => {
    it("allowDefault takes the VaultAuth namespace's `default` global", async () => {
      await apply(
        kube,
        obj('VaultAuthGlobal', ns, 'default', {
          defaultAuthMethod: 'kubernetes',
          defaultMount: env.vaultKubernetesMount,
          vaultConnectionRef: `${ns}/recorder`,
          params: { from: 'namespace-default' },
          kubernetes: { role: `t-${ns}`, serviceAccount: 'app', audiences: ['vault'] },
        }),
      );
      await apply(
        kube,
        vaultAuth(ns, 'by-default', {
          vaultAuthGlobalRef: { allowDefault: true, mergeStrategy: { params: 'union' } },
          params: { auth: 'by-default' },
        }),
      );
      await syncsWith('by-default');
      assert.deepEqual(params(loginOf('by-default')), { from: 'namespace-default', auth: 'by-default' });
    });

    it("falls back to the operator namespace's `default` global", async (t) => {
      if (await kube.getIfExists(VaultAuthGlobals, 'default', env.operatorNamespace)) {
        t.skip(`${env.operatorNamespace}/default VaultAuthGlobal exists already; not replacing it`);
        return;
      }
      const other = `${ns}-other`;
      await tenant(env, kube, vault, other);
      await apply(
        kube,
        obj('VaultConnection', other, 'recorder', { address: proxy.address, skipTLSVerify: false }),
      );
      createdOperatorDefault = true;
      await apply(
        kube,
        obj('VaultAuthGlobal', env.operatorNamespace, 'default', {
          defaultAuthMethod: 'kubernetes',
          defaultMount: env.vaultKubernetesMount,
          params: { from: 'operator-default' },
          kubernetes: { serviceAccount: 'app', audiences: ['vault'] },
        }),
      );
      await apply(
        kube,
        vaultAuth(other, 'op-default', {
          vaultConnectionRef: 'recorder',
          vaultAuthGlobalRef: { allowDefault: true, mergeStrategy: { params: 'union' } },
          kubernetes: { role: `t-${other}` },
          params: { auth: 'op-default' },
        }),
      );
      await syncsWith('op-default', other);
      const l = loginOf('op-default');
      assert.equal(l.body.role, `t-${other}`);
      assert.deepEqual(params(l), { from: 'operator-default', auth: 'op-default' });
    });
  });
});
