// The Sprig v3.3.0 functions VSO allows, with Sprig's Go signatures and conversion rules
// (spf13/cast for numbers, strval for strings, panics surfacing as "error calling NAME: ...").
import { createHash } from 'node:crypto';
import { RE2JS } from 're2js';
import { sprigBcrypt, sprigBuildCustomCert, sprigHtpasswd } from './crypto.ts';
import { durationString, sprigAgo, sprigDurationRound } from './duration.ts';
import { formatFloat, sprint, sprintf } from './fmt.ts';
import { FuncError, fn, type GoFunc } from './func.ts';
import { encodeJson, type JsonResult, prettyJson } from './json.ts';
import { goQuote } from './lex.ts';
import { APPEND_BYTES, meter } from './meter.ts';
import { sprigUrlJoin, sprigUrlParse, UrlError } from './url.ts';
import {
  compareGoStrings,
  elemType,
  fromJS,
  GoInt,
  type GoMap,
  GoSemver,
  GoStruct,
  GoTime,
  type GoValue,
  intValue,
  isMap,
  JsonNumber,
  kindOf,
  newMap,
  sortedKeys,
  stringValue,
  truth,
  typed,
  typeName,
} from './values.ts';

/** Step-limit charge for one bcrypt hash (cost 10, tens of milliseconds). */
const BCRYPT_STEPS = 10_000;

const i64 = (v: bigint): GoInt => new GoInt('int64', BigInt.asIntN(64, v));

/** Sprig's max/min over int64 conversions; Math.max does not take bigints. */
function extremeInt64([first, ...rest]: GoValue[], sign: 1 | -1): bigint {
  let best = toInt64(first);
  for (const x of rest) {
    const v = toInt64(x);
    if ((sign > 0 && v > best) || (sign < 0 && v < best)) best = v;
  }
  return best;
}

/** spf13/cast ToInt64 (errors become 0). */
function toInt64(v: GoValue): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === 'bigint' || v instanceof GoInt) return intValue(v);
  if (typeof v === 'number') return Number.isFinite(v) ? BigInt(Math.trunc(v)) : 0n;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  const s = stringValue(v);
  if (s !== undefined) return parseCastInt(s);
  return 0n;
}

function parseCastInt(str: string): bigint {
  // cast trims a zero decimal part ("1.0" → "1") then parses with base 0.
  const s = /^[+-]?\d+\.0*$/.test(str) ? str.replace(/\.0*$/, '') : str;
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]*|[1-9][0-9_]*)$/.exec(s);
  if (!m) return 0n;
  let body = m[2]!.replaceAll('_', '');
  if (/^0[0-7]/.test(body)) body = `0o${body.slice(1)}`;
  else if (/^0[oO]/.test(body)) body = `0o${body.slice(2)}`;
  try {
    const v = BigInt(body) * (m[1] === '-' ? -1n : 1n);
    return v >= -(2n ** 63n) && v < 2n ** 63n ? v : 0n;
  } catch {
    return 0n;
  }
}

/** spf13/cast ToFloat64 (errors become 0). */
function toFloat64(v: GoValue): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' || v instanceof GoInt) return Number(intValue(v));
  if (typeof v === 'boolean') return v ? 1 : 0;
  const s = stringValue(v);
  if (s !== undefined && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  if (s !== undefined && /^[+-]?(inf|infinity|nan)$/i.test(s))
    return Number(s.replace(/inf(inity)?/i, 'Infinity'));
  return 0;
}

/** Sprig's strval. */
function strval(v: GoValue): string {
  const s = stringValue(v);
  if (s !== undefined) return s;
  if (v instanceof GoSemver) return v.toString();
  return sprint([v ?? null]);
}

/** Sprig's strslice. */
function strslice(v: GoValue): string[] {
  if (Array.isArray(v)) return v.filter((x) => x !== null && x !== undefined).map(strval);
  if (v === undefined || v === null) return [];
  return [strval(v)];
}

const strs = (a: string[]): GoValue[] => typed(a, 'string');
const ints = (a: bigint[]): GoValue[] => typed(a, 'int');

/** Sprig's empty() is text/template's isTrue negated (structs are never empty, pointers only when nil). */
const empty = (v: GoValue): boolean => !truth(v);

/** reflect.Value.Kind().String() of an interface{} argument (a nil interface is invalid). */
const goKind = (v: GoValue): string => (v === undefined || v === null ? 'invalid' : kindOf(v));

function asList(v: GoValue, what: string): GoValue[] {
  if (Array.isArray(v)) return v;
  throw new FuncError(`Cannot ${what} on type ${goKind(v)}`);
}

/** Go's reflect.DeepEqual over the value model. */
function deepEqual(a: GoValue, b: GoValue): boolean {
  // Shared sub-values make the walk exponential in the size of the value graph: charge each visit.
  meter().charge(1);
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (typeName(a) !== typeName(b)) return false;
  if (a instanceof GoInt && b instanceof GoInt) return a.value === b.value;
  if (a instanceof JsonNumber && b instanceof JsonNumber) return a.text === b.text;
  if (a instanceof GoStruct && b instanceof GoStruct) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}

function deepCopy(v: GoValue): GoValue {
  meter().charge(1);
  if (Array.isArray(v)) return typed(v.map(deepCopy), elemType(v));
  if (isMap(v)) {
    const out = newMap();
    for (const k of Object.keys(v)) out[k] = deepCopy(v[k]);
    return typed(out, elemType(v));
  }
  return v;
}

function regex(pattern: string): RE2JS {
  try {
    return RE2JS.compile(pattern);
  } catch (e) {
    // The parser's message quotes the pattern, which may come from secret data.
    throw new FuncError((e as Error).message, 'error parsing regexp: <redacted pattern>');
  }
}

function regexFindAll(pattern: string, s: string, n: bigint): string[] {
  const re = regex(pattern);
  const out: string[] = [];
  const m = re.matcher(s);
  const limit = n < 0n ? Number.POSITIVE_INFINITY : Number(n);
  while (out.length < limit && m.find()) {
    meter().charge(1);
    out.push(m.group() ?? '');
  }
  return out;
}

/**
 * Go's regexp ReplaceAllString ($1, ${1}, $name expansion) or ReplaceAllLiteralString, with Go's
 * replaceAll loop: an empty match right after a match is not replaced.
 */
