// text/template's predefined functions (funcs.go). `and`, `or` and `call` are evaluated by the
// executor; their entries here only carry the signature.
import { sprint, sprintf, sprintln } from './fmt.ts';
import { FuncError, fn, type GoFunc } from './func.ts';
import { isPrintRune } from './lex.ts';
import { queryEscape } from './url.ts';
import {
  compareGoStrings,
  elemType,
  GoInt,
  GoStruct,
  type GoValue,
  goLen,
  intValue,
  isIntKind,
  isMap,
  isUintKind,
  kindOf,
  stringValue,
  truth,
  typeName,
} from './values.ts';

type BasicKind = 'invalid' | 'bool' | 'int' | 'uint' | 'float' | 'string';

function basicKind(v: GoValue): BasicKind {
  const k = kindOf(v);
  if (k === 'bool') return 'bool';
  if (isIntKind(k)) return 'int';
  if (isUintKind(k)) return 'uint';
  if (k === 'float64') return 'float';
  if (k === 'string') return 'string';
  return 'invalid';
}

const indirect = (v: GoValue): GoValue => (v === null ? undefined : v);

function scalar(v: GoValue, k: BasicKind): boolean | bigint | number | string {
  switch (k) {
    case 'bool':
      return v as boolean;
    case 'int':
    case 'uint':
      return intValue(v);
    case 'float':
      return v as number;
    default:
      return stringValue(v)!;
  }
}

const incompatible = (a: GoValue, b: GoValue): FuncError =>
  new FuncError(`incompatible types for comparison: ${typeName(a)} and ${typeName(b)}`);

function eq(arg1: GoValue, rest: GoValue[]): boolean {
  const a = indirect(arg1);
  if (rest.length === 0) throw new FuncError('missing argument for comparison');
  const k1 = basicKind(a);
  for (const r of rest) {
    const b = indirect(r);
    const k2 = basicKind(b);
    let t = false;
    if (k1 !== k2) {
      if ((k1 === 'int' && k2 === 'uint') || (k1 === 'uint' && k2 === 'int')) t = intValue(a) === intValue(b);
      else if (a !== undefined && b !== undefined) throw incompatible(a, b);
    } else if (k1 !== 'invalid') {
      t = scalar(a, k1) === scalar(b, k2);
    } else {
      const ka = kindOf(a);
      const kb = kindOf(b);
      if (ka !== kb && ka !== 'invalid' && kb !== 'invalid') {
        throw new FuncError(
          `non-comparable types ${sprint([a ?? null])}: ${typeName(a)}, ${typeName(b)}: ${sprint([b ?? null])}`,
          `non-comparable types ${typeName(a)} and ${typeName(b)}`,
        );
      }
      if (a === undefined || b === undefined) t = a === b;
      else if (Array.isArray(b) || isMap(b)) {
        throw new FuncError(
          `non-comparable type ${sprint([b])}: ${typeName(b)}`,
          `non-comparable type ${typeName(b)}`,
        );
      } else t = a instanceof GoStruct && b instanceof GoStruct ? a.equals(b) : a === b;
    }
    if (t) return true;
  }
  return false;
}

function lt(arg1: GoValue, arg2: GoValue): boolean {
  const a = indirect(arg1);
  const b = indirect(arg2);
  const k1 = basicKind(a);
  if (k1 === 'invalid') throw new FuncError('invalid type for comparison');
  const k2 = basicKind(b);
  if (k2 === 'invalid') throw new FuncError('invalid type for comparison');
  if (k1 !== k2) {
    if (k1 === 'int' && k2 === 'uint') return intValue(a) < intValue(b);
    if (k1 === 'uint' && k2 === 'int') return intValue(a) < intValue(b);
    throw incompatible(a, b);
  }
  if (k1 === 'bool') throw new FuncError('invalid type for comparison');
  if (k1 === 'string') return compareGoStrings(stringValue(a)!, stringValue(b)!) < 0;
  return (scalar(a, k1) as number | bigint) < (scalar(b, k2) as number | bigint);
}

const le = (a: GoValue, b: GoValue): boolean => lt(a, b) || eq(a, [b]);

