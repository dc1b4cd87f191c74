// Go encoding/json output for the value model: sorted keys, HTML-safe escaping (<, >, & and
// U+2028/U+2029) unless disabled, float64 formatted as encoding/json does.
import { formatFloat, timeString } from './fmt.ts';
import { meter } from './meter.ts';
import { GoInt, GoSemver, GoStruct, GoTime, type GoValue, isMap, JsonNumber, sortedKeys } from './values.ts';

export interface JsonResult {
  text: string;
  error?: string;
}

function quote(s: string, escapeHTML: boolean): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || (escapeHTML && (ch === '<' || ch === '>' || ch === '&'))) {
      out += `\\u${c.toString(16).padStart(4, '0')}`;
    } else if (c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else out += ch;
  }
  return `${out}"`;
}

function float(f: number): string {
  const abs = Math.abs(f);
  if (abs !== 0 && (abs < 1e-6 || abs >= 1e21)) {
    return formatFloat(f, 'e', -1).replace(/e([+-])0(\d)$/, 'e$1$2');
  }
  return formatFloat(f, 'f', -1);
}

class Unsupported extends Error {}

/**
 * Encodes `v`, counting in `size` the bytes of every string built (each container's text copies
 * its children's): indentation and shared sub-values can make the text far larger than the value,
 * so each piece is reserved before it is built.
 */
function encode(
  v: GoValue,
  html: boolean,
  indent: string | undefined,
  depth: number,
  size: { n: number },
): string {
  const piece = (s: string): string => {
    size.n += s.length;
    meter().reserve(size.n);
    return s;
  };
  if (v === undefined || v === null) return piece('null');
  switch (typeof v) {
    case 'string':
      return piece(quote(v, html));
    case 'boolean':
      return piece(v ? 'true' : 'false');
    case 'bigint':
      return piece(v.toString());
    case 'number':
      if (!Number.isFinite(v)) throw new Unsupported(`json: unsupported value: ${formatFloat(v, 'g', -1)}`);
      return piece(float(v));
  }
  if (v instanceof GoInt) return piece(v.value.toString());
  if (v instanceof JsonNumber) return piece(v.text === '' ? '0' : v.text);
  if (v instanceof GoTime) return piece(quote(timeString(v), html));
  if (v instanceof GoSemver) return piece(quote(v.toString(), html));
  const nl = indent === undefined ? '' : `\n${indent.repeat(depth + 1)}`;
  const end = indent === undefined ? '' : `\n${indent.repeat(depth)}`;
  const sep = indent === undefined ? ':' : ': ';
  const enc = (x: GoValue): string => encode(x, html, indent, depth + 1, size);
  const field = (k: string, x: GoValue): string => piece(nl + quote(k, html) + sep) + enc(x);
  if (v instanceof GoStruct) {
    if (v.fields.length === 0) return piece('{}');
    const fields = v.fields.map(([k, x]) => field(k, x));
    return piece(`{${fields.join(',')}${end}}`);
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return piece('[]');
    return piece(`[${v.map((x) => nl + enc(x)).join(',')}${end}]`);
  }
  if (isMap(v)) {
    const keys = sortedKeys(v);
    if (keys.length === 0) return piece('{}');
    return piece(`{${keys.map((k) => field(k, v[k])).join(',')}${end}}`);
  }
  return piece('null');
}

/** The encoding, or '' and the encoder's error (unsupported values such as NaN). */
function result(html: boolean, indent: string | undefined, v: GoValue): JsonResult {
  try {
    return { text: encode(v, html, indent, 0, { n: 0 }) };
  } catch (e) {
    // Only the encoder's own errors become results; a limit reached inside must propagate.
    if (e instanceof Unsupported) return { text: '', error: e.message };
    throw e;
  }
}

/** json.Marshal (escapeHTML) or an Encoder with SetEscapeHTML(false), without the trailing newline. */
export const encodeJson = (v: GoValue, escapeHTML: boolean): JsonResult => result(escapeHTML, undefined, v);

/** json.MarshalIndent(v, "", "  "). */
export const prettyJson = (v: GoValue): JsonResult => result(true, '  ', v);
