// Builds a destination Secret's `.data` from a Vault response, following VSO's rules: rendered
// templates first (they win), then `_raw`, then the source keys filtered by excludes and includes
// (RE2, unanchored), strings written as-is and everything else as Go JSON.
import { RE2JS } from 're2js';
import { CODES, FerryError } from '../errors.ts';
import { goJson } from './gojson.ts';

export interface DataShaping {
  /** Output of the destination's templates, keyed by output key. */
  rendered?: Record<string, string>;
  includes?: string[];
  excludes?: string[];
  excludeRaw?: boolean;
}

const RAW_KEY = '_raw';
const regexCache = new Map<string, RE2JS>();

function compile(pattern: string): RE2JS {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = RE2JS.compile(pattern);
    } catch (err) {
      throw new FerryError(CODES.SECRET_DATA, `invalid include/exclude pattern ${JSON.stringify(pattern)}`, {
        cause: err,
      });
    }
    if (regexCache.size >= 250) regexCache.delete(regexCache.keys().next().value as string);
    regexCache.set(pattern, re);
  }
  return re;
}

function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** `out[key] = value`, also for a key named `__proto__` (a valid Secret key Vault data may hold),
 * which plain assignment would take as the prototype and drop. */
export function setKey(out: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Returns the Secret data in its wire form (base64 values). */
export function makeSecretData(
  source: Record<string, unknown>,
  raw: unknown,
  shaping: DataShaping = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(shaping.rendered ?? {})) setKey(out, k, b64(v));

  const excludes = (shaping.excludes ?? []).map(compile);
  const includes = (shaping.includes ?? []).map(compile);
  const rawExcluded = shaping.excludeRaw === true || excludes.some((re) => re.test(RAW_KEY));
  if (!rawExcluded) {
    if (Object.hasOwn(source, RAW_KEY)) {
      throw new FerryError(
        CODES.SECRET_DATA,
        `the source data has a key named ${RAW_KEY}; exclude it or set excludeRaw`,
      );
    }
    out[RAW_KEY] ??= b64(goJson(raw));
  }
  for (const [k, v] of Object.entries(source)) {
    if (k === RAW_KEY || Object.hasOwn(out, k)) continue;
    if (excludes.some((re) => re.test(k))) continue;
    if (includes.length > 0 && !includes.some((re) => re.test(k))) continue;
    setKey(out, k, b64(typeof v === 'string' ? v : goJson(v, source, k)));
  }
  return out;
}
