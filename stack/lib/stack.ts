// Starts and stops the real stack: etcd, kube-apiserver, kube-controller-manager, a worker node
// (containerd, kubelet, kube-scheduler), an OpenBao or Vault dev server, PostgreSQL, and Ferry —
// installed from its Helm chart by default, or run from the checkout as a local process. Every
// process runs detached in its own process group with its log in the stack's temporary directory;
// .stack/env.json records what `down` must stop.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent } from 'undici';
import { ALL_KINDS } from '../../src/api/kinds.ts';
import { errorMessage } from '../../src/errors.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { ServiceAccounts } from '../../src/k8s/resources.ts';
import {
  CHART_APPROLE_DIR,
  type ChartEnv,
  installChart,
  installReplicaRelease,
  operatorIncarnation as operatorIncarnationOf,
  operatorPods,
  restartOperatorPods,
  STACK_VAULT_ADDRESS_ALLOWLIST,
  scaleOperator,
  uninstallRelease,
  upgradeOperatorArgs,
  waitOperatorPods,
} from './chart.ts';
import { adminClient, apply, type Manifest, readManifests, VaultAdmin } from './fixtures.ts';
import { ferryImage, pauseImage, testImage } from './images.ts';
import {
  ensureNodePackages,
  NODE_NAME,
  type NodeEnv,
  planNode,
  podLogs,
  startNode,
  stopNode,
} from './node.ts';
import { freePort, httpOk, type Log, type Started, start, stopAll, waitFor } from './proc.ts';

export const repoRoot = resolve(import.meta.dirname, '../..');
const envFile = (): string => process.env.FERRY_STACK_ENV ?? join(repoRoot, '.stack', 'env.json');

export type Flavor = 'openbao' | 'vault';

export interface StackEnv {
  dir: string;
  flavor: Flavor;
  /** kube-apiserver runs with API Priority and Fairness (FERRY_STACK_APF=off turns it off). */
  priorityAndFairness: boolean;
  apiServer: string;
  caFile: string;
  adminToken: string;
  kubeconfig: string; // admin identity (system:masters)
  operatorKubeconfig: string; // the operator's ServiceAccount (RBAC from the chart or deploy/rbac.yaml)
  operatorNamespace: string;
  operatorServiceAccount: string;
  etcd: string;
  vaultAddr: string;
  vaultToken: string;
  vaultKubernetesMount: string;
  /** Bearer token Vault's Kubernetes auth uses for TokenReview (bound to system:auth-delegator). */
  reviewerToken: string;
  postgres: { port: number; user: string; password: string; database: string; socketDir: string };
  binDirs: string[];
  processes: { name: string; pid: number; signal: NodeJS.Signals }[];
  /** Where tests put AppRole secret-id files for `secretIDPath`: on this machine (`host`) and as the
   * operator sees it (`operator`: the chart's hostPath mount, or the same directory for a process). */
  approleDir?: { host: string; operator: string };
  /** The operator's audit-stream listener, where the dev server's socket audit device connects
   * (docs/instant-updates.md). */
  auditStreamPort?: number;
  /** The worker node; absent with `up --no-node`. */
  node?: NodeEnv;
  /** Ferry from the chart (operator pods and the CSI DaemonSet), with `--operator chart`. */
  chart?: ChartEnv;
  /**
   * The operator under test, as its own ServiceAccount: pods of the chart's Deployment, or a local
   * process (pid and log file) with `--operator process` or while a test runs it so. Absent with
   * `--operator none`.
   */
  operator?: { health: string; metrics: string; pid?: number; log?: string };
}

/** chart: helm install on the node (the default); process: the checkout as a local process. */
export type OperatorMode = 'chart' | 'process' | 'none';

