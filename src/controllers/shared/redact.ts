// Defence in depth: an error raised while shaping or writing secret data (templates, filters,
// encodings, the destination write) may quote the data it choked on. Before such a message reaches
// status, an Event or the log, every string found in the secret data is replaced, and its base64
// form too (what a Secret holds, and so what an admission webhook or policy rejecting the write
// sees and may quote). The one home for it: every secret kind wraps such errors with redactError
// where the data is at hand.
import { CODES, errorMessage, FerryError, isFerryError } from '../../errors.ts';

const MIN_LENGTH = 3; // shorter values would blank out ordinary words

function collect(value: unknown, out: Set<string>): void {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    const s = String(value);
    if (s.length < MIN_LENGTH) return;
    out.add(s);
    out.add(Buffer.from(s, 'utf8').toString('base64'));
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) collect(v, out);
  }
}

/** `err` with every value of `secretData` replaced in its message. Its code is kept; its cause is
 * dropped, as the cause may quote the data too and the controller logs errors with their causes. */
export function redactError(err: unknown, secretData: unknown): FerryError {
  return new FerryError(
    isFerryError(err) ? err.code : CODES.SECRET_DATA,
    redactSecretValues(errorMessage(err), secretData),
  );
}

export function redactSecretValues(message: string, secretData: unknown): string {
  const values = new Set<string>();
  collect(secretData, values);
  // Longest first, so a value containing another is replaced whole.
  let out = message;
  for (const v of [...values].sort((a, b) => b.length - a.length)) out = out.split(v).join('<redacted>');
  return out;
}
