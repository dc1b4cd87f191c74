// PKI secrets engine: issue and revoke certificates, the renewal window of a certificate, and the
// `kubernetes.io/tls` layout of an issue response (vso-api.md §3.6, §5, §8).
//
// Issue responses carry a private key. Nothing here logs, and errors built here name paths and
// fields, never values; VaultError never quotes response bodies.

import type { Random } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import { isRecord, type RequestOptions, type VaultApi } from './client.ts';
import { isVaultError } from './errors.ts';

/** The request side of a VaultPKISecret spec. */
export interface PKIIssueSpec {
  mount: string;
  role: string;
  issuerRef?: string | undefined;
  commonName?: string | undefined;
  altNames?: readonly string[] | undefined;
  ipSans?: readonly string[] | undefined;
  uriSans?: readonly string[] | undefined;
  otherSans?: readonly string[] | undefined;
  userIDs?: readonly string[] | undefined;
  ttl?: string | undefined;
  format?: string | undefined;
  privateKeyFormat?: string | undefined;
  notAfter?: string | undefined;
  excludeCNFromSans?: boolean | undefined;
}

export interface PKICertificate {
  serialNumber: string;
  /** Unix seconds. */
  expiration: number;
  certificate: string;
  issuingCA: string;
  caChain: string[];
  privateKey: string;
  /** The response `data` as Vault returned it: the source keys of the destination Secret. */
  data: Record<string, unknown>;
}

const trimSlashes = (s: string): string => s.replace(/^\/+|\/+$/g, '');

function segment(what: string, value: string): string {
  const v = trimSlashes(value);
  if (v === '' || v.includes('/')) {
    throw new FerryError(CODES.VAULT_CONFIG, `PKI ${what} must be a non-empty name without "/"`);
  }
  return v;
}

function mountOf(mount: string): string {
  const m = trimSlashes(mount);
  if (m === '') throw new FerryError(CODES.VAULT_CONFIG, 'PKI mount must not be empty');
  return m;
}

/**
 * `<mount>/issue/<role>`, or `<mount>/issuer/<issuerRef>/issue/<role>` with an issuer.
 *
 * VSO builds `<mount>/issuer/<issuerRef>/<role>` (controllers/vaultpkisecret_controller.go getPath),
 * which Vault and OpenBao answer with "unsupported path": the PKI engine's issuer-scoped issue
 * endpoint is `issuer/:issuer_ref/issue/:role`. Ferry uses the endpoint that exists.
 */
export function issuePath(spec: Pick<PKIIssueSpec, 'mount' | 'role' | 'issuerRef'>): string {
  const mount = mountOf(spec.mount);
  const role = segment('role', spec.role);
  return spec.issuerRef
    ? `${mount}/issuer/${segment('issuerRef', spec.issuerRef)}/issue/${role}`
    : `${mount}/issue/${role}`;
}

export function revokePath(mount: string): string {
  return `${mountOf(mount)}/revoke`;
}

/**
 * The issue request body, field for field VSO's GetIssuerAPIData. Differences, none visible to Vault:
 * empty fields are left out rather than sent as "" (Vault treats both as unset), and the list fields
 * Vault declares as comma-string slices (ip_sans, uri_sans, other_sans, user_ids) are sent as JSON
 * arrays, so a value containing a comma (a URI, an other_sans UTF8 value) is not split. `alt_names`
 * is a plain string field in Vault and is comma-joined as VSO does.
 */
export function issueRequestBody(spec: PKIIssueSpec): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const list = (key: string, v: readonly string[] | undefined): void => {
    const items = (v ?? []).filter((s) => s !== '');
    if (items.length > 0) body[key] = [...items];
  };
  const str = (key: string, v: string | undefined): void => {
    if (v) body[key] = v;
  };
  str('common_name', spec.commonName);
  const alt = (spec.altNames ?? []).filter((s) => s !== '');
  if (alt.length > 0) body.alt_names = alt.join(',');
  list('ip_sans', spec.ipSans);
  list('uri_sans', spec.uriSans);
  list('other_sans', spec.otherSans);
  list('user_ids', spec.userIDs);
  str('ttl', spec.ttl);
  str('format', spec.format);
  str('private_key_format', spec.privateKeyFormat);
  str('not_after', spec.notAfter);
  body.exclude_cn_from_sans = spec.excludeCNFromSans === true;
  body.remove_roots_from_chain = true;
  return body;
}