export function loadStackEnv(): StackEnv {
  const file = envFile();
  if (!existsSync(file)) {
    throw new Error(`no running stack (${file} is missing): start one with \`npm run stack -- up\``);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as StackEnv;
}

/** A test peer from stack/peers.sh, built on first use; its cache directory. */
export function peerDir(peer: string, log: Log): string {
  const script = join(repoRoot, 'stack', 'peers.sh');
  log(`ensuring ${peer} (a cold build takes minutes; progress follows)`);
  execFileSync('bash', [script, 'ensure', peer], { stdio: ['ignore', 'inherit', 'inherit'] });
  return execFileSync('bash', [script, 'path', peer], { encoding: 'utf8' }).trim();
}

function postgresBinDir(log: Log): string {
  const find = (): string | undefined => {
    const base = '/usr/lib/postgresql';
    if (!existsSync(base)) return undefined;
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    return versions[0] ? join(base, versions[0], 'bin') : undefined;
  };
  let dir = find();
  if (!dir && process.getuid?.() === 0) {
    log('installing PostgreSQL from Debian packages (apt-get)');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'postgresql'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    dir = find();
  }
  if (!dir)
    throw new Error('PostgreSQL server not found: install it with `sudo apt-get install -y postgresql`');
  return dir;
}

function kubeconfigYaml(server: string, caFile: string, token: string, namespace: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'ferry', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'ferry', user: { token } }],
    contexts: [{ name: 'ferry', context: { cluster: 'ferry', user: 'ferry', namespace } }],
    'current-context': 'ferry',
  });
}

export interface StackOptions {
  flavor: Flavor;
  log: Log;
  /** Default 'chart'. */
  operator?: OperatorMode;
  /** Default true; the chart needs the node. */
  node?: boolean;
}

/** Peer and image caches live outside the repository and survive between runs. */
const cacheDir = (): string =>
  process.env.FERRY_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ferry');

