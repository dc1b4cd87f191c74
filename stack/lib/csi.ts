// The CSI node driver as the end-to-end tests and the benchmark run it: in process, as its own
// ServiceAccount bound to deploy/csi/rbac.yaml (so a missing RBAC rule fails), called over its unix
// socket with the requests kubelet builds for an inline volume. Pods are real objects with tokens
// from the TokenRequest API bound to them, for the audiences deploy/csi/csidriver.yaml has kubelet
// request; they never run (there is no kubelet).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { CTX } from '../../src/csi/access.ts';
import { CsiClient, grpcCodeName } from '../../src/csi/client.ts';
import { CsiDriver, type CsiDriverConfig } from '../../src/csi/driver.ts';
import { canMountTmpfs, DirMounter, type Mounter, TmpfsMounter } from '../../src/csi/mounter.ts';
import type { NodePublishVolumeRequest } from '../../src/csi/proto.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { Pods } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  ensureNamespace,
  type Manifest,
  readManifests,
  tenant,
  VaultAdmin,
} from './fixtures.ts';
import type { StackEnv } from './stack.ts';

export const CSI_AUDIENCE = 'csi.vso.hashicorp.com';
/** The audiences deploy/csi/csidriver.yaml has kubelet issue the pod's Vault login tokens for. */
export const LOGIN_AUDIENCES = ['', 'vault'] as const;
/** The node the test driver serves; test pods are bound to it (they never run). */
export const CSI_TEST_NODE = 'e2e-node';
const ROOT = join(import.meta.dirname, '..', '..');

/** A CSISecrets manifest (the spec as given). */
export function csiSecretsManifest(namespace: string, name: string, spec: object): Manifest {
  return {
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'CSISecrets',
    metadata: { name, namespace },
    spec,
  } as Manifest;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  serviceAccount: string;
  /** The pod-bound token kubelet would pass (audience: the driver's). */
  token: string;
  /** The pod-bound tokens for the Vault login (LOGIN_AUDIENCES), by audience, with their expiry. */
  loginTokens: Record<string, { token: string; expirationTimestamp: string }>;
}

/** A token kubelet would request for the pod (CSIDriver tokenRequests; "" is the API server's
 * default audience). */
export const podToken = (
  kube: KubeClient,
  p: Omit<PodRef, 'token' | 'loginTokens'>,
  audience: string,
  seconds = 3600,
) =>
  kube.createToken(p.namespace, p.serviceAccount, {
    ...(audience ? { audiences: [audience] } : {}),
    expirationSeconds: seconds,
    boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: p.name, uid: p.uid },
  });

/** A Pod object and the token kubelet would request for it (CSIDriver tokenRequests). */
export async function makePod(
  kube: KubeClient,
  p: {
    namespace: string;
    name: string;
    serviceAccount: string;
    labels?: Record<string, string>;
    securityContext?: Record<string, number>;
    csiSecretsName?: string;
    containers?: { name: string; image: string }[];
    /** Default: the test driver's node. */
    nodeName?: string;
  },
): Promise<PodRef> {
  const pod = await kube.create<KubeObject>(Pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels ?? {} },
    spec: {
      nodeName: p.nodeName ?? CSI_TEST_NODE,
      serviceAccountName: p.serviceAccount,
      securityContext: p.securityContext ?? { fsGroup: 2000 },
      containers: p.containers ?? [{ name: 'app', image: 'busybox' }],
      volumes: [
        {
          name: 'secrets',
          csi: {
            driver: CSI_AUDIENCE,
            readOnly: true,
            volumeAttributes: { csiSecretsName: p.csiSecretsName ?? 'db' },
          },
        },
      ],
    },
  } as KubeObject);
  const ref = {
    namespace: p.namespace,
    name: p.name,
    uid: pod.metadata.uid ?? '',
    serviceAccount: p.serviceAccount,
  };
  const tr = await podToken(kube, ref, CSI_AUDIENCE);
  const loginTokens: PodRef['loginTokens'] = {};
  for (const aud of LOGIN_AUDIENCES) loginTokens[aud] = await podToken(kube, ref, aud);
  return { ...ref, token: tr.token, loginTokens };
}

