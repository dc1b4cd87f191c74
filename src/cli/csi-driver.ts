// `ferry csi-driver`: the CSI node plugin for protected secrets (CSISecrets), run by the node
// DaemonSet in deploy/csi. Flags mirror VSO's driver (--endpoint, --nodeid) where they overlap.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import pino from 'pino';
import pkg from '../../package.json' with { type: 'json' };
import { CsiDriver } from '../csi/driver.ts';
import { DirMounter, TmpfsMounter } from '../csi/mounter.ts';
import { DEFAULT_DRIVER_NAME } from '../csi/names.ts';
import { errorMessage } from '../errors.ts';
import { KubeClient } from '../k8s/client.ts';
import { loadKubeConnection } from '../k8s/config.ts';
import { registerBuildInfo } from '../metrics/registry.ts';

const { values } = parseArgs({
  options: {
    endpoint: { type: 'string', default: 'unix:///csi/csi.sock' },
    nodeid: { type: 'string' },
    'driver-name': { type: 'string', default: DEFAULT_DRIVER_NAME },
    audience: { type: 'string' },
    kubeconfig: { type: 'string' },
    'operator-namespace': { type: 'string' },
    mount: { type: 'string', default: 'tmpfs' },
    'tmpfs-size': { type: 'string', default: '8m' },
    'target-root': { type: 'string', default: '/var/lib/kubelet/pods' },
    'state-dir': { type: 'string', default: '/run/ferry-csi' },
    'refresh-interval': { type: 'string', default: '120' },
    'health-probe-bind-address': { type: 'string', default: ':8081' },
    'client-cache-size': { type: 'string', default: '10000' },
    'global-transformation-options': { type: 'string' },
    'global-vault-auth-options': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const env = process.env;
const logger = pino({
  level: values['log-level'],
  redact: {
    paths: ['*.token', '*.client_token', '*.jwt', '*.data', '*.secret_id', 'headers.authorization'],
    censor: '[redacted]',
  },
});

function operatorNamespace(): string {
  if (values['operator-namespace']) return values['operator-namespace'];
  if (env.OPERATOR_NAMESPACE) return env.OPERATOR_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'default';
  }
}
const list = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

try {
  const mountKind = values.mount;
  if (mountKind !== 'tmpfs' && mountKind !== 'dir') throw new Error('--mount must be tmpfs or dir');
  const refresh = Number(values['refresh-interval']);
  if (!Number.isFinite(refresh) || refresh < 0) throw new Error('--refresh-interval must be seconds ≥ 0');
  const client = new KubeClient(
    loadKubeConnection({ ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), env }),
    { userAgent: 'ferry-csi' },
  );
  const health = values['health-probe-bind-address'];
  const driver = new CsiDriver({
    client,
    logger,
    driverName: values['driver-name'],
    ...(values.audience ? { audience: values.audience } : {}),
    nodeId: values.nodeid || env.KUBE_NODE_NAME || hostname(),
    operatorNamespace: operatorNamespace(),
    mounter: mountKind === 'tmpfs' ? new TmpfsMounter({ size: values['tmpfs-size'] }) : new DirMounter(),
    ...(values['target-root'] ? { targetRoot: values['target-root'] } : {}),
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    refreshIntervalMs: refresh * 1000,
    globalExcludeRaw: list(
      values['global-transformation-options'] ?? env.VSO_GLOBAL_TRANSFORMATION_OPTIONS,
    ).includes('exclude-raw'),
    allowDefaultGlobals: list(
      values['global-vault-auth-options'] ?? env.VSO_GLOBAL_VAULT_AUTH_OPTIONS ?? 'allow-default-globals',
    ).includes('allow-default-globals'),
    clientCacheSize: Number(values['client-cache-size']) || 10_000,
    healthAddress: health === '0' || health === '' ? null : health,
  });
  registerBuildInfo(driver.metrics, {
    version: pkg.version,
    gitCommit: env.FERRY_GIT_COMMIT ?? 'unknown',
    nodeVersion: process.version,
    platform: `${process.platform}/${process.arch}`,
  });
  await driver.start(values.endpoint);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        logger.info({ signal: sig }, 'shutting down');
        resolve();
      });
    }
  });
  await driver.stop();
  await client.close();
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, 'csi driver failed');
  process.exitCode = 1;
}