export async function stackUp(opts: StackOptions): Promise<StackEnv> {
  const { flavor, log } = opts;
  const mode = opts.operator ?? 'chart';
  const withNode = opts.node ?? true;
  if (mode === 'chart' && !withNode) throw new Error('--operator chart needs the node: drop --no-node');
  if (existsSync(envFile())) {
    log('a previous stack is recorded; stopping it first');
    await stackDown(log);
  }
  const etcdDir = peerDir('etcd', log);
  const kubeDir = peerDir('kube', log);
  const vaultDir = peerDir(flavor, log);
  const helmDir = mode === 'chart' ? peerDir('helm', log) : undefined;
  const pgBin = postgresBinDir(log);
  if (withNode) ensureNodePackages(log);

  const dir = mkdtempSync(join(tmpdir(), 'ferry-stack-'));
  chmodSync(dir, 0o755);
  const started: Started[] = [];
  const env: StackEnv = {
    dir,
    flavor,
    priorityAndFairness: process.env.FERRY_STACK_APF !== 'off',
    apiServer: '',
    caFile: join(dir, 'pki', 'ca.crt'),
    adminToken: randomBytes(24).toString('hex'),
    kubeconfig: join(dir, 'admin.kubeconfig'),
    operatorKubeconfig: join(dir, 'operator.kubeconfig'),
    operatorNamespace: 'ferry-system',
    operatorServiceAccount: 'ferry-operator',
    etcd: '',
    vaultAddr: '',
    vaultToken: randomBytes(16).toString('hex'),
    vaultKubernetesMount: 'kubernetes',
    reviewerToken: '',
    postgres: {
      port: 0,
      user: 'postgres',
      password: randomBytes(12).toString('hex'),
      database: 'postgres',
      socketDir: join(dir, 'pg-run'),
    },
    binDirs: [kubeDir, etcdDir, vaultDir, pgBin, ...(helmDir ? [helmDir] : [])],
    processes: [],
    approleDir: {
      host: join(dir, 'approle'),
      operator: mode === 'chart' ? CHART_APPROLE_DIR : join(dir, 'approle'),
    },
  };
  mkdirSync(join(dir, 'approle'), { mode: 0o755 });
  const record = (): void => {
    env.processes = started;
    mkdirSync(resolve(envFile(), '..'), { recursive: true });
    writeFileSync(envFile(), JSON.stringify(env, null, 2));
  };
  try {
    // Images first: a build failure should not leave half a stack behind.
    const images = withNode
      ? {
          ferry: await ferryImage(repoRoot, join(cacheDir(), 'images'), log),
          pause: await pauseImage(join(peerDir('pause', log), 'pause'), join(cacheDir(), 'images')),
          test: await testImage(join(pgBin, 'psql'), join(cacheDir(), 'images')),
        }
      : undefined;

    const ports = await Promise.all(Array.from({ length: 7 }, freePort));
    const [etcdPort, etcdPeer, apiPort, kcmPort, vaultPort, pgPort, auditPort] = ports as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    env.etcd = `http://127.0.0.1:${etcdPort}`;
    log('starting etcd');
    const etcd = start(dir, 'etcd', join(etcdDir, 'etcd'), [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${env.etcd}`,
      `--advertise-client-urls=${env.etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    started.push(etcd);
    record();
    await waitFor('etcd', join(dir, 'etcd.log'), etcd.pid, () => httpOk(`${env.etcd}/health`));

    // kube-apiserver: service-account keys from node:crypto, identities from a token file (the
    // admin, Vault's TokenReview caller and the node's kubelet), serving certificate self-generated
    // by the apiserver into --cert-dir.
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(pki, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(pki, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const reviewerToken = randomBytes(24).toString('hex');
    const nodeToken = randomBytes(24).toString('hex');
    env.reviewerToken = reviewerToken;
    writeFileSync(
      join(pki, 'tokens.csv'),
      `${env.adminToken},admin,admin-uid,"system:masters"\n${reviewerToken},vault-reviewer,vault-reviewer-uid\n` +
        `${nodeToken},system:node:${NODE_NAME},node-uid,"system:nodes"\n`,
      { mode: 0o600 },
    );
    env.apiServer = `https://127.0.0.1:${apiPort}`;
    log('starting kube-apiserver');
    const apiserver = start(dir, 'kube-apiserver', join(kubeDir, 'kube-apiserver'), [
      `--etcd-servers=${env.etcd}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--enable-admission-plugins=NodeRestriction',
      '--authorization-mode=Node,RBAC',
      `--token-auth-file=${join(pki, 'tokens.csv')}`,
      `--service-account-issuer=${env.apiServer}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--api-audiences=${env.apiServer},vault`,
      // API Priority and Fairness on, as every real cluster runs it (FERRY_STACK_APF=off for a run
      // without); the chaos suite's 429 case adds its own low limits for the operator.
      env.priorityAndFairness ? APF_ON : APF_OFF,
      '--profiling=false',
      '--endpoint-reconciler-type=none',
      '--v=0',
    ]);
    started.push(apiserver);
    record();
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    await waitFor('kube-apiserver', join(dir, 'kube-apiserver.log'), apiserver.pid, () =>
      httpOk(`${env.apiServer}/readyz`, insecure, { authorization: `Bearer ${env.adminToken}` }),
    );
    await insecure.close();
    // The generated apiserver.crt holds the leaf then its CA; trust the CA.
    const blocks =
      readFileSync(join(pki, 'apiserver.crt'), 'utf8').match(
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
      ) ?? [];
    const caPem = `${blocks[blocks.length - 1]}\n`;
    writeFileSync(env.caFile, caPem);
    writeFileSync(env.kubeconfig, kubeconfigYaml(env.apiServer, env.caFile, env.adminToken, 'default'), {
      mode: 0o600,
    });
    const kube = new KubeClient({
      server: env.apiServer,
      caPem,
      token: env.adminToken,
      namespace: 'default',
    });

    // kube-controller-manager: garbage collection, namespaces, service accounts and the workload
    // controllers, so owner-reference cleanup and rollout restarts happen for real; Jobs for the
    // chart's Helm hooks (CRD upgrade on `helm upgrade`, finalizer cleanup on `helm uninstall`).
    log('starting kube-controller-manager');
    const kcm = start(dir, 'kube-controller-manager', join(kubeDir, 'kube-controller-manager'), [
      `--kubeconfig=${env.kubeconfig}`,
      '--leader-elect=false',
      '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,node-lifecycle-controller,deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,root-ca-certificate-publisher-controller',
      `--root-ca-file=${env.caFile}`,
      `--service-account-private-key-file=${join(pki, 'sa.key')}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${join(dir, 'kcm-pki')}`,
      '--authentication-skip-lookup=true',
      '--v=0',
    ]);
    started.push(kcm);
    record();
    await waitFor(
      'kube-controller-manager',
      join(dir, 'kube-controller-manager.log'),
      kcm.pid,
      async () => (await kube.getIfExists(ServiceAccounts, 'default', 'default')) !== undefined,
    );

    if (images) {
      const nodeKubeconfig = join(dir, 'kubelet.kubeconfig');
      writeFileSync(nodeKubeconfig, kubeconfigYaml(env.apiServer, env.caFile, nodeToken, 'default'), {
        mode: 0o600,
      });
      env.node = planNode(dir, images);
      record();
      await startNode(env.node, {
        kubeDir,
        kubeconfig: nodeKubeconfig,
        adminKubeconfig: env.kubeconfig,
        archives: Object.values(images).map((i) => i.archive),
        kube,
        started,
        record,
        log,
      });
    }

    // Vault's TokenReview caller.
    await apply(kube, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'ferry-stack-vault-reviewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [{ kind: 'User', name: 'vault-reviewer', apiGroup: 'rbac.authorization.k8s.io' }],
    } as Manifest);
    await apply(kube, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: env.operatorNamespace } });

    // Vault or OpenBao dev server (in-memory storage, no mlock, no root needed).
    env.vaultAddr = `http://127.0.0.1:${vaultPort}`;
    log(`starting ${flavor} dev server`);
    const bin = flavor === 'openbao' ? join(vaultDir, 'bao') : join(vaultDir, 'vault');
    const vaultArgs = [
      'server',
      '-dev',
      `-dev-root-token-id=${env.vaultToken}`,
      `-dev-listen-address=127.0.0.1:${vaultPort}`,
    ];
    if (flavor === 'vault') vaultArgs.push('-dev-no-store-token');
    // instantUpdates out of the box: Vault's socket audit device streams to the operator's listener
    // (added once the operator listens: creating the device sends a test line that must land).
    if (mode !== 'none') env.auditStreamPort = auditPort;
    if (flavor === 'openbao') vaultArgs.push(`-config=${writeAuditConfig(dir)}`);
    const vault = start(dir, flavor, bin, vaultArgs, { env: { ...process.env, HOME: dir } });
    started.push(vault);
    record();
    await waitFor(flavor, join(dir, `${flavor}.log`), vault.pid, () =>
      httpOk(`${env.vaultAddr}/v1/sys/health`),
    );
    await new VaultAdmin(env).setup();
    if (flavor === 'vault') await new VaultAdmin(env).enableAlwaysAudit();

    // PostgreSQL, run as a non-root user, for the dynamic-secrets engine.
    env.postgres.port = pgPort;
    await startPostgres(env, pgBin, started, log);
    record();

    // Ferry's CRDs and RBAC: from the chart (helm install), else from deploy/.
    if (mode === 'chart' && env.node && helmDir) {
      env.chart = await installChart({
        dir,
        helmDir,
        repoRoot,
        kubeconfig: env.kubeconfig,
        namespace: env.operatorNamespace,
        apiPort,
        node: env.node,
        approleDir: join(dir, 'approle'),
        auditStreamPort: auditPort,
        log,
      });
      env.operator = { health: env.chart.health, metrics: env.chart.metrics };
    } else {
      for (const file of readdirSync(join(repoRoot, 'deploy', 'crds')).filter((f) => f.endsWith('.yaml'))) {
        for (const m of readManifests(join(repoRoot, 'deploy', 'crds', file))) await apply(kube, m);
      }
      for (const m of readManifests(join(repoRoot, 'deploy', 'rbac.yaml'))) await apply(kube, m);
    }
    // A new CRD answers 429 "storage is (re)initializing" for a moment; wait until every kind lists.
    for (const k of ALL_KINDS) {
      await waitFor(`CRD ${k.resource.plural}`, join(dir, 'kube-apiserver.log'), apiserver.pid, async () => {
        await kube.list(k.resource, { limit: 1 });
        return true;
      });
    }
    const tr = await kube.createToken(env.operatorNamespace, env.operatorServiceAccount, {
      expirationSeconds: 48 * 3600,
    });
    writeFileSync(
      env.operatorKubeconfig,
      kubeconfigYaml(env.apiServer, env.caFile, tr.token, env.operatorNamespace),
      {
        mode: 0o600,
      },
    );
    await kube.close();
    record();
    if (mode === 'process') {
      await startOperator(env, started, log);
      record();
    }
    // Only instantUpdates depends on it: a failure leaves the rest of the stack usable.
    if (env.auditStreamPort)
      await connectAuditStream(env, env.auditStreamPort, vault.pid, log).catch((err: unknown) => {
        log(`the audit stream is not connected (instantUpdates will not work): ${errorMessage(err)}`);
        delete env.auditStreamPort;
      });
    log('stack is up');
    return env;
  } catch (err) {
    record();
    await stackDown(log);
    throw err;
  }
}

async function startPostgres(env: StackEnv, pgBin: string, started: Started[], log: Log): Promise<void> {
  const data = join(env.dir, 'pg-data');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(env.postgres.socketDir);
  const pwfile = join(env.dir, 'pg-pw');
  writeFileSync(pwfile, env.postgres.password);
  // PostgreSQL refuses to run as root: drop to the `postgres` account the Debian package creates.
  let ids: { uid?: number; gid?: number } = {};
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const p of [data, env.postgres.socketDir, pwfile]) chownSync(p, uid, gid);
    ids = { uid, gid };
  }
  log('initialising PostgreSQL');
  execFileSync(
    join(pgBin, 'initdb'),
    [
      '-D',
      data,
      '-U',
      env.postgres.user,
      `--pwfile=${pwfile}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--no-sync',
    ],
    { stdio: 'ignore', ...ids },
  );
  rmSync(pwfile);
  const pg = start(
    env.dir,
    'postgres',
    join(pgBin, 'postgres'),
    [
      '-D',
      data,
      '-k',
      env.postgres.socketDir,
      '-h',
      '127.0.0.1',
      '-p',
      String(env.postgres.port),
      '-c',
      'fsync=off',
    ],
    { ...ids, signal: 'SIGINT' },
  );
  started.push(pg);
  await waitFor('postgres', join(env.dir, 'postgres.log'), pg.pid, async () => {
    execFileSync(join(pgBin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(env.postgres.port)], {
      stdio: 'ignore',
    });
    return true;
  });
}

/** Starts the operator from this checkout (Node 24 runs the TypeScript directly). */
async function startOperator(
  env: StackEnv,
  started: Started[],
  log: Log,
  extraArgs: string[] = [],
): Promise<void> {
  const p = await spawnOperator(env, 'operator', log, { extraArgs });
  started.push(p);
  env.operator = { pid: p.pid, health: p.health, metrics: p.metrics, log: p.log };
}

export type OperatorProcess = Started & { health: string; metrics: string; log: string };

/** How a local operator process is started beyond the stack's own flags. */
export interface OperatorProcessOptions {
  /** Operator flags. */
  extraArgs?: string[];
  /** Node's own flags, before the script (e.g. `--import` of a test preload). */
  nodeArgs?: string[];
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Wait for /readyz (default true); a process a test means to kill early returns at once. */
  waitReady?: boolean;
  /** Listen for the audit stream (default true); off for a replica beside another listener. */
  auditStream?: boolean;
}

async function spawnOperator(
  env: StackEnv,
  name: string,
  log: Log,
  opts: OperatorProcessOptions = {},
): Promise<OperatorProcess> {
  const [health, metrics] = (await Promise.all([freePort(), freePort()])) as [number, number];
  log(`starting the Ferry operator as a local process${name === 'operator' ? '' : ` (${name})`}`);
  const audit = opts.auditStream !== false && env.auditStreamPort !== undefined;
  const p = start(
    env.dir,
    name,
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      join(repoRoot, 'src', 'cli', 'operator.ts'),
      `--kubeconfig=${env.operatorKubeconfig}`,
      `--operator-namespace=${env.operatorNamespace}`,
      `--health-probe-bind-address=127.0.0.1:${health}`,
      `--metrics-bind-address=127.0.0.1:${metrics}`,
      '--log-level=debug',
      '--connection-health-period=10',
      `--vault-address-allowlist=${STACK_VAULT_ADDRESS_ALLOWLIST.join(',')}`,
      ...(env.approleDir ? [`--approle-secret-id-dir=${env.approleDir.host}`] : []),
      ...(audit
        ? [
            `--audit-stream-bind-address=127.0.0.1:${env.auditStreamPort}`,
            '--audit-stream-allowed-peers=127.0.0.1',
          ]
        : []),
      ...(opts.extraArgs ?? []),
    ],
    opts.env ? { env: { ...process.env, ...opts.env } } : {},
  );
  const op = {
    ...p,
    health: `http://127.0.0.1:${health}`,
    metrics: `http://127.0.0.1:${metrics}`,
    log: join(env.dir, `${name}.log`),
  };
  // /readyz answers for a follower too: readiness does not wait for leadership.
  if (opts.waitReady !== false) await waitFor(name, op.log, p.pid, () => httpOk(`${op.health}/readyz`));
  return op;
}

/**
 * OpenBao creates audit devices from its configuration only: a device that never fails, so that
 * requests go on while the operator is not listening, and (with `port`) the socket device for the
 * operator's listener.
 */
function writeAuditConfig(dir: string, port?: number): string {
  const file = join(dir, 'openbao-audit.hcl');
  const always = 'audit "file" "always" {\n  options {\n    file_path = "discard"\n  }\n}\n';
  const socket = `audit "socket" "ferry" {\n  options {\n    address = "127.0.0.1:${port}"\n    socket_type = "tcp"\n    write_timeout = "1s"\n  }\n}\n`;
  writeFileSync(file, port === undefined ? always : always + socket);
  return file;
}

/**
 * Points the dev server's socket audit device at the operator's listener, once that listens (the
 * leader's): Vault CE through the API, OpenBao by configuration and SIGHUP.
 */
async function connectAuditStream(env: StackEnv, port: number, vaultPid: number, log: Log): Promise<void> {
  log('connecting the audit stream (socket audit device → operator)');
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline)
      throw new Error(`the operator's audit-stream listener (:${port}) never opened`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const admin = new VaultAdmin(env);
  if (env.flavor === 'vault') return admin.enableAuditStream(port);
  writeAuditConfig(env.dir, port);
  process.kill(vaultPid, 'SIGHUP');
  await waitFor('the OpenBao socket audit device', join(env.dir, 'openbao.log'), vaultPid, async () => {
    const devices = await admin.call('GET', 'sys/audit');
    return devices !== undefined && 'ferry/' in devices;
  });
}

function saveEnv(env: StackEnv): void {
  writeFileSync(envFile(), JSON.stringify(env, null, 2));
}

/** Identifies the running operator (its pid, or its pods' uids and restarts): equal while it runs on. */
export async function operatorIncarnation(env: StackEnv): Promise<string> {
  if (env.operator?.pid !== undefined) return String(env.operator.pid);
  const kube = adminClient(env);
  try {
    return await operatorIncarnationOf(kube, env.operatorNamespace);
  } finally {
    await kube.close();
  }
}

/**
 * Starts a second operator replica (same namespace, same leader-election Lease), recorded in the
 * stack so `down` stops it: with the chart, a second release's pod (its own ports; see
 * installReplicaRelease); otherwise a process from the checkout. Stop it with stopOperatorProcess.
 */
export async function startOperatorReplica(
  log: Log,
  name: string,
  extraArgs: string[] = [],
): Promise<{ health: string; metrics: string; log: () => string }> {
  if (name === 'operator') throw new Error('the replica needs its own name');
  const env = loadStackEnv();
  if (env.chart && env.node) {
    log(`helm install ${name} (a second operator replica as a pod)`);
    const r = await installReplicaRelease(env.chart, name, extraArgs);
    const node = env.node;
    return {
      health: r.health,
      metrics: r.metrics,
      log: () => podLogs(node.podLogsDir, env.operatorNamespace, `${name}-controller-manager-`, 'manager'),
    };
  }
  const op = await startOperatorProcess(log, name, { extraArgs });
  return { health: op.health, metrics: op.metrics, log: () => readFileSync(op.log, 'utf8') };
}

/**
 * Starts the operator from this checkout as a local process named `name` (not 'operator'), as its
 * ServiceAccount, whatever the stack's mode: beside the chart's pods or instead of them (scaled to
 * zero with stopOperatorProcess('operator')). Recorded in the stack so `down` stops it; stop it with
 * stopOperatorProcess. The chaos suite runs replicas it can SIGSTOP and ones with a kill preload.
 */
export async function startOperatorProcess(
  log: Log,
  name: string,
  opts: OperatorProcessOptions = {},
): Promise<OperatorProcess> {
  if (name === 'operator') throw new Error('the process needs its own name');
  const op = await spawnOperator(loadStackEnv(), name, log, opts);
  const fresh = loadStackEnv();
  fresh.processes = [
    ...fresh.processes.filter((p) => p.name !== name),
    { name, pid: op.pid, signal: op.signal },
  ];
  saveEnv(fresh);
  return op;
}

/**
 * Stops an operator process started by startOperatorReplica, or the operator under test by name
 * ('operator': its process, or the chart's pods, scaled to zero), and waits until it is gone.
 */
export async function stopOperatorProcess(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const env = loadStackEnv();
  const p = env.processes.find((x) => x.name === name);
  if (!p && name !== 'operator' && env.chart) {
    uninstallRelease(env.chart, name);
  } else if (p) {
    await stopAll([p], () => {}, { signal, timeoutMs: 35_000 });
    const fresh = loadStackEnv();
    fresh.processes = fresh.processes.filter((x) => x.name !== name);
    if (name === 'operator') delete fresh.operator;
    saveEnv(fresh);
  } else if (name === 'operator' && env.chart) {
    const kube = adminClient(env);
    try {
      await scaleOperator(kube, env.operatorNamespace, 0);
    } finally {
      await kube.close();
    }
  }
}

/**
 * Replaces the running operator with a fresh one: the chart's pods are deleted (and, when the
 * arguments change, upgraded) and the Deployment starts new ones; a process is restarted from the
 * current checkout. `signal` decides how the old one stops: SIGTERM drains, SIGKILL crashes.
 */
export async function restartOperator(
  log: Log,
  signal: NodeJS.Signals = 'SIGTERM',
  extraArgs: string[] = [],
): Promise<StackEnv> {
  const env = loadStackEnv();
  const proc = env.processes.find((p) => p.name === 'operator');
  if (env.chart && !proc) {
    const kube = adminClient(env);
    try {
      log(`restarting the operator pods (${signal === 'SIGKILL' ? 'no grace period' : 'graceful'})`);
      if ((await operatorPods(kube, env.operatorNamespace)).length === 0) {
        await scaleOperator(kube, env.operatorNamespace, 1);
      }
      const before = await operatorPods(kube, env.operatorNamespace);
      // New arguments roll the Deployment's pods over: wait for the new ones (deleting pods while the
      // rollout runs deleted its new pod too, and waited for one pod more than it keeps).
      if (upgradeOperatorArgs(env.chart, extraArgs))
        await waitOperatorPods(
          kube,
          env.operatorNamespace,
          before.length,
          before.map((p) => p.metadata.uid ?? ''),
        );
      else await restartOperatorPods(kube, env.operatorNamespace, signal);
    } finally {
      await kube.close();
    }
    return env;
  }
  await stopAll(proc ? [proc] : [], log, { signal, timeoutMs: 35_000 });
  const rest = env.processes.filter((p) => p.name !== 'operator');
  await startOperator(env, rest, log, extraArgs);
  env.processes = rest;
  saveEnv(env);
  return env;
}

/** Back to the stack's own operator (default arguments) after a test changed it; an after() hook's
 * cleanup, so it logs a failure instead of throwing. */
export async function restoreOperator(log: Log): Promise<void> {
  await restartOperator(log, 'SIGTERM').catch((e: unknown) => log(`restore operator: ${String(e)}`));
}

/** The API server answers /readyz (which includes etcd) to the admin: `ready` for restartStackProcess. */
export async function apiServerReady(env: StackEnv): Promise<boolean> {
  const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } });
  try {
    return await httpOk(`${env.apiServer}/readyz`, agent, { authorization: `Bearer ${env.adminToken}` });
  } finally {
    await agent.close();
  }
}

/**
 * Stops one of the stack's own processes (by its name in env.json, e.g. 'kube-apiserver') with
 * `signal` (its own by default) and starts it again with the same command line, log and state;
 * records the new pid. Waits for `ready`. Returns how long it was down (ms).
 */
export async function restartStackProcess(
  name: string,
  ready: () => Promise<boolean>,
  log: Log,
  signal?: NodeJS.Signals,
  editArgs: (args: string[]) => string[] = (args) => args,
): Promise<number> {
  const env = loadStackEnv();
  const p = env.processes.find((x) => x.name === name);
  if (!p) throw new Error(`the stack has no process ${name}`);
  const [cmd, ...args] = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  if (!cmd) throw new Error(`${name} (${p.pid}) has no command line`);
  log(`restarting ${name} (pid ${p.pid}, ${signal ?? p.signal})`);
  const downAt = Date.now();
  await stopAll([p], log, signal ? { signal } : {});
  const again = start(env.dir, name, cmd, editArgs(args), { signal: p.signal });
  const fresh = loadStackEnv();
  fresh.processes = fresh.processes.map((x) => (x.name === name ? again : x));
  saveEnv(fresh);
  await waitFor(name, join(env.dir, `${name}.log`), again.pid, ready);
  return Date.now() - downAt;
}

const APF_OFF = '--enable-priority-and-fairness=false';
const APF_ON = '--enable-priority-and-fairness=true';

/**
 * Restarts the stack's kube-apiserver (SIGKILL; same port and data) with API Priority and Fairness
 * on, or (`false`) as the stack started it, waiting until `ready`; returns how long it was down (ms).
 */
export function withPriorityAndFairness(
  on: boolean,
  ready: () => Promise<boolean>,
  log: Log,
): Promise<number> {
  const apf = on || loadStackEnv().priorityAndFairness !== false;
  return restartStackProcess('kube-apiserver', ready, log, 'SIGKILL', (args) =>
    args.map((a) => (a === APF_OFF || a === APF_ON ? (apf ? APF_ON : APF_OFF) : a)),
  );
}

export async function stackDown(log: Log): Promise<void> {
  const file = envFile();
  if (!existsSync(file)) {
    log('no stack recorded; nothing to stop');
    return;
  }
  const env = JSON.parse(readFileSync(file, 'utf8')) as StackEnv;
  const isOperator = (p: Started): boolean => p.name.startsWith('operator');
  const nodeParts = new Set(['containerd', 'kubelet', 'kube-scheduler']);
  // The operator first, while the API server can still take its lease release; then the node, whose
  // pods are deleted through the API (no controller-manager left to recreate them); then the rest.
  await stopAll(env.processes.filter(isOperator), log);
  await stopAll(
    env.processes.filter((p) => p.name === 'kube-controller-manager'),
    log,
  );
  if (env.node) {
    const apiUp = env.processes.some((p) => p.name === 'kube-apiserver') && existsSync(env.caFile);
    const kube = apiUp ? adminClient(env) : undefined;
    try {
      await stopNode(env.node, env.processes, kube, log);
    } finally {
      await kube?.close();
    }
  }
  await stopAll(
    env.processes.filter(
      (p) => !isOperator(p) && !nodeParts.has(p.name) && p.name !== 'kube-controller-manager',
    ),
    log,
  );
  rmSync(env.dir, { recursive: true, force: true });
  rmSync(file, { force: true });
  log('stack is down');
}
