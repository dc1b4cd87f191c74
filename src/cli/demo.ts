// `npm run demo`: Ferry's main job on a local stack. Builds what is missing, starts etcd,
// kube-apiserver, kube-controller-manager, OpenBao and the operator, applies examples/demo, shows the
// synced Secret, rotates the value in OpenBao and shows the change arrive.
//   --keep    leave everything running and print how to reach it
//   --flavor  openbao (default) or vault

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  adminClient,
  apply,
  decodeData,
  ensureNamespace,
  eventually,
  type Manifest,
  readManifests,
  restartedAt,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { type Flavor, repoRoot, stackDown, stackUp } from '../../stack/lib/stack.ts';
import { errorMessage } from '../errors.ts';
import { Deployments, Secrets } from '../k8s/resources.ts';
import type { Secret } from '../k8s/types.ts';

const { values } = parseArgs({
  options: { keep: { type: 'boolean', default: false }, flavor: { type: 'string', default: 'openbao' } },
});
const flavor = values.flavor as Flavor;
const step = (m: string): void => {
  process.stdout.write(`\n==> ${m}\n`);
};
const show = (s: Secret): void => {
  for (const [k, v] of Object.entries(decodeData(s.data)))
    if (k !== '_raw') process.stdout.write(`    ${k} = ${v}\n`);
};

let ok = false;
try {
  step(`Starting the stack with ${flavor} (first run builds Kubernetes from source: ~10-20 min)`);
  const env = await stackUp({ flavor, log: (m) => process.stdout.write(`    ${m}\n`) });
  const kube = adminClient(env);
  const vault = new VaultAdmin(env);

  step('Configuring OpenBao: a policy, a Kubernetes auth role for demo/demo-app, and a secret');
  await vault.policy('demo', 'path "kvv2/data/demo/*" { capabilities = ["read"] }\n');
  await vault.kubernetesRole('demo', { serviceAccount: 'demo-app', namespace: 'demo', policies: ['demo'] });
  const first = `s3cret-${randomBytes(3).toString('hex')}`;
  await vault.kvPut('kvv2', 'demo/app', { username: 'demo', password: first });
  process.stdout.write(`    kvv2/demo/app = { username: demo, password: ${first} }\n`);

  step('Applying examples/demo (VaultConnection, VaultAuth, VaultStaticSecret) and a Deployment to restart');
  await ensureNamespace(kube, 'demo', ['demo-app']);
  await apply(kube, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'demo' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: [{ name: 'web', image: 'nginx' }] },
      },
    },
  } as Manifest);
  for (const file of ['00-connection.yaml', '10-auth.yaml', '20-static-secret.yaml']) {
    for (const m of readManifests(join(repoRoot, 'examples', 'demo', file))) {
      if (m.kind === 'VaultConnection')
        (m as unknown as { spec: { address: string } }).spec.address = env.vaultAddr;
      await apply(kube, m);
      process.stdout.write(`    applied ${m.kind} ${m.metadata.namespace}/${m.metadata.name}\n`);
    }
  }

  step('Waiting for the operator to sync Secret demo/app-credentials');
  const started = Date.now();
  const synced = await eventually('the synced Secret', async () => {
    const s = await kube.get<Secret>(Secrets, 'app-credentials', 'demo').catch(() => undefined);
    return s && decodeData(s.data).password === first ? s : undefined;
  });
  process.stdout.write(`    synced in ${((Date.now() - started) / 1000).toFixed(1)}s:\n`);
  show(synced);

  const second = `s3cret-${randomBytes(3).toString('hex')}`;
  step(`Rotating the password in OpenBao to ${second} (refreshAfter: 5s)`);
  const rotated = Date.now();
  await vault.kvPut('kvv2', 'demo/app', { username: 'demo', password: second });
  const updated = await eventually('the rotated value', async () => {
    const s = await kube.get<Secret>(Secrets, 'app-credentials', 'demo');
    return decodeData(s.data).password === second ? s : undefined;
  });
  process.stdout.write(`    arrived after ${((Date.now() - rotated) / 1000).toFixed(1)}s:\n`);
  show(updated);
  // Restarts are debounced (one per workload per second), so the annotation follows shortly.
  const at = await eventually(
    'the rollout restart',
    () => restartedAt(kube, Deployments, 'web', 'demo'),
    15_000,
  );
  process.stdout.write(`    Deployment demo/web restarted at ${at}\n`);
  await kube.close();
  ok = true;

  if (values.keep) {
    step('The stack keeps running. To use it:');
    process.stdout.write(
      '    eval "$(npm run -s stack -- env)"   # KUBECONFIG, VAULT_ADDR/BAO_ADDR, tokens, PATH to the binaries\n' +
        '    kube-apiserver is at ' +
        `${env.apiServer}; operator log: ${env.operator?.log}\n` +
        '    npm run stack -- down               # stop everything\n',
    );
  }
} catch (err) {
  process.stderr.write(`\ndemo failed: ${errorMessage(err)}\n`);
  process.stderr.write(
    'If a build failed, rerun `npm run demo`; builds resume from the cache under ~/.cache/ferry.\n',
  );
} finally {
  if (!values.keep || !ok) {
    step('Stopping the stack');
    await stackDown((m) => process.stdout.write(`    ${m}\n`));
  }
}
process.exitCode = ok ? 0 : 1;