function regexReplace(pattern: string, s: string, repl: string, literal: boolean): string {
  const budget = meter();
  const re = regex(pattern);
  const m = re.matcher(s);
  const names = re.namedGroups();
  let out = '';
  let last = 0;
  let pos = 0;
  let matches = 0;
  while (pos <= s.length && m.find(pos)) {
    budget.charge(1);
    matches++;
    const start = m.start();
    const end = m.end();
    out += s.slice(last, start);
    if (end > last || start === 0) {
      const piece = literal
        ? repl
        : repl.replace(/\$(\{([^}]*)\}|([A-Za-z0-9_]+)|\$)?/g, (_all, _g, braced?: string, bare?: string) => {
            if (_g === '$') return '$';
            const id = braced ?? bare;
            if (id === undefined) return _g === undefined ? '' : '$';
            if (/^\d+$/.test(id)) return Number(id) <= re.groupCount() ? (m.group(Number(id)) ?? '') : '';
            return names[id] !== undefined ? (m.group(id) ?? '') : '';
          });
      // A replacement may repeat a large group at every match: reserve before appending.
      budget.reserve(out.length + 2 * APPEND_BYTES * matches + piece.length + s.length - end);
      out += piece;
    }
    last = end;
    // Advance past this match, by at least one code point.
    const width = pos >= s.length ? 0 : s.codePointAt(pos)! > 0xffff ? 2 : 1;
    if (pos + width > end) pos += width;
    else if (pos + 1 > end) pos++;
    else pos = end;
  }
  return out + s.slice(last);
}

function regexSplit(pattern: string, s: string, n: bigint): string[] {
  if (n === 0n) return [];
  const re = regex(pattern);
  if (pattern.length > 0 && s.length === 0) return [''];
  const matches: [number, number][] = [];
  const m = re.matcher(s);
  while (m.find()) {
    meter().charge(1);
    matches.push([m.start(), m.end()]);
  }
  const out: string[] = [];
  let beg = 0;
  for (const [start, end] of matches) {
    if (n > 0n && out.length === Number(n) - 1) break;
    if (end === 0) continue;
    out.push(s.slice(beg, start));
    beg = end;
  }
  out.push(s.slice(beg));
  return out;
}

function byteSlice(s: string, start: number, end: number): string {
  const b = Buffer.from(s, 'utf8');
  if (start < 0 || end > b.length || start > end) {
    throw new FuncError(`runtime error: slice bounds out of range [${start}:${end}]`);
  }
  return b.subarray(start, end).toString('utf8');
}

function untilStep(start: bigint, stop: bigint, step: bigint): bigint[] {
  const budget = meter();
  const v: bigint[] = [];
  if (stop < start) {
    if (step >= 0n) return v;
    for (let i = start; i > stop; i += step) {
      budget.charge(1);
      v.push(i);
    }
    return v;
  }
  if (step <= 0n) return v;
  for (let i = start; i < stop; i += step) {
    budget.charge(1);
    v.push(i);
  }
  return v;
}

function merge(dst: GoMap, src: GoMap, overwrite: boolean): void {
  for (const k of Object.keys(src)) {
    meter().charge(1);
    const sv = src[k];
    const dv = dst[k];
    if (isMap(dv) && isMap(sv)) merge(dv, sv, overwrite);
    else if (!Object.hasOwn(dst, k) || empty(dv) || (overwrite && !empty(sv))) dst[k] = sv;
  }
}

/** Sprig's merge/mergeOverwrite: every source merged into the destination, which is returned. */
const mergeFn = (overwrite: boolean): GoFunc =>
  fn(
    ['map'],
    ([d, ...s]) => {
      for (const m of s) merge(d as GoMap, m as GoMap, overwrite);
      return d;
    },
    'map',
  );

/** The encoding, or the encoder's error as the function's error. */
function jsonOrThrow(r: JsonResult): string {
  if (r.error) throw new FuncError(r.error);
  return r.text;
}

function fromJson(s: string): GoValue {
  try {
    return fromJS(JSON.parse(s));
  } catch (e) {
    throw new FuncError((e as Error).message, 'invalid JSON');
  }
}

const SEMVER_RE =
  /^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$/;

function parseSemver(v: string): GoSemver {
  const m = SEMVER_RE.exec(v);
  if (!m) throw new FuncError('Invalid Semantic Version');
  const num = (s: string | undefined): bigint => (s ? BigInt(s.replace('.', '')) : 0n);
  return new GoSemver(num(m[1]), num(m[2]), num(m[3]), m[5] ?? '', m[8] ?? '', v);
}

function cmpSemver(a: GoSemver, b: GoSemver): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  if (a.pre === b.pre) return 0;
  if (!a.pre) return 1;
  if (!b.pre) return -1;
  const pa = a.pre.split('.');
  const pb = b.pre.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return BigInt(x) < BigInt(y) ? -1 : 1;
    if (nx) return -1;
    if (ny) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Masterminds/semver constraint check for the common operators (=, !=, >, <, >=, <=, ~, ^, x-ranges, ||, ","). */
function semverCompare(constraint: string, version: string): boolean {
  const v = parseSemver(version);
  return constraint.split('||').some((group) =>
    group
      .trim()
      .split(/\s*,\s*|\s+/)
      .filter(Boolean)
      .every((c) => checkConstraint(c, v)),
  );
}

function checkConstraint(c: string, v: GoSemver): boolean {
  const m = /^(=|!=|>=|<=|>|<|~>?|\^)?\s*v?(.*)$/.exec(c);
  if (!m) throw new FuncError(`improper constraint: ${c}`, 'improper constraint: <redacted>');
  const op = m[1] ?? '';
  const parts = m[2]!.split(/(?=[-+])/)[0]!.split('.');
  const wild = (s: string | undefined): boolean => s === undefined || s === 'x' || s === 'X' || s === '*';
  const base = parseSemver(
    parts.map((p) => (wild(p) ? '0' : p)).join('.') + (m[2]!.match(/[-+].*$/)?.[0] ?? ''),
  );
  if (v.pre && !base.pre && op !== '!=') return false;
  const cmp = cmpSemver(v, base);
  const wMinor = wild(parts[1]);
  const wPatch = wild(parts[2]);
  const upper = (bumpMinor: boolean): GoSemver =>
    bumpMinor
      ? new GoSemver(base.major + 1n, 0n, 0n, '', '', '')
      : new GoSemver(base.major, base.minor + 1n, 0n, '', '', '');
  switch (op) {
    case '':
    case '=':
      if (wild(parts[0])) return true;
      if (wMinor) return v.major === base.major;
      if (wPatch) return v.major === base.major && v.minor === base.minor;
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '>':
      return cmp > 0;
    case '<':
      return cmp < 0;
    case '>=':
      return cmp >= 0;
    case '<=':
      return cmp <= 0;
    case '~':
    case '~>':
      return cmp >= 0 && cmpSemver(v, upper(wMinor)) < 0;
    case '^': {
      if (base.major > 0n || wMinor) return cmp >= 0 && v.major === base.major;
      if (base.minor > 0n || wPatch) return cmp >= 0 && v.major === 0n && v.minor === base.minor;
      return cmp === 0;
    }
  }
  return false;
}