function malformed(path: string, field: string): FerryError {
  return new FerryError(CODES.VAULT_API, `PKI issue response from ${path} has no valid ${field}`);
}

/** Validates an issue response's `data`. Exported for tests. */
export function parseIssueResponse(path: string, data: unknown): PKICertificate {
  if (!isRecord(data)) throw malformed(path, 'data');
  const serial = data.serial_number;
  if (typeof serial !== 'string' || serial === '') throw malformed(path, 'serial_number');
  const exp = typeof data.expiration === 'string' ? Number(data.expiration) : data.expiration;
  // Unix seconds: beyond 2^53 it is no time a certificate can have (and no integer status can hold).
  if (typeof exp !== 'number' || !(exp >= 1 && exp <= Number.MAX_SAFE_INTEGER))
    throw malformed(path, 'expiration');
  const certificate = data.certificate;
  if (typeof certificate !== 'string' || certificate === '') throw malformed(path, 'certificate');
  const privateKey = typeof data.private_key === 'string' ? data.private_key : '';
  const issuingCA = typeof data.issuing_ca === 'string' ? data.issuing_ca : '';
  const rawChain = data.ca_chain;
  let caChain: string[] = [];
  if (Array.isArray(rawChain))
    caChain = rawChain.filter((c): c is string => typeof c === 'string' && c !== '');
  else if (rawChain !== undefined && rawChain !== null) throw malformed(path, 'ca_chain');
  return {
    serialNumber: serial,
    expiration: Math.trunc(exp),
    certificate,
    issuingCA,
    caChain,
    privateKey,
    data,
  };
}

export async function issueCertificate(
  api: VaultApi,
  spec: PKIIssueSpec,
  signal?: AbortSignal,
): Promise<PKICertificate> {
  const path = issuePath(spec);
  const opts: RequestOptions = signal ? { signal } : {};
  const res = await api.write(path, issueRequestBody(spec), opts);
  return parseIssueResponse(path, res?.data);
}

/**
 * Revokes a certificate by serial. A serial Vault no longer knows (tidied after expiry) counts as
 * revoked: there is nothing left to do. Vault answers an already expired certificate with a warning
 * and status 200.
 */
