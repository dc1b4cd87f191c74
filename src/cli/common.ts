// What the long-running entry points (operator, csi-driver) share: the secret-safe logger, where the
// operator namespace comes from, VSO's global option lists, the Kubernetes client, build info, and
// shutdown on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import pkg from '../../package.json' with { type: 'json' };
import { type BackoffPolicy, VSO_SOURCE_BACKOFF, validateBackoffPolicy } from '../backoff.ts';
import { CODES, errorMessage, FerryError, messageWithCauses } from '../errors.ts';
import { KubeClient } from '../k8s/client.ts';
import { loadKubeConnection } from '../k8s/config.ts';
import type { RateLimit } from '../k8s/ratelimit.ts';
import { type MetricsRegistry, registerBuildInfo } from '../metrics/registry.ts';
import { parseDuration } from '../template/duration.ts';
import { setVaultAddressAllowlist } from '../vault/address-policy.ts';
import { DEFAULT_CACHE_SIZE } from '../vault/cache.ts';
import {
  DEFAULT_CA_CERT_DIR,
  DEFAULT_SECRET_ID_DIR,
  setCaCertDir,
  setSecretIdDir,
} from '../vault/confined-file.ts';

type Env = NodeJS.ProcessEnv;

/** The flags both long-running entry points take (parseArgs options). */
export const COMMON_FLAGS = {
  kubeconfig: { type: 'string' },
  'operator-namespace': { type: 'string' },
  'health-probe-bind-address': { type: 'string', default: ':8081' },
  'global-transformation-options': { type: 'string' },
  'global-vault-auth-options': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  'ca-cert-dir': { type: 'string' },
  'approle-secret-id-dir': { type: 'string' },
  'vault-address-allowlist': { type: 'string' },
} as const;

type CommonValues = { [K in keyof typeof COMMON_FLAGS]?: string | undefined };

/** The Vault session cache both entry points hold (vault/cache.ts): its bound, and the sessions one
 * namespace may hold in it, so one tenant's resources or pods cannot evict everyone else's. */
export const CLIENT_CACHE_FLAGS = {
  'client-cache-size': { type: 'string' },
  'client-cache-namespace-quota': { type: 'string' },
} as const;

const positiveInt = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isInteger(n) && n > 0 ? n : undefined;
};

/** `--client-cache-size` (env VSO_CLIENT_CACHE_SIZE; default 10000) and
 * `--client-cache-namespace-quota` (env FERRY_CLIENT_CACHE_NAMESPACE_QUOTA; unset, or not a positive
 * integer: a tenth of the size, the cache's own default). */
export function clientCacheOptions(
  values: { [K in keyof typeof CLIENT_CACHE_FLAGS]?: string | undefined },
  env: Env,
): { clientCacheSize: number; clientCacheNamespaceQuota?: number } {
  const quota = positiveInt(values['client-cache-namespace-quota'] ?? env.FERRY_CLIENT_CACHE_NAMESPACE_QUOTA);
  return {
    clientCacheSize:
      positiveInt(values['client-cache-size'] ?? env.VSO_CLIENT_CACHE_SIZE) ?? DEFAULT_CACHE_SIZE,
    ...(quota ? { clientCacheNamespaceQuota: quota } : {}),
  };
}

/** What both entry points set up from the common flags: the confined file directories, the
 * Kubernetes client, the operator namespace, VSO's global options, and `stop` (SIGTERM/SIGINT). */
export function setUp(
  values: CommonValues,
  env: Env,
  userAgent: string,
  logger: Logger,
  rateLimit?: RateLimit,
) {
  configureConfinement(values, env);
  return {
    client: kubeClient(values.kubeconfig, env, userAgent, rateLimit),
    operatorNamespace: operatorNamespace(values['operator-namespace'], env),
    globals: { ...globalOptions(values, env), env },
    stop: stopSignal(logger),
  };
}

/** Secret material never reaches the log: Vault tokens, JWTs and Secret data are redacted wherever a
 * caller might pass them in a log object. */
export function secretSafeLogger(level: string | undefined, destination?: DestinationStream): Logger {
  return pino(
    {
      level: level ?? 'info',
      redact: {
        paths: ['*.token', '*.client_token', '*.jwt', '*.data', '*.secret_id', 'headers.authorization'],
        censor: '[redacted]',
      },
      serializers: { err: serializeError },
    },
    destination,
  );
}

/** pino's err serializer, with each cause's message said once (messageWithCauses). */
function serializeError(err: Error): ReturnType<typeof pino.stdSerializers.err> {
  const out = pino.stdSerializers.err(err);
  if ((out as unknown) !== err) out.message = messageWithCauses(err);
  return out;
}

/** The flag, else the pod's own namespace (ServiceAccount mount), else OPERATOR_NAMESPACE, else default. */
function operatorNamespace(flag: string | undefined, env: Env): string {
  if (flag) return flag;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return env.OPERATOR_NAMESPACE || 'default';
  }
}

/** A listen address flag: '' or '0' turns the listener off. */
export const listenAddress = (v: string | undefined): string | null =>
  v === undefined || v === '0' || v === '' ? null : v;