/**
 * goutils.WrapCustom (Sprig's wrap and wrapWith): over UTF-8 bytes, "\n" for an empty separator,
 * lines break at the last space within the width. One pass over the input; every search stays in
 * the window at hand, and the output is reserved piece by piece.
 */
function wrap(s: string, wrapLength: number, sep: string, wrapLong: boolean): string {
  const budget = meter();
  if (s === '') return '';
  const str = Buffer.from(s, 'utf8');
  const nl = Buffer.from(sep === '' ? '\n' : sep, 'utf8');
  const width = Math.max(1, wrapLength);
  const out: Buffer[] = [];
  let size = 0;
  const emit = (from: number, to: number, newline: boolean): void => {
    size += to - from + (newline ? nl.length : 0);
    budget.reserve(size);
    out.push(str.subarray(from, to));
    if (newline) out.push(nl);
  };
  let offset = 0;
  while (str.length - offset > width) {
    if (str[offset] === 0x20) {
      offset++;
      continue;
    }
    const space = str.subarray(offset, offset + width + 1).lastIndexOf(0x20);
    if (space >= 0) {
      emit(offset, offset + space, true);
      offset += space + 1;
    } else if (wrapLong) {
      emit(offset, offset + width, true);
      offset += width;
    } else {
      const next = str.indexOf(0x20, offset + width);
      if (next < 0) {
        emit(offset, str.length, false);
        offset = str.length;
      } else {
        emit(offset, next, true);
        offset = next + 1;
      }
    }
  }
  emit(offset, str.length, false);
  return Buffer.concat(out).toString('utf8');
}

function splitWords(s: string): string[] {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
}

function pathClean(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out.at(-1) !== '..') out.pop();
      else if (!rooted) out.push('..');
    } else out.push(seg);
  }
  const s = (rooted ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

function pathBase(p: string): string {
  if (p === '') return '.';
  const t = p.replace(/\/+$/, '');
  if (t === '') return '/';
  return t.slice(t.lastIndexOf('/') + 1);
}

function pathDir(p: string): string {
  const i = p.lastIndexOf('/');
  return pathClean(p.slice(0, i + 1));
}

function pathExt(p: string): string {
  for (let i = p.length - 1; i >= 0 && p[i] !== '/'; i--) if (p[i] === '.') return p.slice(i);
  return '';
}

const listFn = (what: string, f: (l: GoValue[]) => GoValue): GoFunc =>
  fn(['any'], ([l]) => f(asList(l, what)));

const hexDigest = (algorithm: string): GoFunc =>
  fn(['string'], ([s]) =>
    createHash(algorithm)
      .update(s as string)
      .digest('hex'),
  );

/** Sprig's uniq: scalars through a set (deepEqual on them is type and value equality), the rest pairwise. */
function uniq(l: GoValue[]): GoValue[] {
  const out: GoValue[] = [];
  const seen = new Set<string>();
  const compound: GoValue[] = [];
  for (const x of l) {
    const t = typeof x;
    const scalar = t === 'string' || t === 'bigint' || t === 'boolean' || x instanceof GoInt;
    // NaN is unequal to itself, so it is never a duplicate.
    if (scalar || (t === 'number' && !Number.isNaN(x))) {
      const key = `${typeName(x)}\0${x instanceof GoInt ? x.value : String(x)}`;
      if (seen.has(key)) continue;
      seen.add(key);
    } else {
      if (compound.some((y) => deepEqual(x, y))) continue;
      compound.push(x);
    }
    out.push(x);
  }
  return out;
}

function dict(args: GoValue[]): GoMap {
  const out = newMap();
  for (let i = 0; i < args.length; i += 2) {
    const k = strval(args[i]);
    out[k] = i + 1 >= args.length ? '' : args[i + 1];
  }
  return out;
}

function dig(args: GoValue[]): GoValue {
  if (args.length < 3) throw new FuncError('dig needs at least three arguments');
  let d = args.at(-1);
  const def = args.at(-2);
  const keys = args.slice(0, -2);
  if (!isMap(d) || elemType(d) !== 'interface {}') {
    throw new FuncError(`interface conversion: interface {} is ${typeName(d)}, not map[string]interface {}`);
  }
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (typeof k !== 'string')
      throw new FuncError(`interface conversion: interface {} is ${typeName(k)}, not string`);
    if (!Object.hasOwn(d as GoMap, k)) return def;
    const v: GoValue = (d as GoMap)[k];
    if (i === keys.length - 1) return v;
    if (!isMap(v))
      throw new FuncError(
        `interface conversion: interface {} is ${typeName(v)}, not map[string]interface {}`,
      );
    d = v;
  }
  return def;
}

function slice(l: GoValue, idx: GoValue[]): GoValue {
  if (l === null || l === undefined)
    throw new FuncError('runtime error: invalid memory address or nil pointer dereference');
  if (!Array.isArray(l)) throw new FuncError(`list should be type of slice or array but ${kindOf(l)}`);
  if (l.length === 0) return null;
  const start = idx.length > 0 ? Number(toInt64(idx[0])) : 0;
  const end = idx.length > 1 ? Number(toInt64(idx[1])) : l.length;
  if (start < 0 || end > l.length || start > end) {
    throw new FuncError(`reflect: slice index out of range`);
  }
  return typed(l.slice(start, end), elemType(l));
}

function toDate(layout: string, value: string): GoValue {
  // Only Go's RFC 3339 and date-only layouts are supported; other layouts report an error.
  const layouts: Record<string, RegExp> = {
    '2006-01-02': /^(\d{4})-(\d{2})-(\d{2})$/,
    '2006-01-02T15:04:05Z07:00': /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})$/,
  };
  const re = layouts[layout];
  const m = re?.exec(value);
  if (!m)
    throw new FuncError(
      `parsing time ${JSON.stringify(value)} as ${JSON.stringify(layout)}: cannot parse`,
      'cannot parse time',
    );
  const [, y, mo, d, h = '0', mi = '0', s = '0', z = 'Z'] = m;
  const off = z === 'Z' ? 0 : (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(4)));
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) - off * 60000;
  return new GoTime(ms, 0, off, z === 'Z' ? 'UTC' : '');
}

