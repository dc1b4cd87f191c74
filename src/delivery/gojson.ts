// JSON exactly as Go's encoding/json.Marshal writes it, so `_raw`, non-string values and the HMAC
// input are byte-identical to VSO's (a migrated Secret keeps its MAC): map keys sorted byte-wise,
// <, >, & and U+2028/U+2029 escaped, no trailing newline.
import { CODES, FerryError } from '../errors.ts';
import { numberSource } from '../vault/client.ts';

const goEscapes: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

// Without surrogates a UTF-16 code unit is a code point, and UTF-8 orders as code points do: plain
// string comparison then gives the byte order without encoding both strings on every comparison.
const SURROGATE = /[\uD800-\uDFFF]/;

export function byteOrder(a: string, b: string): number {
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Deeper values are refused (Go's decoder stops at 10,000 levels; a JS stack overflows first). */
const MAX_DEPTH = 1000;

/** `value` as Go writes it. Objects are written here, not by JSON.stringify: JS orders integer-like
 * keys ("10", "9") before all others whatever the insertion order, Go orders every key byte-wise. */
function encode(value: unknown, holder: object | undefined, key: string | undefined, depth: number): string {
  if (typeof value === 'number' && holder !== undefined && key !== undefined) {
    const text = numberSource(holder, key);
    if (text !== undefined) return text;
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (depth >= MAX_DEPTH)
    throw new FerryError(CODES.SECRET_DATA, `secret data is nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value))
    return `[${value.map((x, i) => encode(x, value, String(i), depth + 1)).join(',')}]`;
  const parts: string[] = [];
  for (const k of Object.keys(value).sort(byteOrder)) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) parts.push(`${JSON.stringify(k)}:${encode(v, value, k, depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/** `value` as encoding/json.Marshal writes it; `holder[key]` is where it came from, if anywhere (so a
 * number keeps the text Vault sent, as json.Number marshals). */
export function goJson(value: unknown, holder?: object, key?: string): string {
  // The escaped characters can only occur inside JSON strings, so replacing them in the output is safe.
  return encode(value, holder, key, 0).replace(/[<>&\u2028\u2029]/g, (c) => goEscapes[c] ?? c);
}
