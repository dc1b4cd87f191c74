// `ferry csi-driver`: the CSI node plugin for protected secrets (CSISecrets), run by the node
// DaemonSet in deploy/csi. Flags mirror VSO's driver (--endpoint, --nodeid) where they overlap.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_DRIVER_NAME } from '../consts/labels.ts';
import { CsiDriver } from '../csi/driver.ts';
import { DirMounter, TmpfsMounter, tmpfsSizeBytes } from '../csi/mounter.ts';
import { errorMessage } from '../errors.ts';
import {
  aborted,
  buildInfo,
  CLIENT_CACHE_FLAGS,
  COMMON_FLAGS,
  clientCacheOptions,
  listenAddress,
  secretSafeLogger,
  setUp,
} from './common.ts';

const { values } = parseArgs({
  options: {
    ...COMMON_FLAGS,
    endpoint: { type: 'string', default: 'unix:///csi/csi.sock' },
    nodeid: { type: 'string' },
    'driver-name': { type: 'string', default: DEFAULT_DRIVER_NAME },
    audience: { type: 'string' },
    mount: { type: 'string', default: 'tmpfs' },
    'tmpfs-size': { type: 'string', default: '8m' },
    'max-volumes': { type: 'string', default: '256' },
    'target-root': { type: 'string', default: '/var/lib/kubelet/pods' },
    'state-dir': { type: 'string', default: '/run/ferry-csi' },
    'refresh-interval': { type: 'string', default: '120' },
    // Built-in registration with kubelet (instead of the node-driver-registrar sidecar): the CSI
    // socket's path on the host, and kubelet's plugins_registry as mounted here.
    'kubelet-registration-path': { type: 'string' },
    'registration-dir': { type: 'string', default: '/registration' },
    ...CLIENT_CACHE_FLAGS,
    // Opt-ins the chart grants RBAC for (docs/security.md): VSO's TokenRequest login as the
    // VaultAuth's ServiceAccount (else the pod's own kubelet-issued token), and Secret reads.
    'token-request-login': { type: 'boolean', default: false },
    'read-secrets': { type: 'boolean', default: false },
    // Without the pod watch (and its RBAC), syncConfig.containerState never re-syncs on a restart.
    'no-pod-watch': { type: 'boolean', default: false },
  },
});
const env = process.env;
const logger = secretSafeLogger(values['log-level']);

try {
  const mountKind = values.mount;
  if (mountKind !== 'tmpfs' && mountKind !== 'dir') throw new Error('--mount must be tmpfs or dir');
  const refresh = Number(values['refresh-interval']);
  if (!Number.isFinite(refresh) || refresh < 0) throw new Error('--refresh-interval must be seconds ≥ 0');
  const maxVolumes = Number(values['max-volumes']);
  if (!Number.isInteger(maxVolumes) || maxVolumes < 1)
    throw new Error('--max-volumes must be an integer ≥ 1');
  const tmpfsSize = values['tmpfs-size'];
  const { client, operatorNamespace, globals, stop } = setUp(values, env, 'ferry-csi', logger);
  const driver = new CsiDriver({
    client,
    logger,
    driverName: values['driver-name'],
    ...(values.audience ? { audience: values.audience } : {}),
    nodeId: values.nodeid || env.KUBE_NODE_NAME || hostname(),
    operatorNamespace,
    mounter:
      mountKind === 'tmpfs'
        ? new TmpfsMounter({
            size: tmpfsSize,
            onNoSwapUnsupported: (reason) =>
              logger.info({ reason }, 'tmpfs noswap is not supported by this kernel; volumes may be swapped'),
          })
        : new DirMounter(),
    maxVolumes,
    maxVolumeBytes: tmpfsSizeBytes(tmpfsSize),
    ...(values['target-root'] ? { targetRoot: values['target-root'] } : {}),
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    refreshIntervalMs: refresh * 1000,
    ...globals,
    ...clientCacheOptions(values, env),
    tokenRequestLogin: values['token-request-login'],
    readSecrets: values['read-secrets'],
    watchPods: !values['no-pod-watch'],
    healthAddress: listenAddress(values['health-probe-bind-address']),
    ...(values['kubelet-registration-path']
      ? {
          registration: {
            kubeletEndpoint: values['kubelet-registration-path'],
            registrationDir: values['registration-dir'],
          },
        }
      : {}),
  });
  buildInfo(driver.metrics, env);
  await driver.start(values.endpoint);
  await Promise.race([aborted(stop), driver.done]);
  await driver.stop();
  await driver.done;
  await client.close();
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, 'csi driver failed');
  process.exitCode = 1;
}