const FUNCS: Record<string, GoFunc> = {
  // strings
  abbrev: fn(['int', 'string'], ([w, s]) => {
    const width = Number(w);
    const str = s as string;
    if (width < 4 || Buffer.byteLength(str) <= width) return str;
    return `${byteSlice(str, 0, width - 3)}...`;
  }),
  abbrevboth: fn(['int', 'int', 'string'], ([l, r, s]) => {
    let offset = Number(l);
    const maxWidth = Number(r);
    const str = s as string;
    if (maxWidth < 4 || (offset > 0 && maxWidth < 7)) return str;
    const n = Buffer.byteLength(str);
    if (str === '' || n <= maxWidth) return str;
    if (offset > n) offset = n;
    if (n - offset < maxWidth - 3) offset = n - (maxWidth - 3);
    if (offset <= 4) return `${byteSlice(str, 0, maxWidth - 3)}...`;
    if (offset + maxWidth - 3 < n) {
      const rest = byteSlice(str, offset, n);
      const w = maxWidth - 3;
      return `...${Buffer.byteLength(rest) <= w ? rest : `${byteSlice(rest, 0, w - 3)}...`}`;
    }
    return `...${byteSlice(str, n - (maxWidth - 3), n)}`;
  }),
  upper: fn(['string'], ([s]) => (s as string).toUpperCase()),
  lower: fn(['string'], ([s]) => (s as string).toLowerCase()),
  title: fn(['string'], ([s]) =>
    (s as string).replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, a: string, b: string) => a + b.toUpperCase()),
  ),
  untitle: fn(['string'], ([s]) =>
    (s as string).replace(/(^|\s)(\S)/gu, (_m, a: string, b: string) => a + b.toLowerCase()),
  ),
  substr: fn(['int', 'int', 'string'], ([a, b, s]) => {
    const str = s as string;
    const n = Buffer.byteLength(str);
    const start = Number(a);
    const end = Number(b);
    if (start < 0) return byteSlice(str, 0, end);
    if (end < 0 || end > n) return byteSlice(str, start, n);
    return byteSlice(str, start, end);
  }),
  repeat: fn(['int', 'string'], ([c, s]) => {
    const n = Number(c);
    if (n < 0) throw new FuncError('strings: negative Repeat count');
    meter().reserve(n * (s as string).length);
    return (s as string).repeat(n);
  }),
  trim: fn(['string'], ([s]) => (s as string).replace(/^[\s\u0085]+|[\s\u0085]+$/gu, '')),
  trimAll: fn(['string', 'string'], ([cut, s]) => trimChars(s as string, cut as string)),
  trimPrefix: fn(['string', 'string'], ([p, s]) =>
    (s as string).startsWith(p as string) ? (s as string).slice((p as string).length) : s,
  ),
  trimSuffix: fn(['string', 'string'], ([p, s]) =>
    (p as string) !== '' && (s as string).endsWith(p as string)
      ? (s as string).slice(0, -(p as string).length)
      : s,
  ),
  nospace: fn(['string'], ([s]) => (s as string).replace(/[\s\u0085]/gu, '')),
  initials: fn(['string'], ([s]) =>
    (s as string)
      .split(/\s+/)
      .filter(Boolean)
      .map((w) => [...w][0])
      .join(''),
  ),
  swapcase: fn(['string'], ([s]) =>
    [...(s as string)].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join(''),
  ),
  shuffle: fn(['string'], ([s], ctx) => {
    const a = [...(s as string)];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(ctx.random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.join('');
  }),
  snakecase: fn(['string'], ([s]) =>
    splitWords(s as string)
      .map((w) => w.toLowerCase())
      .join('_'),
  ),
  camelcase: fn(['string'], ([s]) =>
    splitWords(s as string)
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join(''),
  ),
  kebabcase: fn(['string'], ([s]) =>
    splitWords(s as string)
      .map((w) => w.toLowerCase())
      .join('-'),
  ),
  wrap: fn(['int', 'string'], ([l, s]) => wrap(s as string, Number(l), '\n', false)),
  wrapWith: fn(['int', 'string', 'string'], ([l, sep, s]) =>
    wrap(s as string, Number(l), sep as string, true),
  ),
  contains: fn(['string', 'string'], ([sub, s]) => (s as string).includes(sub as string)),
  hasPrefix: fn(['string', 'string'], ([p, s]) => (s as string).startsWith(p as string)),
  hasSuffix: fn(['string', 'string'], ([p, s]) => (s as string).endsWith(p as string)),
  quote: fn(
    [],
    (a) =>
      a
        .filter((x) => x !== null)
        .map((x) => sprintf('%q', [strval(x)]))
        .join(' '),
    'any',
  ),
  squote: fn(
    [],
    (a) =>
      a
        .filter((x) => x !== null)
        .map((x) => `'${strval(x)}'`)
        .join(' '),
    'any',
  ),
  cat: fn(
    [],
    (a) =>
      sprint(a.filter((x) => x !== null).flatMap((x, i) => (i > 0 ? [' ', x] : [x]))).replaceAll(
        /^\s+|\s+$/g,
        '',
      ),
    'any',
  ),
  indent: fn(['int', 'string'], ([n, s]) => indent(n as bigint, s as string)),
  nindent: fn(['int', 'string'], ([n, s]) => `\n${indent(n as bigint, s as string)}`),
  replace: fn(['string', 'string', 'string'], ([o, n, s]) =>
    replaceAllGo(s as string, o as string, n as string),
  ),
  plural: fn(['string', 'string', 'int'], ([one, many, c]) => (c === 1n ? one : many)),
  trunc: fn(['int', 'string'], ([c, s]) => {
    const n = Number(c);
    const str = s as string;
    const len = Buffer.byteLength(str);
    if (n < 0 && len + n > 0) return byteSlice(str, len + n, len);
    if (n >= 0 && len > n) return byteSlice(str, 0, n);
    return str;
  }),
  join: fn(['string', 'any'], ([sep, v]) => {
    const parts = strslice(v);
    let size = (sep as string).length * Math.max(0, parts.length - 1);
    for (const p of parts) size += p.length;
    meter().reserve(size);
    return parts.join(sep as string);
  }),
  split: fn(['string', 'string'], ([sep, s]) => indexedParts(splitGo(s as string, sep as string, -1))),
  splitList: fn(['string', 'string'], ([sep, s]) => strs(splitGo(s as string, sep as string, -1))),
  splitn: fn(['string', 'int', 'string'], ([sep, n, s]) =>
    indexedParts(splitGo(s as string, sep as string, Number(n))),
  ),
  toString: fn(['any'], ([v]) => strval(v)),
  toStrings: fn(['any'], ([v]) => strs(strslice(v))),
  sortAlpha: fn(['any'], ([v]) => {
    const l = Array.isArray(v) ? strslice(v) : [strval(v)];
    meter().charge(l.length * Math.ceil(Math.log2(l.length + 1)));
    return strs(l.sort(compareGoStrings));
  }),
  seq: fn(
    [],
    (a) => {
      // seq LAST, seq FIRST LAST, seq FIRST STEP LAST; FIRST defaults to 1, STEP to ±1 toward LAST.
      const p = a.map((x) => intValue(x));
      if (p.length === 0 || p.length > 3) return '';
      const first = p.length === 1 ? 1n : p[0]!;
      const last = p.at(-1)!;
      const down = last < first;
      const step = p.length === 3 ? p[1]! : down ? -1n : 1n;
      if (down ? step >= 0n : step <= 0n) return '';
      return untilStep(first, last + (down ? -1n : 1n), step).join(' ');
    },
    'int',
  ),
  // encoding and hashing
  b64enc: fn(['string'], ([s]) => Buffer.from(s as string).toString('base64')),
  b64dec: fn(['string'], ([s]) => {
    const r = goBase64Decode(Buffer.from(s as string));
    return typeof r === 'number' ? `illegal base64 data at input byte ${r}` : r.toString('utf8');
  }),
  b32enc: fn(['string'], ([s]) => base32(Buffer.from(s as string))),
  b32dec: fn(['string'], ([s]) => base32dec(s as string)),
  sha1sum: hexDigest('sha1'),
  sha256sum: hexDigest('sha256'),
  sha512sum: hexDigest('sha512'),
  adler32sum: fn(['string'], ([s]) => String(adler32(Buffer.from(s as string)))),
  bcrypt: fn(['string'], ([s]) => {
    meter().charge(BCRYPT_STEPS);
    return sprigBcrypt(s as string);
  }),
  htpasswd: fn(['string', 'string'], ([u, p]) => {
    meter().charge(BCRYPT_STEPS);
    return sprigHtpasswd(u as string, p as string);
  }),
  buildCustomCert: fn(['string', 'string'], ([c, k]) => sprigBuildCustomCert(c as string, k as string)),
  // numbers
  add: fn([], (a) => i64(a.reduce<bigint>((s, x) => s + toInt64(x), 0n)), 'any'),
  add1: fn(['any'], ([a]) => i64(toInt64(a) + 1n)),
  sub: fn(['any', 'any'], ([a, b]) => i64(toInt64(a) - toInt64(b))),
  mul: fn(['any'], ([a, ...r]) => i64(r.reduce<bigint>((s, x) => s * toInt64(x), toInt64(a))), 'any'),
  div: fn(['any', 'any'], ([a, b]) => {
    const d = toInt64(b);
    if (d === 0n) throw new FuncError('runtime error: integer divide by zero');
    return i64(toInt64(a) / d);
  }),
  mod: fn(['any', 'any'], ([a, b]) => {
    const d = toInt64(b);
    if (d === 0n) throw new FuncError('runtime error: integer divide by zero');
    return i64(toInt64(a) % d);
  }),
  max: fn(['any'], (args) => i64(extremeInt64(args, 1)), 'any'),
  min: fn(['any'], (args) => i64(extremeInt64(args, -1)), 'any'),
  addf: fn([], (a) => decimalSum(a.map(toFloat64)), 'any'),
  add1f: fn(['any'], ([a]) => decimalSum([toFloat64(a), 1])),
  subf: fn(['any'], ([a, ...r]) => decimalSum([toFloat64(a), ...r.map((x) => -toFloat64(x))]), 'any'),
  mulf: fn(
    ['any'],
    ([a, ...r]) => r.reduce<number>((p, x) => decimalMul(p, toFloat64(x)), toFloat64(a)),
    'any',
  ),
  divf: fn(
    ['any'],
    ([a, ...r]) =>
      r.reduce<number>((p, x) => {
        const d = toFloat64(x);
        if (d === 0) throw new FuncError('decimal division by 0');
        return Number(formatFloat(p / d, 'g', 16));
      }, toFloat64(a)),
    'any',
  ),
  maxf: fn(
    ['any'],
    ([a, ...r]) => r.reduce<number>((m, x) => Math.max(m, toFloat64(x)), toFloat64(a)),
    'any',
  ),
  minf: fn(
    ['any'],
    ([a, ...r]) => r.reduce<number>((m, x) => Math.min(m, toFloat64(x)), toFloat64(a)),
    'any',
  ),
  floor: fn(['any'], ([a]) => Math.floor(toFloat64(a))),
  ceil: fn(['any'], ([a]) => Math.ceil(toFloat64(a))),
  round: fn(
    ['any', 'int'],
    ([a, p, r]) => {
      const roundOn = r === undefined ? 0.5 : (r as number);
      const pow = 10 ** Number(p);
      const digit = pow * toFloat64(a);
      const div = digit - Math.trunc(digit);
      return (div >= roundOn ? Math.ceil(digit) : Math.floor(digit)) / pow;
    },
    'float64',
  ),
  int: fn(['any'], ([a]) => toInt64(a)),
  int64: fn(['any'], ([a]) => i64(toInt64(a))),
  float64: fn(['any'], ([a]) => toFloat64(a)),
  atoi: fn(['string'], ([s]) =>
    /^[+-]?\d+$/.test(s as string) ? BigInt.asIntN(64, BigInt(s as string)) : 0n,
  ),
  toDecimal: fn(['any'], ([v]) => {
    // strconv.ParseInt(s, 8, 64); Sprig gives 0 for any error, out of range included.
    const s = sprint([v ?? null]);
    if (!/^[+-]?[0-7]+$/.test(s)) return i64(0n);
    const magnitude = BigInt(`0o${s.replace(/^[+-]/, '')}`);
    const n = s.startsWith('-') ? -magnitude : magnitude;
    return i64(n >= -(2n ** 63n) && n < 2n ** 63n ? n : 0n);
  }),
  until: fn(['int'], ([c]) => ints(untilStep(0n, c as bigint, (c as bigint) < 0n ? -1n : 1n))),
  untilStep: fn(['int', 'int', 'int'], ([a, b, c]) => ints(untilStep(a as bigint, b as bigint, c as bigint))),
  randInt: fn(['int', 'int'], ([lo, hi], ctx) => {
    const span = (hi as bigint) - (lo as bigint);
    if (span <= 0n) throw new FuncError('invalid argument to Intn');
    return (lo as bigint) + BigInt(Math.floor(ctx.random() * Number(span)));
  }),
  // defaults and flow
  default: fn(['any'], ([d, ...g]) => (g.length === 0 || empty(g[0]) ? d : g[0]), 'any'),
  empty: fn(['any'], ([v]) => empty(v)),
  coalesce: fn([], (a) => a.find((x) => !empty(x)) ?? null, 'any'),
  all: fn([], (a) => a.every((x) => !empty(x)), 'any'),
  any: fn([], (a) => a.some((x) => !empty(x)), 'any'),
  ternary: fn(['any', 'any', 'bool'], ([t, f, c]) => (c ? t : f)),
  fail: fn(['string'], ([m]) => {
    throw new FuncError(m as string, 'fail called');
  }),
  // JSON
  // toJson and toPrettyJson print '' when encoding fails; Sprig's toRawJson panics like the must* ones.
  toJson: fn(['any'], ([v]) => encodeJson(v, true).text),
  toPrettyJson: fn(['any'], ([v]) => prettyJson(v).text),
  toRawJson: fn(['any'], ([v]) => jsonOrThrow(encodeJson(v, false))),
  mustToJson: fn(['any'], ([v]) => jsonOrThrow(encodeJson(v, true))),
  mustToPrettyJson: fn(['any'], ([v]) => jsonOrThrow(prettyJson(v))),
  fromJson: fn(['string'], ([s]) => {
    try {
      return fromJson(s as string);
    } catch {
      return null;
    }
  }),
  mustFromJson: fn(['string'], ([s]) => fromJson(s as string)),
  // lists
  list: fn([], (a) => [...a], 'any'),
  first: listFn('find first', (l) => l[0] ?? null),
  last: listFn('find last', (l) => l.at(-1) ?? null),
  rest: listFn('find rest', (l) => (l.length === 0 ? null : l.slice(1))),
  initial: listFn('find initial', (l) => (l.length === 0 ? null : l.slice(0, -1))),
  reverse: listFn('find reverse', (l) => (l.length === 0 ? null : [...l].reverse())),
  uniq: listFn('find uniq', uniq),
  compact: listFn('compact', (l) => l.filter((x) => !empty(x))),
  append: fn(['any', 'any'], ([l, v]) => [...asList(l, 'push'), v]),
  prepend: fn(['any', 'any'], ([l, v]) => [v, ...asList(l, 'prepend')]),
  without: fn(
    ['any'],
    ([l, ...o]) => asList(l, 'find without').filter((x) => !o.some((y) => deepEqual(x, y))),
    'any',
  ),
  has: fn(['any', 'any'], ([n, h]) =>
    h === null ? false : asList(h, 'find has').some((x) => deepEqual(n, x)),
  ),
  slice: fn(['any'], ([l, ...i]) => slice(l, i), 'any'),
  concat: fn([], (ls) => ls.flatMap((l) => (Array.isArray(l) ? l : asList(l, 'concat'))), 'any'),
  chunk: fn(['int', 'any'], ([n, l]) => chunk(Number(n), asList(l, 'chunk'))),
  // dicts
  dict: fn([], dict, 'any'),
  get: fn(['map', 'string'], ([d, k]) =>
    Object.hasOwn(d as GoMap, k as string) ? (d as GoMap)[k as string] : '',
  ),
  set: fn(['map', 'string', 'any'], ([d, k, v]) => {
    (d as GoMap)[k as string] = v;
    return d;
  }),
  unset: fn(['map', 'string'], ([d, k]) => {
    delete (d as GoMap)[k as string];
    return d;
  }),
  hasKey: fn(['map', 'string'], ([d, k]) => Object.hasOwn(d as GoMap, k as string)),
  keys: fn([], (ds) => strs(ds.flatMap((d) => sortedKeys(d as GoMap))), 'map'),
  values: fn(['map'], ([d]) => sortedKeys(d as GoMap).map((k) => (d as GoMap)[k])),
  pluck: fn(
    ['string'],
    ([k, ...ds]) =>
      ds.filter((d) => Object.hasOwn(d as GoMap, k as string)).map((d) => (d as GoMap)[k as string]),
    'map',
  ),
  pick: fn(
    ['map'],
    ([d, ...ks]) => {
      const out = newMap();
      for (const k of ks as string[]) if (Object.hasOwn(d as GoMap, k)) out[k] = (d as GoMap)[k];
      return out;
    },
    'string',
  ),
  omit: fn(
    ['map'],
    ([d, ...ks]) => {
      const out = newMap();
      for (const k of Object.keys(d as GoMap)) if (!(ks as string[]).includes(k)) out[k] = (d as GoMap)[k];
      return out;
    },
    'string',
  ),
  merge: mergeFn(false),
  mergeOverwrite: mergeFn(true),
  dig: fn([], dig, 'any'),
  deepCopy: fn(['any'], ([v]) => {
    if (v === null) throw new FuncError('reflect: call of reflect.Value.Type on zero Value');
    return deepCopy(v);
  }),
  mustDeepCopy: fn(['any'], ([v]) => {
    if (v === null) throw new FuncError('copy: Copy called with nil');
    return deepCopy(v);
  }),
  deepEqual: fn(['any', 'any'], ([a, b]) => deepEqual(a, b)),
  // reflection
  typeOf: fn(['any'], ([v]) => typeName(v)),
  typeIs: fn(['string', 'any'], ([t, v]) => t === typeName(v)),
  typeIsLike: fn(['string', 'any'], ([t, v]) => t === typeName(v) || `*${t}` === typeName(v)),
  kindOf: fn(['any'], ([v]) => goKind(v)),
  kindIs: fn(['string', 'any'], ([t, v]) => t === goKind(v)),
  // regex
  regexMatch: fn(['string', 'string'], ([r, s]) =>
    regex(r as string)
      .matcher(s as string)
      .find(),
  ),
  regexFind: fn(['string', 'string'], ([r, s]) => regexFindAll(r as string, s as string, 1n)[0] ?? ''),
  regexFindAll: fn(['string', 'string', 'int'], ([r, s, n]) =>
    strs(regexFindAll(r as string, s as string, n as bigint)),
  ),
  regexReplaceAll: fn(['string', 'string', 'string'], ([r, s, p]) =>
    regexReplace(r as string, s as string, p as string, false),
  ),
  regexReplaceAllLiteral: fn(['string', 'string', 'string'], ([r, s, p]) =>
    regexReplace(r as string, s as string, p as string, true),
  ),
  regexSplit: fn(['string', 'string', 'int'], ([r, s, n]) =>
    strs(regexSplit(r as string, s as string, n as bigint)),
  ),
  regexQuoteMeta: fn(['string'], ([s]) => (s as string).replace(/[\\.+*?()|[\]{}^$]/g, '\\$&')),
  // semver
  semver: fn(['string'], ([v]) => parseSemver(v as string)),
  semverCompare: fn(['string', 'string'], ([c, v]) => semverCompare(c as string, v as string)),
  // paths
  base: fn(['string'], ([p]) => pathBase(p as string)),
  dir: fn(['string'], ([p]) => pathDir(p as string)),
  clean: fn(['string'], ([p]) => pathClean(p as string)),
  ext: fn(['string'], ([p]) => pathExt(p as string)),
  isAbs: fn(['string'], ([p]) => (p as string).startsWith('/')),
  // urls
  urlParse: fn(['string'], ([v]) => {
    try {
      return sprigUrlParse(v as string);
    } catch (e) {
      if (!(e instanceof UrlError)) throw e;
      // Go's message quotes the URL: `unable to parse url: parse "URL": reason`.
      throw new FuncError(
        `unable to parse url: parse ${goQuote(v as string)}: ${e.message}`,
        `unable to parse url: ${e.safe}`,
      );
    }
  }),
  urlJoin: fn(['map'], ([d]) => {
    const m = d as GoMap;
    const get = (key: string): string => {
      if (!Object.hasOwn(m, key)) return '';
      const x = m[key];
      if (x === null || x === undefined)
        throw new FuncError('runtime error: invalid memory address or nil pointer dereference');
      const str = stringValue(x);
      if (str === undefined)
        throw new FuncError(`unable to parse ${key} key, must be of type string, but ${kindOf(x)} found`);
      return str;
    };
    const parts = {
      scheme: get('scheme'),
      host: get('host'),
      path: get('path'),
      query: get('query'),
      opaque: get('opaque'),
      fragment: get('fragment'),
      userinfo: get('userinfo'),
    };
    try {
      return sprigUrlJoin(parts);
    } catch (e) {
      if (!(e instanceof UrlError)) throw e;
      throw new FuncError(
        `unable to parse userinfo in dict: parse ${JSON.stringify(`proto://${parts.userinfo}@host`)}: ${e.message}`,
        `unable to parse userinfo in dict: ${e.safe}`,
      );
    }
  }),
  // dates
  ago: fn(['any'], ([v], ctx) => sprigAgo(v, ctx.now())),
  duration: fn(['any'], ([v]) => {
    // Sprig accepts only a string or an int64; anything else is 0s.
    // time.Duration(n) * time.Second wraps on overflow; ParseInt clamps out-of-range input.
    const secs = (n: bigint): string => durationString(BigInt.asIntN(64, n * 1_000_000_000n));
    if (v instanceof GoInt && v.type === 'int64') return secs(v.value);
    if (typeof v === 'string' && /^[+-]?\d+$/.test(v)) {
      const n = BigInt(v);
      return secs(n > 2n ** 63n - 1n ? 2n ** 63n - 1n : n < -(2n ** 63n) ? -(2n ** 63n) : n);
    }
    return '0s';
  }),
  durationRound: fn(['any'], ([v], ctx) => sprigDurationRound(v, ctx.now())),
  mustToDate: fn(['string', 'string'], ([l, v]) => toDate(l as string, v as string)),
};

