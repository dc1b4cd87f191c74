// --strict-destination-ownership on the real operator (issue 14): a tenant who may create a
// VaultStaticSecret but not edit a Secret cannot have the operator rewrite it (create: false) or
// take it over (overwrite: true) until the Secret's owner annotates it. Serial: the operator is
// restarted with the flag, and back without it afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VaultStaticSecrets } from '../../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Namespaces, Secrets } from '../../../src/k8s/resources.ts';
import type { Secret } from '../../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  condition,
  decodeData,
  eventsOf,
  eventually,
  synced,
  tenant,
  VaultAdmin,
  vss,
} from '../../../stack/lib/fixtures.ts';
import { restartOperator, restoreOperator } from '../../../stack/lib/stack.ts';
import { type StackEnv, uniqueName, useStack } from '../harness.ts';

const log = (m: string) => process.stderr.write(`[strict-ownership e2e] ${m}\n`);
const OPT_IN = 'ferry.secrets.hashicorp.com/allow-sync';

describe('strict destination ownership', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;

  const theirs = (name: string, annotations: Record<string, string> = {}) =>
    kube.create<Secret>(Secrets, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns, annotations },
      type: 'Opaque',
      data: { token: Buffer.from('their-token').toString('base64') },
    });
  const sync = (name: string, destination: Record<string, unknown>) =>
    apply(kube, vss(ns, name, { mount: 'kvv2', type: 'kv-v2', path: `${ns}/app`, destination }));

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('strict');
    await tenant(env, kube, vault, ns);
    await vault.kvPut('kvv2', `${ns}/app`, { password: 'from-vault' });
    await restartOperator(log, 'SIGTERM', ['--strict-destination-ownership=true']);
  });
  after(async () => {
    await restoreOperator(log);
    await kube.delete(Namespaces, ns).catch(() => {});
    await vault.close();
    await kube.close();
  });

  for (const [name, destination] of [
    ['rewrite', { create: false }],
    ['takeover', { create: true, overwrite: true }],
  ] as const) {
    it(`${name}: refused with DestinationNotOptedIn until the Secret opts in`, async () => {
      await theirs(name);
      await sync(name, { name, ...destination });
      const refused = await eventually('refused in status', async () => {
        const o = await kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns);
        return /lacks the annotation/.test(condition(o, 'SecretSynced')?.message ?? '') ? o : undefined;
      });
      assert.match(condition(refused, 'SecretSynced')?.message ?? '', new RegExp(`${OPT_IN}: "true"`));
      await eventually('a Warning Event', async () =>
        (await eventsOf(kube, ns, name)).find((e) => e.reason === 'DestinationNotOptedIn'),
      );
      const untouched = await kube.get<Secret>(Secrets, name, ns);
      assert.deepEqual(decodeData(untouched.data), { token: 'their-token' });
      assert.equal(untouched.metadata.ownerReferences, undefined);

      // The Secret's owner opts in; the next retry writes it.
      await kube.patch(Secrets, name, ns, { metadata: { annotations: { [OPT_IN]: 'true' } } }, 'merge');
      await eventually('synced after the opt-in', async () =>
        synced(await kube.get<VaultStaticSecret>(VaultStaticSecrets, name, ns)),
      );
      assert.equal(decodeData((await kube.get<Secret>(Secrets, name, ns)).data).password, 'from-vault');
    });
  }
});
