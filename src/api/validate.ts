// Runtime checks the CRD schema cannot express: reference strings, durations and cross-field rules.
// Controllers call these; a non-empty problem list means the spec needs user action (terminal).
import { isAbsolute } from 'node:path';
import { RE2JS } from 're2js';
import { CODES, FerryError } from '../errors.ts';
import { DURATION_PATTERN, DURATION_WITH_DAYS_PATTERN } from './patterns.ts';
import type { Transformation } from './v1beta1/common.ts';
import type { CSISecretsSpec } from './v1beta1/csisecrets.ts';
import type { VaultAuthSpec } from './v1beta1/vaultauth.ts';
import type { VaultConnectionSpec } from './v1beta1/vaultconnection.ts';

export interface ObjectRef {
  namespace: string;
  name: string;
}

/** One spec problem: `field` is a JSON path below the object, e.g. `spec.appRole.secretRef`. */
export interface Problem {
  field: string;
  message: string;
}

/**
 * Resolves a `vaultAuthRef` / `vaultConnectionRef` / `hcpAuthRef` string:
 * `"<ns>/<name>"` → that object; `"<name>"` → in the referrer's namespace;
 * empty or unset → `<operatorNamespace>/default`. More than one `/` or an empty part is an error.
 */
export function parseRef(
  ref: string | undefined,
  ctx: { namespace: string; operatorNamespace: string },
): ObjectRef {
  if (ref === undefined || ref === '') return { namespace: ctx.operatorNamespace, name: 'default' };
  const parts = ref.split('/');
  if (parts.length === 1) return { namespace: ctx.namespace, name: ref };
  const [namespace, name] = parts;
  if (parts.length > 2 || !namespace || !name) {
    throw new FerryError(
      CODES.INVALID_REF,
      `invalid reference "${ref}": expected "<namespace>/<name>" or "<name>"`,
    );
  }
  return { namespace, name };
}

const DURATION_RE = new RegExp(DURATION_PATTERN);
const DURATION_WITH_DAYS_RE = new RegExp(DURATION_WITH_DAYS_PATTERN);
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Parses a duration of the CRD pattern (`30s`, `1.5m`, `24h`; `7d` only with allowDays) into
 * milliseconds, rounded to the nearest millisecond. Throws FerryError(INVALID_CONFIG) otherwise.
 */
export function parseDuration(value: string, opts: { allowDays?: boolean } = {}): number {
  const re = opts.allowDays ? DURATION_WITH_DAYS_RE : DURATION_RE;
  if (!re.test(value)) {
    throw new FerryError(CODES.INVALID_CONFIG, `invalid duration "${value}": expected e.g. 30s, 1.5m or 24h`);
  }
  const unit = UNIT_MS[value.slice(-1) as keyof typeof UNIT_MS];
  const [whole = '0', frac = ''] = value.slice(0, -1).split('.');
  // Whole and fractional parts are scaled separately so that 0.1h is exactly 360000 ms.
  const ms = Number(whole) * unit + (frac === '' ? 0 : Math.round(Number(`0.${frac}`) * unit));
  if (!Number.isSafeInteger(ms))
    throw new FerryError(CODES.INVALID_CONFIG, `duration "${value}" is too large`);
  return ms;
}

/** The shortest polling period Ferry schedules: a sub-second refreshAfter polls Vault in a tight loop
 * (`0s` used to requeue at once, ~99,000 reconciles per second for one object). */
export const MIN_REFRESH_AFTER_MS = 1000;

/**
 * `refreshAfter` as a polling period in milliseconds, or undefined when unset or zero: VSO never
 * requeues after a zero horizon, so `0s` means "no periodic refresh" (the 60 s HMAC drift poll of a
 * VaultStaticSecret still applies, as in VSO). Shorter positive periods are raised to the minimum.
 */
export function refreshPeriodMs(refreshAfter: string | undefined): number | undefined {
  if (!refreshAfter) return undefined;
  const ms = parseDuration(refreshAfter);
  return ms === 0 ? undefined : Math.max(ms, MIN_REFRESH_AFTER_MS);
}

/** A path inside the operator pod: absolute and free of `..` segments. */
function checkPodPath(field: string, path: string, problems: Problem[]): void {
  if (!isAbsolute(path)) problems.push({ field, message: 'must be an absolute path' });
  if (path.split('/').includes('..')) problems.push({ field, message: 'must not contain ".."' });
}

function checkRegexes(field: string, patterns: readonly string[] | undefined, problems: Problem[]): void {
  for (const [i, pattern] of (patterns ?? []).entries()) checkRegex(`${field}[${i}]`, pattern, problems);
}

function checkRegex(field: string, pattern: string, problems: Problem[]): void {
  try {
    RE2JS.compile(pattern);
  } catch (err) {
    problems.push({ field, message: `invalid RE2 regular expression: ${(err as Error).message}` });
  }
}