export async function revokeCertificate(
  api: VaultApi,
  mount: string,
  serialNumber: string,
  signal?: AbortSignal,
): Promise<void> {
  const opts: RequestOptions = signal ? { signal } : {};
  try {
    await api.write(revokePath(mount), { serial_number: serialNumber }, opts);
  } catch (err) {
    if (isVaultError(err) && err.errors.some((e) => /certificate with serial .* not found/i.test(e))) return;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------
// Renewal window (vso-api.md §8)

/** VSO's minimum horizon. */
export const MIN_HORIZON_MS = 1_000;
/** VSO's PKI jitter fraction. */
export const PKI_JITTER = 0.05;

export interface RenewalInput {
  nowMs: number;
  /** Certificate expiry, unix seconds (status.expiration). */
  expiration: number;
  /** spec.expiryOffset in milliseconds; negative counts as 0. */
  expiryOffsetMs: number;
  /** When the certificate was issued, unix seconds (status.lastRotation); 0 or unset if unknown. */
  lastRotation?: number | undefined;
}

export interface RenewalWindow {
  /** How long to wait before the next look; ≥ MIN_HORIZON_MS. */
  horizonMs: number;
  /** The certificate must be renewed now. */
  inWindow: boolean;
  /** Start of the renewal window, epoch ms. */
  rotationAtMs: number;
  /** The offset covered the whole lifetime and was clamped (see below). */
  offsetClamped: boolean;
}

/**
 * VSO's computePKIRenewalWindow, with two defects fixed:
 *
 *   rotationAt = expiration − expiryOffset;  remaining = rotationAt − now
 *   remaining < 1 s                → inWindow, horizon = 1 s + rand[0, 5 % × 1 s)
 *   expiryOffset > 0 (a window)    → horizon = remaining + rand[0, 5 % × min(remaining, offset))
 *   expiryOffset = 0 (no window)   → horizon = max(1 s, remaining − rand[0, 5 % × remaining))
 *
 * 1. VSO's upward jitter is 5 % of the whole horizon, so a 90-day certificate with a 1 h offset can
 *    be scheduled 4.5 days after it expired. Here the jitter is also bounded by 5 % of the window,
 *    so the next look always lands inside [rotationAt, expiration): it renews there, and a failed
 *    renewal keeps ≥ 95 % of the window for retries.
 * 2. An offset at least as long as the certificate's whole lifetime (a role whose max_ttl truncates
 *    the requested ttl, or a ttl shorter than the offset) puts every fresh certificate inside the
 *    window: VSO then re-issues every second, forever. When the issue time is known, such an offset
 *    is clamped to a third of the lifetime (renewal at two thirds, like a lease at renewalPercent
 *    67) and reported through `offsetClamped`.
 *
 * Without a window (offset 0) the downward jitter converges on expiry: each look leaves at most 5 %
 * of the remaining time, so renewal happens in the last second, as VSO does.
 */
export function renewalWindow(input: RenewalInput, random: Random): RenewalWindow {
  const expiresAtMs = input.expiration * 1000;
  let offset = Math.max(0, input.expiryOffsetMs);
  let offsetClamped = false;
  const issuedAt = input.lastRotation ? input.lastRotation * 1000 : 0;
  if (offset > 0 && issuedAt > 0 && expiresAtMs > issuedAt && offset >= expiresAtMs - issuedAt) {
    offset = (expiresAtMs - issuedAt) / 3;
    offsetClamped = true;
  }
  const rotationAtMs = expiresAtMs - offset;
  const remaining = rotationAtMs - input.nowMs;
  let horizonMs: number;
  let inWindow = false;
  if (remaining < MIN_HORIZON_MS) {
    inWindow = true;
    horizonMs = MIN_HORIZON_MS + random() * PKI_JITTER * MIN_HORIZON_MS;
  } else if (offset > 0) {
    horizonMs = remaining + random() * PKI_JITTER * Math.min(remaining, offset);
  } else {
    horizonMs = Math.max(MIN_HORIZON_MS, remaining - random() * PKI_JITTER * remaining);
  }
  return { horizonMs, inWindow, rotationAtMs, offsetClamped };
}

// ---------------------------------------------------------------------------------------------------
// kubernetes.io/tls layout (vso-api.md §8)

/**
 * The keys a `kubernetes.io/tls` destination gets on top of the response keys (plain text; the
 * caller encodes). As VSO: `tls.key` is the private key, `tls.crt` the certificate followed by
 * `ca_chain` (newline-joined), or by `issuing_ca` when the chain is empty.
 *
 * `ca.crt` (VSO #178: missing whenever `ca_chain` is set) is always the issuing CA:
 * - it is what VSO writes when the chain is empty, so the key means the same thing whatever the
 *   mount's chain configuration, and does not change between an empty and a non-empty chain;
 * - it is the certificate that signed the leaf in `tls.crt`, so peers from the same issuer verify
 *   against it (Go accepts any pool certificate as an anchor; OpenSSL with -partial_chain);
 * - "the root of the chain" is not available: every request sends remove_roots_from_chain=true,
 *   which strips self-signed certificates from `ca_chain`, so its last entry is the topmost
 *   intermediate — neither the issuer nor a trust anchor. With a root issuer the two coincide.
 */
export function tlsSecretData(
  cert: Pick<PKICertificate, 'certificate' | 'issuingCA' | 'caChain' | 'privateKey'>,
): Record<string, string> {
  const chain = cert.caChain.join('\n');
  const extra = chain !== '' ? chain : cert.issuingCA;
  const out: Record<string, string> = {
    'tls.crt': extra !== '' ? `${cert.certificate}\n${extra}` : cert.certificate,
    'tls.key': cert.privateKey,
  };
  if (cert.issuingCA !== '') out['ca.crt'] = cert.issuingCA;
  return out;
}
