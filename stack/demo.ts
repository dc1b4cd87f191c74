// `npm run demo`: both of Ferry's delivery models on the local stack's real node. Builds what is
// missing, starts the control plane, a kubelet node, OpenBao and PostgreSQL, installs Ferry from its
// Helm chart, then:
//   sync       a Deployment reads a synced Secret (env and volume); the value is rotated in OpenBao
//              and reaches the Secret at once (instantUpdates: the audit stream)
//              and the restarted pod prints the new one;
//   protected  a pod reads the same secret from a CSI volume (in memory, read-only, never in etcd);
//              the pod is deleted and the node is left holding nothing.
//   --keep    leave everything running and print how to reach it
//   --flavor  openbao (default) or vault
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage } from '../src/errors.ts';
import { Pods, Secrets } from '../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../src/k8s/types.ts';
import {
  adminClient,
  apply,
  decodeData,
  ensureNamespace,
  eventually,
  type Manifest,
  readManifests,
  VaultAdmin,
} from './lib/fixtures.ts';
import { csiTargetPath, mountedUnder, type NodeEnv, waitForOutput } from './lib/node.ts';
import { type Flavor, repoRoot, stackDown, stackUp } from './lib/stack.ts';

const { values } = parseArgs({
  options: { keep: { type: 'boolean', default: false }, flavor: { type: 'string', default: 'openbao' } },
});
const flavor = values.flavor as Flavor;
if (flavor !== 'openbao' && flavor !== 'vault') {
  process.stderr.write(`unknown --flavor '${flavor}': use openbao or vault\n`);
  process.exit(2);
}
const server = flavor === 'openbao' ? 'OpenBao' : 'Vault';
const step = (m: string): void => {
  process.stdout.write(`\n==> ${m}\n`);
};
const say = (m: string): void => {
  process.stdout.write(`    ${m}\n`);
};
const secs = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)}s`;

/** The demo's manifests, with the VaultConnection pointed at the stack and images at the node's. */
function manifests(file: string, vaultAddr: string, image: string): Manifest[] {
  return readManifests(join(repoRoot, 'examples', 'demo', file)).map((m) => {
    const text = JSON.stringify(m).replaceAll(
      '"image":"busybox"',
      `"image":"${image}","imagePullPolicy":"Never"`,
    );
    const out = JSON.parse(text) as Manifest & { spec?: { address?: string } };
    if (out.kind === 'VaultConnection' && out.spec) out.spec.address = vaultAddr;
    return out;
  });
}

let ok = false;
try {
  step(`Starting the stack with ${server} and a kubelet node; installing Ferry from its Helm chart`);
  say('the first run builds Kubernetes from source and the images (~10-25 min); later runs take a minute');
  const env = await stackUp({ flavor, log: say });
  const node = env.node as NodeEnv;
  const kube = adminClient(env);
  const vault = new VaultAdmin(env);
  say(
    `image ${node.images.ferry} (${((node.imageBytes[node.images.ferry] ?? 0) / 1e6).toFixed(1)} MB) runs the operator and the CSI driver`,
  );

  step(`Configuring ${server}: a policy, a Kubernetes auth role for demo/demo-app, and a secret`);
  await vault.policy('demo', 'path "kvv2/data/demo/*" { capabilities = ["read"] }\n');
  await vault.kubernetesRole('demo', { serviceAccount: 'demo-app', namespace: 'demo', policies: ['demo'] });
  const first = `s3cret-${randomBytes(3).toString('hex')}`;
  await vault.kvPut('kvv2', 'demo/app', { username: 'demo', password: first });
  say(`kvv2/demo/app = { username: demo, password: ${first} }`);

  step('Sync: applying examples/demo (VaultConnection, VaultAuth, VaultStaticSecret, Deployment web)');
  await ensureNamespace(kube, 'demo', ['demo-app']);
  for (const file of ['00-connection.yaml', '10-auth.yaml', '20-static-secret.yaml', '30-web.yaml']) {
    for (const m of manifests(file, env.vaultAddr, node.images.test)) {
      await apply(kube, m);
      say(`applied ${m.kind} ${m.metadata.namespace}/${m.metadata.name}`);
    }
  }
  const t0 = Date.now();
  const synced = await eventually('the synced Secret', async () => {
    const s = await kube.getIfExists<Secret>(Secrets, 'app-credentials', 'demo');
    return s && decodeData(s.data).password === first ? s : undefined;
  });
  say(
    `Secret demo/app-credentials synced in ${secs(t0)}: keys ${Object.keys(decodeData(synced.data)).join(', ')}`,
  );
  const seen = await waitForOutput(node, 'demo', 'web-', 'web', 'the pod to print the password', (l) =>
    l.includes(`PASSWORD=${first}`),
  );
  say(`pod web prints: ${seen}`);

  const second = `s3cret-${randomBytes(3).toString('hex')}`;
  step(
    `Rotating the password in ${server} to ${second} (instantUpdates, refreshAfter: 1h, rolloutRestartTargets: web)`,
  );
  const t1 = Date.now();
  await vault.kvPut('kvv2', 'demo/app', { username: 'demo', password: second });
  await eventually(
    'the Secret to hold the new value',
    async () =>
      decodeData((await kube.getIfExists<Secret>(Secrets, 'app-credentials', 'demo'))?.data).password ===
      second,
    60_000,
    10,
  );
  say(`after ${Date.now() - t1} ms the Secret app-credentials holds it (the audit stream, not a poll)`);
  const after = await waitForOutput(
    node,
    'demo',
    'web-',
    'web',
    'the restarted pod to print the new value',
    (l) => l.includes(`PASSWORD=${second}, file password=${second}`),
  );
  say(`after ${secs(t1)} a restarted pod prints: ${after}`);

  step('Protected: a pod reads the secret from a CSI volume (CSISecrets demo/app-files)');
  const t2 = Date.now();
  for (const m of manifests('40-protected.yaml', env.vaultAddr, node.images.test)) {
    await apply(kube, m);
    say(`applied ${m.kind} ${m.metadata.namespace}/${m.metadata.name}`);
  }
  const line = await waitForOutput(node, 'demo', 'vault-reader', 'reader', 'the pod to print its file', (l) =>
    l.startsWith('password='),
  );
  const mount = await waitForOutput(node, 'demo', 'vault-reader', 'reader', 'the mount line', (l) =>
    l.includes(' /secrets '),
  );
  say(`kubelet mounted the volume and the pod started in ${secs(t2)}; it prints:`);
  say(`  ${line}`);
  say(`  ${mount}   (tmpfs, read-only)`);
  const pod = await kube.get<KubeObject>(Pods, 'vault-reader', 'demo');
  const target = csiTargetPath(node, pod.metadata.uid ?? '', 'secrets');
  const secretNames = (await kube.list<Secret>(Secrets, { namespace: 'demo' })).items.map(
    (s) => s.metadata.name,
  );
  say(`Secrets in namespace demo: ${secretNames.join(', ')} (none for the protected files)`);

  step('Deleting the pod: kubelet unpublishes the volume and the files leave the node');
  await kube.delete(Pods, 'vault-reader', 'demo');
  await eventually(
    'the pod gone',
    async () => (await kube.getIfExists(Pods, 'vault-reader', 'demo')) === undefined,
    60_000,
  );
  const mounted = mountedUnder(target);
  say(
    `volume directory on the node: ${existsSync(target) ? 'still there' : 'gone'}; mounted: ${mounted ? 'yes' : 'no'}`,
  );
  if (existsSync(target) || mounted) throw new Error(`the node still holds ${target}`);
  await kube.close();
  await vault.close();
  ok = true;

  if (values.keep) {
    step('The stack keeps running. To use it:');
    say(
      'eval "$(npm run -s stack -- env)"   # KUBECONFIG, VAULT_ADDR/BAO_ADDR, tokens, PATH, FERRY_TEST_IMAGE',
    );
    say(`kube-apiserver is at ${env.apiServer}; pod logs are under ${node.podLogsDir}`);
    say('npm run stack -- down               # stop everything');
  }
} catch (err) {
  process.stderr.write(`\ndemo failed: ${errorMessage(err)}\n`);
  process.stderr.write(
    'If a build failed, rerun `npm run demo`; builds resume from the cache under ~/.cache/ferry.\n',
  );
} finally {
  if (!values.keep || !ok) {
    step('Stopping the stack');
    await stackDown(say);
  }
}
process.exitCode = ok ? 0 : 1;