/** Sprig names bound to the same behaviour as another function. */
const SAME_AS: Record<string, string> = {
  // must* variants: Sprig returns an error where the plain function panics, and text/template
  // reports both as "error calling NAME: ...".
  mustFirst: 'first',
  mustLast: 'last',
  mustRest: 'rest',
  mustInitial: 'initial',
  mustReverse: 'reverse',
  mustUniq: 'uniq',
  mustCompact: 'compact',
  mustAppend: 'append',
  mustPush: 'append',
  mustPrepend: 'prepend',
  mustWithout: 'without',
  mustHas: 'has',
  mustSlice: 'slice',
  mustChunk: 'chunk',
  mustMerge: 'merge',
  mustMergeOverwrite: 'mergeOverwrite',
  mustRegexMatch: 'regexMatch',
  mustRegexFind: 'regexFind',
  mustRegexFindAll: 'regexFindAll',
  mustRegexReplaceAll: 'regexReplaceAll',
  mustRegexReplaceAllLiteral: 'regexReplaceAllLiteral',
  mustRegexSplit: 'regexSplit',
  mustToRawJson: 'toRawJson',
  // os* path functions: filepath is path on Linux
  osBase: 'base',
  osDir: 'dir',
  osClean: 'clean',
  osExt: 'ext',
  osIsAbs: 'isAbs',
  // synonyms
  trimall: 'trimAll',
  biggest: 'max',
  tuple: 'list',
  push: 'append',
};

