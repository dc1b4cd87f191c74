// Defence in depth: an error raised while shaping secret data (templates, filters, encodings) may
// quote the data it choked on. Before such a message reaches status, an Event or the log, every
// string found in the secret data is replaced.
const MIN_LENGTH = 3; // shorter values would blank out ordinary words

function collect(value: unknown, out: Set<string>): void {
  if (typeof value === 'string') {
    if (value.length >= MIN_LENGTH) out.add(value);
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    const s = String(value);
    if (s.length >= MIN_LENGTH) out.add(s);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) collect(v, out);
  }
}

export function redactSecretValues(message: string, secretData: unknown): string {
  const values = new Set<string>();
  collect(secretData, values);
  // Longest first, so a value containing another is replaced whole.
  let out = message;
  for (const v of [...values].sort((a, b) => b.length - a.length)) out = out.split(v).join('<redacted>');
  return out;
}