export function validateVaultConnection(spec: VaultConnectionSpec): Problem[] {
  const problems: Problem[] = [];
  let url: URL | undefined;
  try {
    url = new URL(spec.address);
  } catch {
    problems.push({ field: 'spec.address', message: 'must be an absolute URL' });
  }
  if (url && url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push({ field: 'spec.address', message: 'scheme must be http or https' });
  }
  if (spec.caCertSecretRef && spec.caCertPath) {
    problems.push({
      field: 'spec.caCertPath',
      message: 'caCertSecretRef and caCertPath are mutually exclusive',
    });
  }
  if (spec.caCertPath) checkPodPath('spec.caCertPath', spec.caCertPath, problems);
  for (const name of Object.keys(spec.headers ?? {})) {
    if (name.toLowerCase() === 'x-vault-namespace') {
      problems.push({
        field: `spec.headers.${name}`,
        message: 'the Vault namespace cannot be set as a header; use the namespace fields instead',
      });
    }
  }
  return problems;
}

/**
 * Checks a VaultAuth spec as it will be used for login, i.e. after any VaultAuthGlobal was merged in
 * (method and mount may legitimately be empty before the merge).
 */
export function validateVaultAuth(spec: VaultAuthSpec): Problem[] {
  const problems: Problem[] = [];
  const need = (field: string, value: string | undefined) => {
    if (!value) problems.push({ field, message: 'is required' });
  };
  need('spec.method', spec.method);
  need('spec.mount', spec.mount);
  switch (spec.method) {
    case 'kubernetes':
      need('spec.kubernetes.role', spec.kubernetes?.role);
      need('spec.kubernetes.serviceAccount', spec.kubernetes?.serviceAccount);
      break;
    case 'jwt':
      need('spec.jwt.role', spec.jwt?.role);
      if (!spec.jwt?.secretRef && !spec.jwt?.serviceAccount) {
        problems.push({ field: 'spec.jwt', message: 'one of secretRef or serviceAccount is required' });
      }
      break;
    case 'appRole':
      need('spec.appRole.roleId', spec.appRole?.roleId);
      if (spec.appRole?.secretRef && spec.appRole.secretIDPath) {
        problems.push({
          field: 'spec.appRole',
          message: 'secretRef and secretIDPath are mutually exclusive',
        });
      } else if (!spec.appRole?.secretRef && !spec.appRole?.secretIDPath) {
        problems.push({ field: 'spec.appRole', message: 'one of secretRef or secretIDPath is required' });
      }
      break;
    case 'aws':
      need('spec.aws.role', spec.aws?.role);
      break;
    case 'gcp':
      need('spec.gcp.role', spec.gcp?.role);
      need('spec.gcp.workloadIdentityServiceAccount', spec.gcp?.workloadIdentityServiceAccount);
      break;
    case undefined:
      break;
  }
  if (spec.appRole?.secretIDPath)
    checkPodPath('spec.appRole.secretIDPath', spec.appRole.secretIDPath, problems);
  return problems;
}

/** Include/exclude filters must be RE2 patterns (Go regexp semantics, as upstream). */
export function validateTransformation(field: string, t: Transformation | undefined): Problem[] {
  const problems: Problem[] = [];
  checkRegexes(`${field}.includes`, t?.includes, problems);
  checkRegexes(`${field}.excludes`, t?.excludes, problems);
  return problems;
}

export function validateCSISecrets(spec: CSISecretsSpec): Problem[] {
  const problems: Problem[] = [];
  const ac = spec.accessControl;
  checkRegex('spec.accessControl.serviceAccountPattern', ac.serviceAccountPattern, problems);
  checkRegexes('spec.accessControl.namespacePatterns', ac.namespacePatterns, problems);
  checkRegexes('spec.accessControl.podNamePatterns', ac.podNamePatterns, problems);
  const cs = spec.syncConfig?.containerState;
  if (cs?.namePattern) checkRegex('spec.syncConfig.containerState.namePattern', cs.namePattern, problems);
  if (cs?.imagePattern) checkRegex('spec.syncConfig.containerState.imagePattern', cs.imagePattern, problems);
  problems.push(...validateTransformation('spec.secrets.transformation', spec.secrets.transformation));
  const lists = [
    'vaultStaticSecrets',
    'vaultAppRoleSecretIDs',
    'vaultDynamicSecrets',
    'vaultPKISecrets',
  ] as const;
  for (const list of lists) {
    for (const [i, s] of (spec.secrets[list] ?? []).entries()) {
      problems.push(...validateTransformation(`spec.secrets.${list}[${i}].transformation`, s.transformation));
    }
  }
  return problems;
}
