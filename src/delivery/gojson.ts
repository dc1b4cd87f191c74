// JSON exactly as Go's encoding/json.Marshal writes it, so `_raw`, non-string values and the HMAC
// input are byte-identical to VSO's (a migrated Secret keeps its MAC): map keys sorted byte-wise,
// <, >, & and U+2028/U+2029 escaped, no trailing newline.
import { numberSource } from '../vault/client.ts';

// JSON.rawJSON (Node >= 21, V8's JSON.parse source text access); not in TypeScript's es2024 lib.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

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

/** `value` ready for JSON.stringify: keys sorted, and a number Vault sent as other text than the
 * double prints (`8080.0`, integers beyond 2^53) written as that text, as json.Number marshals. */
function sortKeys(value: unknown, holder?: object, key?: string): unknown {
  if (typeof value === 'number' && holder !== undefined && key !== undefined) {
    const text = numberSource(holder, key);
    if (text !== undefined) return rawJSON(text);
  }
  if (Array.isArray(value)) return value.map((x, i) => sortKeys(x, value, String(i)));
  if (value !== null && typeof value === 'object') {
    // No prototype: a key named "__proto__" (legal in Vault data) must stay an ordinary key.
    const out: Record<string, unknown> = Object.create(null);
    for (const k of Object.keys(value).sort(byteOrder))
      out[k] = sortKeys((value as Record<string, unknown>)[k], value, k);
    return out;
  }
  return value;
}

/** `value` as encoding/json.Marshal writes it; `holder[key]` is where it came from, if anywhere (so a
 * number keeps the text Vault sent). */
export function goJson(value: unknown, holder?: object, key?: string): string {
  // The escaped characters can only occur inside JSON strings, so replacing them in the output is safe.
  return (JSON.stringify(sortKeys(value, holder, key)) ?? 'null').replace(
    /[<>&\u2028\u2029]/g,
    (c) => goEscapes[c] ?? c,
  );
}