/** How a driver call ended, as kubelet would see it: OK, or the gRPC code name and message. */
export async function outcomeOf(
  call: Promise<unknown>,
): Promise<{ code: string | undefined; message: string }> {
  try {
    await call;
    return { code: 'OK', message: '' };
  } catch (err) {
    return { code: grpcCodeName(err), message: (err as { details?: string }).details ?? String(err) };
  }
}

/** kubelet's target path and volume id for the pod's inline volume `secrets`. */
export const targetOf = (root: string, p: PodRef): string =>
  join(root, 'pods', p.uid, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');
export const volumeIdOf = (p: PodRef): string =>
  `csi-${createHash('sha256').update(`${p.uid}secrets`).digest('hex')}`;

export interface PublishOptions {
  /** The CSISecrets namespace attribute; the pod's when unset. */
  csiSecretsNamespace?: string;
  attrs?: Record<string, string>;
  token?: string;
  /** The Vault login tokens kubelet passes; the pod's when unset. */
  loginTokens?: PodRef['loginTokens'];
  /** What the volume context claims about the pod, where it differs from the pod. */
  claim?: Partial<PodRef>;
  mountGroup?: string;
}

/** The NodePublishVolume request kubelet builds for the pod's inline CSI volume. */
export function publishRequest(root: string, p: PodRef, o: PublishOptions = {}): NodePublishVolumeRequest {
  const claim = { ...p, ...o.claim };
  return {
    volume_id: volumeIdOf(p),
    target_path: targetOf(root, p),
    volume_capability: {
      mount: { fs_type: '', mount_flags: [], volume_mount_group: o.mountGroup ?? '' },
      access_mode: { mode: 'SINGLE_NODE_WRITER' },
    },
    readonly: true,
    volume_context: {
      [CTX.podName]: claim.name,
      [CTX.podNamespace]: claim.namespace,
      [CTX.podUid]: claim.uid,
      [CTX.serviceAccount]: claim.serviceAccount,
      [CTX.ephemeral]: 'true',
      [CTX.tokens]: JSON.stringify({
        ...(o.loginTokens ?? p.loginTokens),
        [CSI_AUDIENCE]: {
          token: o.token ?? p.token,
          expirationTimestamp: new Date(Date.now() + 600_000).toISOString(),
        },
      }),
      csiSecretsName: 'db',
      ...(o.csiSecretsNamespace ? { csiSecretsNamespace: o.csiSecretsNamespace } : {}),
      ...o.attrs,
    },
  };
}

export interface TestDriver {
  driver: CsiDriver;
  client: CsiClient;
  mounter: Mounter;
  /** True when volumes are real tmpfs mounts (else plain directories; see canMountTmpfs). */
  tmpfs: boolean;
  /** The kubelet root: targets lie under `<root>/pods`. */
  root: string;
  publish(p: PodRef, o?: PublishOptions): Promise<unknown>;
  unpublish(p: PodRef): Promise<unknown>;
  stop(): Promise<void>;
}

/** What a CSI end-to-end file works with: the stack's clients, a tenant namespace (fixtures'
 * `tenant`) with `serviceAccounts`, a temporary kubelet root `dir` and the driver in process on it. */
export interface CsiTenant {
  kube: KubeClient;
  vault: VaultAdmin;
  ns: string;
  dir: string;
  /** The running driver; a test that restarts it assigns the new one here, for `close`. */
  csi: TestDriver;
  /** Stops the driver, closes the clients and removes `dir`. */
  close(): Promise<void>;
}

/** Sets up a CsiTenant in namespace `ns`; `over(dir)` configures the driver. */
export async function csiTenant(
  env: StackEnv,
  ns: string,
  serviceAccounts: string[],
  over: (dir: string) => Partial<CsiDriverConfig> = () => ({}),
): Promise<CsiTenant> {
  const kube = adminClient(env);
  const vault = new VaultAdmin(env);
  await tenant(env, kube, vault, ns);
  await ensureNamespace(kube, ns, serviceAccounts);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-csi-'));
  const t: CsiTenant = {
    kube,
    vault,
    ns,
    dir,
    csi: await startTestDriver(env, kube, dir, over(dir)),
    async close() {
      await t.csi.stop();
      await vault.close();
      await rm(dir, { recursive: true, force: true });
      await kube.close();
    },
  };
  return t;
}

/** Applies the driver's RBAC and starts it in `root` as the ferry-csi-driver ServiceAccount. */
export async function startTestDriver(
  env: StackEnv,
  kube: KubeClient,
  root: string,
  over: Partial<CsiDriverConfig> = {},
): Promise<TestDriver> {
  for (const m of readManifests(join(ROOT, 'deploy', 'csi', 'rbac.yaml'))) await apply(kube, m);
  const sa = await kube.createToken('ferry-system', 'ferry-csi-driver', { expirationSeconds: 3600 });
  const driverKube = new KubeClient({
    server: env.apiServer,
    caPem: await readFile(env.caFile, 'utf8'),
    token: sa.token,
    namespace: 'ferry-system',
  });
  const probe = await canMountTmpfs(join(root, 'probe'));
  const mounter = probe.ok ? new TmpfsMounter({ size: '1m' }) : new DirMounter();
  if (!probe.ok) process.stderr.write(`[csi] plain directories: ${probe.reason}\n`);
  const driver = new CsiDriver({
    client: driverKube,
    logger: pino({ level: 'silent' }),
    driverName: CSI_AUDIENCE,
    nodeId: CSI_TEST_NODE,
    operatorNamespace: env.operatorNamespace,
    mounter,
    targetRoot: join(root, 'pods'),
    stateDir: join(root, 'state'),
    refreshIntervalMs: 0,
    healthAddress: null,
    ...over,
  });
  const sock = await driver.start(`unix://${join(root, 'csi.sock')}`);
  await driver.waitForSync(AbortSignal.timeout(30_000));
  const client = new CsiClient(sock);
  return {
    driver,
    client,
    mounter,
    tmpfs: probe.ok,
    root,
    publish: (p, o) => client.node('NodePublishVolume', publishRequest(root, p, o)),
    unpublish: (p) =>
      client.node('NodeUnpublishVolume', { volume_id: volumeIdOf(p), target_path: targetOf(root, p) }),
    async stop() {
      client.close();
      await driver.stop();
      await driverKube.close();
    },
  };
}

/** Every key and value in etcd (v3 JSON gateway, paged), searched for the given strings. */
export async function scanEtcd(
  endpoint: string,
  needles: string[],
): Promise<{ hits: Set<string>; keys: number; bytes: number }> {
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
  const hits = new Set<string>();
  const buffers = needles.map((n) => Buffer.from(n));
  let key = b64('\0');
  let keys = 0;
  let bytes = 0;
  for (;;) {
    const res = await request(`${endpoint}/v3/kv/range`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, range_end: b64('\0'), limit: 500 }),
    });
    const body = (await res.body.json()) as { kvs?: { key: string; value?: string }[]; more?: boolean };
    if (res.statusCode !== 200) throw new Error(`etcd range: HTTP ${res.statusCode}`);
    const kvs = body.kvs ?? [];
    for (const kv of kvs) {
      const k = Buffer.from(kv.key, 'base64');
      const v = Buffer.from(kv.value ?? '', 'base64');
      keys++;
      bytes += k.length + v.length;
      buffers.forEach((n, i) => {
        if (k.includes(n) || v.includes(n)) hits.add(needles[i] as string);
      });
    }
    if (!body.more || kvs.length === 0) break;
    const last = Buffer.from((kvs.at(-1) as { key: string }).key, 'base64');
    key = b64(Buffer.concat([last, Buffer.from([0])]));
  }
  return { hits, keys, bytes };
}