export const SPRIG: Record<string, GoFunc> = { ...FUNCS };
for (const [alias, name] of Object.entries(SAME_AS)) SPRIG[alias] = FUNCS[name]!;

function chunk(size: number, l: GoValue[]): GoValue[] {
  if (size <= 0) throw new FuncError('runtime error: integer divide by zero');
  const out: GoValue[] = [];
  for (let i = 0; i < l.length; i += size) out.push(l.slice(i, i + size));
  return typed(out, '[]interface {}');
}

function trimChars(s: string, cut: string): string {
  const set = new Set(cut);
  const a = [...s];
  let i = 0;
  let j = a.length;
  while (i < j && set.has(a[i]!)) i++;
  while (j > i && set.has(a[j - 1]!)) j--;
  return a.slice(i, j).join('');
}

function replaceAllGo(s: string, old: string, rep: string): string {
  const budget = meter();
  if (old === '') {
    budget.reserve(s.length + (s.length + 1) * rep.length);
    return [...s].map((c) => rep + c).join('') + rep;
  }
  let count = 0;
  for (let i = s.indexOf(old); i >= 0; i = s.indexOf(old, i + old.length)) count++;
  budget.reserve(s.length + count * (rep.length - old.length));
  return s.split(old).join(rep);
}

/** Bytes charged per map entry: a V8 property costs far more than the list slot of a part. */
const MAP_ENTRY_BYTES = 64;

