// The PKI data both delivery models write: a certificate as destination Secret data (VaultPKISecret)
// or as volume files (CSI vaultPKISecrets), and the expiryOffset rule that decides when to re-issue.
import { parseDuration } from '../api/validate.ts';
import { type PKICertificate, tlsSecretData } from '../vault/pki.ts';
import { makeSecretData } from './secret-data.ts';

export const TLS_TYPE = 'kubernetes.io/tls';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** spec.expiryOffset in ms; VSO tolerates an unparseable value as 0. */
export function expiryOffsetMs(value: string | undefined): number {
  if (!value) return 0;
  try {
    return parseDuration(value, { allowDays: true });
  } catch {
    return 0;
  }
}

/**
 * The destination `.data` (wire form) for an issued certificate: VSO's makeK8sData over the response
 * keys (templates, `_raw`, filters), `ca_chain` newline-joined, and for a `kubernetes.io/tls`
 * destination without templates the TLS keys of tlsSecretData on top.
 */
export function pkiSecretData(
  cert: PKICertificate,
  shaping: Parameters<typeof makeSecretData>[2],
  destinationType: string | undefined,
): Record<string, string> {
  const data = makeSecretData(cert.data, cert.data, shaping);
  if (data.ca_chain !== undefined && cert.caChain.length > 0) data.ca_chain = b64(cert.caChain.join('\n'));
  const templated = Object.keys(shaping?.rendered ?? {}).length > 0;
  if (destinationType === TLS_TYPE && !templated) {
    for (const [k, v] of Object.entries(tlsSecretData(cert))) data[k] = b64(v);
  }
  return data;
}
