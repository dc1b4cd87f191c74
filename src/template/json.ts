// Go encoding/json output for the value model: sorted keys, HTML-safe escaping (<, >, & and
// U+2028/U+2029) unless disabled, float64 formatted as encoding/json does.
import { formatFloat, timeString } from './fmt.ts';
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

function encode(v: GoValue, html: boolean, indent: string | undefined, depth: number): string {
  if (v === undefined || v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return quote(v, html);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) throw new Error(`json: unsupported value: ${formatFloat(v, 'g', -1)}`);
      return float(v);
  }
  if (v instanceof GoInt) return v.value.toString();
  if (v instanceof JsonNumber) return v.text === '' ? '0' : v.text;
  if (v instanceof GoTime) return quote(timeString(v), html);
  if (v instanceof GoSemver) return quote(v.toString(), html);
  const nl = indent === undefined ? '' : `\n${indent.repeat(depth + 1)}`;
  const end = indent === undefined ? '' : `\n${indent.repeat(depth)}`;
  const sep = indent === undefined ? ':' : ': ';
  if (v instanceof GoStruct) {
    if (v.fields.length === 0) return '{}';
    const fields = v.fields.map(([k, x]) => nl + quote(k, html) + sep + encode(x, html, indent, depth + 1));
    return `{${fields.join(',')}${end}}`;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[${v.map((x) => nl + encode(x, html, indent, depth + 1)).join(',')}${end}]`;
  }
  if (isMap(v)) {
    const keys = sortedKeys(v);
    if (keys.length === 0) return '{}';
    return `{${keys.map((k) => nl + quote(k, html) + sep + encode(v[k], html, indent, depth + 1)).join(',')}${end}}`;
  }
  return 'null';
}

/** The encoding, or '' and the encoder's error (unsupported values such as NaN). */
function result(html: boolean, indent: string | undefined, v: GoValue): JsonResult {
  try {
    return { text: encode(v, html, indent, 0) };
  } catch (e) {
    return { text: '', error: (e as Error).message };
  }
}

/** json.Marshal (escapeHTML) or an Encoder with SetEscapeHTML(false), without the trailing newline. */
export const encodeJson = (v: GoValue, escapeHTML: boolean): JsonResult => result(escapeHTML, undefined, v);

/** json.MarshalIndent(v, "", "  "). */
export const prettyJson = (v: GoValue): JsonResult => result(true, '  ', v);