/** Sprig's split/splitn result: a map[string]string keyed _0, _1, ... */
function indexedParts(parts: string[]): GoMap {
  const budget = meter();
  budget.reserve(parts.length * MAP_ENTRY_BYTES);
  const out = newMap();
  parts.forEach((p, i) => {
    out[`_${i}`] = p;
  });
  return typed(out, 'string');
}

/** Sprig's indent: n spaces before every line. */
function indent(n: bigint, s: string): string {
  const budget = meter();
  const width = Math.max(0, Number(n));
  let lines = 1;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) lines++;
  budget.reserve(s.length + lines * width);
  const pad = ' '.repeat(width);
  return pad + s.replaceAll('\n', `\n${pad}`);
}

function splitGo(s: string, sep: string, n: number): string[] {
  const budget = meter();
  if (n === 0) return [];
  // A list slot per part, at most one part per UTF-16 unit of the input.
  budget.reserve(8 * (sep === '' ? s.length : Math.floor(s.length / sep.length) + 1));
  if (sep === '') {
    const a = [...s];
    if (n > 0 && a.length > n) return [...a.slice(0, n - 1), a.slice(n - 1).join('')];
    return a;
  }
  const parts = s.split(sep);
  if (n > 0 && parts.length > n) return [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
  return parts;
}

function base32(b: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

/** base32.StdEncoding.DecodeString: newlines dropped, padding required, and Go's error offsets
 * (Sprig returns the error text as the result). */
function base32dec(s: string): string {
  const src = Buffer.from(s.replace(/[\r\n]/g, ''));
  const fail = (at: number): string => `illegal base32 data at input byte ${at}`;
  const out: number[] = [];
  let i = 0;
  let end = false;
  while (i < src.length && !end) {
    const q = [0, 0, 0, 0, 0, 0, 0, 0];
    let n = 8;
    for (let j = 0; j < 8; ) {
      if (i === src.length) return fail(src.length - j);
      const c = src[i++]!;
      const rest = src.length - i;
      if (c === 0x3d && j >= 2 && rest < 8) {
        if (rest + j < 7) return fail(src.length);
        for (let k = 0; k < 7 - j; k++) if (rest > k && src[i + k] !== 0x3d) return fail(i + k - 1);
        n = j;
        end = true;
        // 1, 3 and 6 characters carry no whole byte (RFC 4648 §6).
        if (n === 1 || n === 3 || n === 6) return fail(i - 1);
        break;
      }
      const v = c >= 0x41 && c <= 0x5a ? c - 0x41 : c >= 0x32 && c <= 0x37 ? c - 0x32 + 26 : -1;
      if (v < 0) return fail(i - 1);
      q[j++] = v;
    }
    const bytes = [
      (q[0]! << 3) | (q[1]! >> 2),
      (q[1]! << 6) | (q[2]! << 1) | (q[3]! >> 4),
      (q[3]! << 4) | (q[4]! >> 1),
      (q[4]! << 7) | (q[5]! << 2) | (q[6]! >> 3),
      (q[6]! << 5) | q[7]!,
    ];
    // 2, 4, 5, 7 and 8 characters make 1 to 5 bytes.
    out.push(...bytes.slice(0, [0, 0, 1, 0, 2, 3, 0, 4, 5][n]).map((b) => b & 255));
  }
  return Buffer.from(out).toString('utf8');
}

function adler32(b: Buffer): number {
  let a = 1;
  let s = 0;
  for (const x of b) {
    a = (a + x) % 65521;
    s = (s + a) % 65521;
  }
  return ((s << 16) | a) >>> 0;
}

/** shopspring/decimal sums converted back with InexactFloat64: exact decimal arithmetic on the shortest forms. */
function decimalSum(xs: number[]): number {
  let scale = 0;
  for (const x of xs) {
    const s = formatFloat(x, 'f', -1);
    const dot = s.indexOf('.');
    if (dot >= 0) scale = Math.max(scale, s.length - dot - 1);
  }
  let total = 0n;
  for (const x of xs) total += toScaled(x, scale);
  return Number(fromScaled(total, scale));
}

function decimalMul(a: number, b: number): number {
  const sa = formatFloat(a, 'f', -1);
  const sb = formatFloat(b, 'f', -1);
  const fa = sa.includes('.') ? sa.length - sa.indexOf('.') - 1 : 0;
  const fb = sb.includes('.') ? sb.length - sb.indexOf('.') - 1 : 0;
  return Number(fromScaled(toScaled(a, fa) * toScaled(b, fb), fa + fb));
}

function toScaled(x: number, scale: number): bigint {
  const s = formatFloat(x, 'f', -1);
  const [int, frac = ''] = s.replace('-', '').split('.');
  const v = BigInt(int! + frac.padEnd(scale, '0'));
  return s.startsWith('-') ? -v : v;
}

function fromScaled(v: bigint, scale: number): string {
  const neg = v < 0n;
  const s = (neg ? -v : v).toString().padStart(scale + 1, '0');
  const out = scale > 0 ? `${s.slice(0, -scale)}.${s.slice(-scale)}` : s;
  return (neg ? '-' : '') + out;
}

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_DECODE = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_DECODE[B64_ALPHABET.charCodeAt(i)] = i;
const CR = 0x0d;
const LF = 0x0a;
const PAD = 0x3d;

/**
 * Go's base64.StdEncoding.DecodeString (decodeQuantum): `\r` and `\n` are skipped anywhere,
 * padding is required, trailing bits need not be zero. Returns the bytes, or the offset Go's
 * CorruptInputError names.
 */
function goBase64Decode(src: Buffer): Buffer | number {
  const out: number[] = [];
  let si = 0;
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0];
    let dlen = 4;
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return Buffer.from(out);
        return si - j;
      }
      const c = src[si] as number;
      si++;
      const d = B64_DECODE[c] as number;
      if (d >= 0) {
        dbuf[j] = d;
        continue;
      }
      if (c === LF || c === CR) {
        j--;
        continue;
      }
      if (c !== PAD || j < 2) return si - 1;
      if (j === 2) {
        // "==" expected; the first "=" is consumed.
        while (si < src.length && (src[si] === LF || src[si] === CR)) si++;
        if (si === src.length) return src.length;
        if (src[si] !== PAD) return si - 1;
        si++;
      }
      while (si < src.length && (src[si] === LF || src[si] === CR)) si++;
      if (si < src.length) return si;
      dlen = j;
      break;
    }
    const val =
      ((dbuf[0] as number) << 18) |
      ((dbuf[1] as number) << 12) |
      ((dbuf[2] as number) << 6) |
      (dbuf[3] as number);
    const bytes = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff];
    out.push(...bytes.slice(0, dlen - 1));
  }
  return Buffer.from(out);
}