function indexArg(index: GoValue, cap: number): number {
  const k = kindOf(index);
  let x: bigint;
  if (isIntKind(k) || isUintKind(k)) x = intValue(index);
  else if (index === undefined || index === null) throw new FuncError('cannot index slice/array with nil');
  else throw new FuncError(`cannot index slice/array with type ${typeName(index)}`);
  if (x < 0n || x > BigInt(cap)) throw new FuncError(`index out of range: ${x}`);
  return Number(x);
}

function index(item: GoValue, indexes: GoValue[]): GoValue {
  let v = indirect(item);
  if (v === undefined) throw new FuncError('index of untyped nil');
  for (const raw of indexes) {
    const ix = indirect(raw);
    if (v === null) throw new FuncError('index of nil pointer');
    const s = stringValue(v);
    if (s !== undefined) {
      const bytes = Buffer.from(s, 'utf8');
      const x = indexArg(ix, bytes.length);
      if (x >= bytes.length) throw new FuncError('reflect: string index out of range');
      v = new GoInt('uint8', BigInt(bytes[x]!));
    } else if (Array.isArray(v)) {
      const x = indexArg(ix, v.length);
      if (x >= v.length) throw new FuncError('reflect: slice index out of range');
      v = v[x];
    } else if (isMap(v)) {
      if (ix === undefined) throw new FuncError('value is nil; should be of type string');
      if (typeof ix !== 'string') throw new FuncError(`value has type ${typeName(ix)}; should be string`);
      v = Object.hasOwn(v, ix) ? v[ix] : elemType(v) === 'string' ? '' : null;
    } else {
      throw new FuncError(`can't index item of type ${typeName(v)}`);
    }
  }
  return v;
}

function length(item: GoValue): bigint {
  const v = indirect(item);
  if (v === undefined) throw new FuncError('len of nil pointer');
  const n = goLen(v);
  if (n === undefined) throw new FuncError(`len of type ${typeName(v)}`);
  return BigInt(n);
}

/** Args of html/js/urlquery: one string as is, otherwise fmt.Sprint. */
function evalArgs(args: GoValue[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((a) => (a === null ? '<no value>' : a)));
}

function htmlEscape(s: string): string {
  return s.replace(/["'&<>\0]/g, (c) =>
    c === '"'
      ? '&#34;'
      : c === "'"
        ? '&#39;'
        : c === '&'
          ? '&amp;'
          : c === '<'
            ? '&lt;'
            : c === '>'
              ? '&gt;'
              : '\ufffd',
  );
}

function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) {
      switch (ch) {
        case '\\':
          out += '\\\\';
          break;
        case "'":
          out += "\\'";
          break;
        case '"':
          out += '\\"';
          break;
        case '<':
          out += '\\u003C';
          break;
        case '>':
          out += '\\u003E';
          break;
        case '&':
          out += '\\u0026';
          break;
        case '=':
          out += '\\u003D';
          break;
        default:
          out += c < 0x20 ? `\\u${c.toString(16).toUpperCase().padStart(4, '0')}` : ch;
      }
    } else if (isPrintRune(c)) out += ch;
    else out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return out;
}

export const BUILTINS: Record<string, GoFunc> = {
  and: fn(['value'], () => undefined, 'value'),
  or: fn(['value'], () => undefined, 'value'),
  call: fn(['value'], () => undefined, 'value'),
  not: fn(['value'], ([a]) => !truth(a)),
  eq: fn(['value'], ([a, ...rest]) => eq(a, rest), 'value'),
  ne: fn(['value', 'value'], ([a, b]) => !eq(a, [b])),
  lt: fn(['value', 'value'], ([a, b]) => lt(a, b)),
  le: fn(['value', 'value'], ([a, b]) => le(a, b)),
  gt: fn(['value', 'value'], ([a, b]) => !le(a, b)),
  ge: fn(['value', 'value'], ([a, b]) => !lt(a, b)),
  len: fn(['value'], ([a]) => length(a)),
  index: fn(['value'], ([a, ...ix]) => index(a, ix), 'value'),
  print: fn([], (a) => sprint(a), 'any'),
  printf: fn(['string'], ([f, ...a]) => sprintf(f as string, a), 'any'),
  println: fn([], (a) => sprintln(a), 'any'),
  html: fn([], (a) => htmlEscape(evalArgs(a)), 'any'),
  js: fn([], (a) => jsEscape(evalArgs(a)), 'any'),
  urlquery: fn([], (a) => queryEscape(evalArgs(a)), 'any'),
};