const list = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** VSO's --global-transformation-options and --global-vault-auth-options (or their env twins). */
function globalOptions(
  values: {
    'global-transformation-options'?: string | undefined;
    'global-vault-auth-options'?: string | undefined;
  },
  env: Env,
): { globalExcludeRaw: boolean; allowDefaultGlobals: boolean } {
  const transform = list(values['global-transformation-options'] ?? env.VSO_GLOBAL_TRANSFORMATION_OPTIONS);
  const auth = list(
    values['global-vault-auth-options'] ?? env.VSO_GLOBAL_VAULT_AUTH_OPTIONS ?? 'allow-default-globals',
  );
  return {
    globalExcludeRaw: transform.includes('exclude-raw'),
    allowDefaultGlobals: auth.includes('allow-default-globals'),
  };
}

export interface BackoffFlags {
  'backoff-initial-interval'?: string | undefined;
  'backoff-max-interval'?: string | undefined;
  'backoff-max-elapsed-time'?: string | undefined;
  'backoff-multiplier'?: string | undefined;
  'backoff-randomization-factor'?: string | undefined;
}

/** VSO's --backoff-* flags (env VSO_BACKOFF_*): the retry backoff after a Vault (secret source)
 * error, over VSO's defaults. Durations are Go durations; a bad value is a config error. */
export function sourceBackoff(values: BackoffFlags, env: Env): BackoffPolicy {
  const pick = (flag: keyof BackoffFlags, envName: string): string | undefined => {
    const v = values[flag] ?? env[envName];
    return v === undefined || v === '' ? undefined : v;
  };
  const bad = (flag: string, v: string, want: string) =>
    new FerryError(CODES.INVALID_CONFIG, `invalid --${flag} ${JSON.stringify(v)}: want ${want}`);
  const ms = (flag: keyof BackoffFlags, envName: string, fallback: number, min: number): number => {
    const v = pick(flag, envName);
    if (v === undefined) return fallback;
    const ns = parseDuration(v);
    if (ns === undefined || ns < BigInt(min) * 1_000_000n) {
      throw bad(flag, v, `a duration of at least ${min} ms, such as 5s`);
    }
    return Number(ns / 1_000_000n);
  };
  const num = (flag: keyof BackoffFlags, envName: string, fallback: number, ok: (n: number) => boolean) => {
    const v = pick(flag, envName);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || !ok(n)) throw bad(flag, v, 'a number in range');
    return n;
  };
  const d = VSO_SOURCE_BACKOFF;
  const policy: BackoffPolicy = {
    ...d,
    initialMs: ms('backoff-initial-interval', 'VSO_BACKOFF_INITIAL_INTERVAL', d.initialMs, 1),
    maxMs: ms('backoff-max-interval', 'VSO_BACKOFF_MAX_INTERVAL', d.maxMs, 1),
    maxElapsedMs: ms('backoff-max-elapsed-time', 'VSO_BACKOFF_MAX_ELAPSED_TIME', d.maxElapsedMs, 0),
    multiplier: num('backoff-multiplier', 'VSO_BACKOFF_MULTIPLIER', d.multiplier, (n) => n >= 1),
    jitter: num(
      'backoff-randomization-factor',
      'VSO_BACKOFF_RANDOMIZATION_FACTOR',
      d.jitter,
      (n) => n >= 0 && n <= 1,
    ),
  };
  try {
    validateBackoffPolicy(policy);
  } catch (err) {
    throw new FerryError(CODES.INVALID_CONFIG, `invalid --backoff-* flags: ${errorMessage(err)}`);
  }
  return policy;
}

/** What a tenant may make the process read or reach: the directories tenant-named files must lie in,
 * `--ca-cert-dir` (env FERRY_CA_CERT_DIR) for VaultConnection.caCertPath, `--approle-secret-id-dir`
 * (env FERRY_APPROLE_SECRET_ID_DIR) for VaultAuth.appRole.secretIDPath, and the Vault addresses a
 * VaultConnection may name, `--vault-address-allowlist` (env FERRY_VAULT_ADDRESS_ALLOWLIST, comma
 * separated; empty allows all). */
function configureConfinement(
  values: {
    'ca-cert-dir'?: string | undefined;
    'approle-secret-id-dir'?: string | undefined;
    'vault-address-allowlist'?: string | undefined;
  },
  env: Env,
): void {
  setCaCertDir(values['ca-cert-dir'] ?? env.FERRY_CA_CERT_DIR ?? DEFAULT_CA_CERT_DIR);
  setSecretIdDir(values['approle-secret-id-dir'] ?? env.FERRY_APPROLE_SECRET_ID_DIR ?? DEFAULT_SECRET_ID_DIR);
  setVaultAddressAllowlist(list(values['vault-address-allowlist'] ?? env.FERRY_VAULT_ADDRESS_ALLOWLIST));
}

export function kubeClient(
  kubeconfig: string | undefined,
  env: Env,
  userAgent: string,
  rateLimit?: RateLimit,
): KubeClient {
  return new KubeClient(loadKubeConnection({ ...(kubeconfig ? { kubeconfig } : {}), env }), {
    userAgent,
    ...(rateLimit ? { rateLimit } : {}),
  });
}

export function buildInfo(registry: MetricsRegistry, env: Env): void {
  registerBuildInfo(registry, {
    version: pkg.version,
    gitCommit: env.FERRY_GIT_COMMIT ?? 'unknown',
    nodeVersion: process.version,
    platform: `${process.platform}/${process.arch}`,
  });
}

/** Resolves once the signal has aborted (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Aborts on the first SIGTERM or SIGINT, logging which. */
function stopSignal(logger: Logger): AbortSignal {
  const stop = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      logger.info({ signal: sig }, 'shutting down');
      stop.abort();
    });
  }
  return stop.signal;
}
