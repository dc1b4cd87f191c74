// Go's fmt package for the value model: Sprint, Sprintln, Sprintf with verbs, flags, width and
// precision, and strconv's float formatting (exact decimal expansion, round half to even).
import { goQuote, isPrintRune } from './lex.ts';
import { APPEND_BYTES, meter } from './meter.ts';
import {
  GoInt,
  type GoMap,
  GoSemver,
  GoStruct,
  GoTime,
  type GoValue,
  intValue,
  isIntKind,
  isUintKind,
  JsonNumber,
  kindOf,
  sortedKeys,
  typeName,
} from './values.ts';

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  plusV: boolean;
  sharpV: boolean;
  wid: number | undefined;
  prec: number | undefined;
}

const noFlags = (): Flags => ({
  plus: false,
  minus: false,
  sharp: false,
  space: false,
  zero: false,
  plusV: false,
  sharpV: false,
  wid: undefined,
  prec: undefined,
});

const runeCount = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function pad(s: string, f: Flags): string {
  if (f.wid === undefined) return s;
  const n = f.wid - runeCount(s);
  if (n <= 0) return s;
  if (f.minus) return s + ' '.repeat(n);
  return (f.zero ? '0' : ' ').repeat(n) + s;
}

// --- floats -----------------------------------------------------------------------------------

interface Digits {
  d: string; // significant digits, no leading or trailing zeros ('' for zero)
  dp: number; // decimal point position: value = 0.d × 10^dp
}

/** The binary mantissa (with the implicit bit) and unbiased exponent of a finite float64. */
function floatBits(x: number): { mant: bigint; exp: number } {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const bits = buf.getBigUint64(0);
  const e = Number((bits >> 52n) & 0x7ffn);
  const mant = bits & 0xfffffffffffffn;
  return e === 0 ? { mant, exp: -1022 } : { mant: mant | (1n << 52n), exp: e - 1023 };
}

function exactDigits(x: number): Digits {
  // x = mant × 2^exp exactly (mant an integer); expand in base 10 with bigints.
  const { mant, exp: unbiased } = floatBits(x);
  const exp = unbiased - 52;
  let s: string;
  let dp: number;
  if (exp >= 0) {
    s = (mant << BigInt(exp)).toString();
    dp = s.length;
  } else {
    s = (mant * 5n ** BigInt(-exp)).toString();
    dp = s.length + exp;
  }
  return trimDigits({ d: s, dp });
}

function trimDigits(x: Digits): Digits {
  let d = x.d;
  let dp = x.dp;
  let i = 0;
  while (i < d.length && d[i] === '0') i++;
  d = d.slice(i);
  dp -= i;
  d = d.replace(/0+$/, '');
  if (d === '') dp = 0;
  return { d, dp };
}

function shortestDigits(x: number): Digits {
  if (x === 0) return { d: '', dp: 0 };
  const [m, e] = x.toExponential().split('e') as [string, string];
  return trimDigits({ d: m.replace('.', ''), dp: Number(e) + 1 });
}

/** Rounds to nd significant digits, half to even on the exact expansion (Go's decimal.Round). */
function roundDigits(x: Digits, nd: number): Digits {
  if (nd < 0 || nd >= x.d.length) return x;
  const next = x.d.charCodeAt(nd) - 48;
  let up = next > 5;
  if (next === 5) up = nd + 1 < x.d.length || (nd > 0 && (x.d.charCodeAt(nd - 1) - 48) % 2 === 1);
  if (!up) return trimDigits({ d: x.d.slice(0, nd), dp: x.dp });
  const digits = [...x.d.slice(0, nd)].map(Number);
  let i = nd - 1;
  while (i >= 0 && digits[i] === 9) digits[i--] = 0;
  if (i < 0) return { d: '1', dp: x.dp + 1 };
  digits[i]! += 1;
  return trimDigits({ d: digits.join(''), dp: x.dp });
}

function fmtE(neg: boolean, x: Digits, prec: number, ch: string): string {
  let s = neg ? '-' : '';
  s += x.d[0] ?? '0';
  if (prec > 0) {
    s += '.';
    let frac = x.d.slice(1, prec + 1);
    frac += '0'.repeat(prec - frac.length);
    s += frac;
  }
  const exp = x.d.length === 0 ? 0 : x.dp - 1;
  const ae = Math.abs(exp);
  return `${s}${ch}${exp < 0 ? '-' : '+'}${ae < 10 ? `0${ae}` : ae}`;
}

function fmtF(neg: boolean, x: Digits, prec: number): string {
  let s = neg ? '-' : '';
  if (x.dp > 0) {
    const int = x.d.slice(0, x.dp);
    s += int + '0'.repeat(x.dp - int.length);
  } else s += '0';
  if (prec > 0) {
    // Digits dp … dp+prec-1 of x.d, zeros outside it (built in bulk: prec may be 10^6 or more).
    const lead = Math.min(prec, Math.max(0, -x.dp));
    const frac = '0'.repeat(lead) + x.d.slice(Math.max(0, x.dp), Math.max(0, x.dp + prec));
    s += `.${frac}${'0'.repeat(prec - frac.length)}`;
  }
  return s;
}

/** strconv's %b: decimal mantissa, 'p', binary exponent. */
function fmtB(neg: boolean, x: number): string {
  const { mant, exp } = floatBits(x);
  const e = exp - 52;
  return `${neg ? '-' : ''}${mant}p${e >= 0 ? '+' : ''}${e}`;
}

/** strconv's %x / %X: -0x1.yyyyp±dd. */
function fmtX(neg: boolean, x: number, prec: number, fmt: 'x' | 'X'): string {
  let { mant, exp } = floatBits(x);
  const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
  if (mant === 0n) exp = 0;
  mant = u64(mant << 8n);
  while (mant !== 0n && (mant & (1n << 60n)) === 0n) {
    mant = u64(mant << 1n);
    exp--;
  }
  if (prec >= 0 && prec < 15) {
    const shift = BigInt(prec * 4);
    const extra = u64(mant << shift) & ((1n << 60n) - 1n);
    mant >>= 60n - shift;
    if ((extra | (mant & 1n)) > 1n << 59n) mant++;
    mant = u64(mant << (60n - shift));
    if ((mant & (1n << 61n)) !== 0n) {
      mant >>= 1n;
      exp++;
    }
  }
  const hex = fmt === 'X' ? '0123456789ABCDEF' : '0123456789abcdef';
  let s = `${neg ? '-' : ''}0${fmt}${(mant >> 60n) & 1n}`;
  mant = u64(mant << 4n);
  const digit = (): string => {
    const d = hex[Number((mant >> 60n) & 15n)]!;
    mant = u64(mant << 4n);
    return d;
  };
  if (prec < 0 && mant !== 0n) {
    s += '.';
    while (mant !== 0n) s += digit();
  } else if (prec > 0) {
    s += '.';
    for (let i = 0; i < prec; i++) s += digit();
  }
  const ae = Math.abs(exp);
  return `${s}${fmt === 'X' ? 'P' : 'p'}${exp < 0 ? '-' : '+'}${ae < 10 ? `0${ae}` : ae}`;
}

/** strconv.FormatFloat(x, fmt, prec, 64) for fmt in b, e, E, f, g, G, x, X. */
export function formatFloat(
  x: number,
  fmt: 'b' | 'e' | 'E' | 'f' | 'g' | 'G' | 'x' | 'X',
  prec: number,
): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  const neg = x < 0 || Object.is(x, -0);
  if (fmt === 'b') return fmtB(neg, x);
  if (fmt === 'x' || fmt === 'X') return fmtX(neg, x, prec, fmt);
  const ax = Math.abs(x);
  const shortest = prec < 0;
  let digs: Digits;
  if (shortest) {
    digs = shortestDigits(ax);
    if (fmt === 'e' || fmt === 'E') prec = Math.max(digs.d.length - 1, 0);
    else if (fmt === 'f') prec = Math.max(digs.d.length - digs.dp, 0);
    else prec = digs.d.length;
  } else {
    const exact = ax === 0 ? { d: '', dp: 0 } : exactDigits(ax);
    if (fmt === 'e' || fmt === 'E') digs = roundDigits(exact, prec + 1);
    else if (fmt === 'f') digs = roundDigits(exact, exact.dp + prec);
    else {
      if (prec === 0) prec = 1;
      digs = roundDigits(exact, prec);
    }
  }
  if (fmt === 'e' || fmt === 'E') return fmtE(neg, digs, prec, fmt);
  if (fmt === 'f') return fmtF(neg, digs, prec);
  let eprec = prec;
  if (eprec > digs.d.length && digs.d.length >= digs.dp) eprec = digs.d.length;
  if (shortest) eprec = 6;
  const exp = digs.dp - 1;
  if (exp < -4 || exp >= eprec) {
    if (prec > digs.d.length) prec = digs.d.length;
    return fmtE(neg, digs, prec - 1, fmt === 'g' ? 'e' : 'E');
  }
  if (prec > digs.dp) prec = digs.d.length;
  return fmtF(neg, digs, Math.max(prec - digs.dp, 0));
}

// --- printer ----------------------------------------------------------------------------------

class Printer {
  buf = '';
  f: Flags = noFlags();
  /** Values formatted so far: each adds a few pieces to buf. */
  private values = 0;

  badVerb(verb: string, v: GoValue): void {
    this.buf += `%!${verb}(`;
    if (v === undefined || v === null) this.buf += '<nil>';
    else {
      this.buf += `${typeName(v)}=`;
      this.printArg(v, 'v');
    }
    this.buf += ')';
  }

  fmtBool(b: boolean, verb: string): void {
    if (verb === 't' || verb === 'v') this.buf += pad(b ? 'true' : 'false', this.f);
    else this.badVerb(verb, b);
  }

  fmtInteger(v: bigint, signed: boolean, verb: string, orig: GoValue): void {
    switch (verb) {
      case 'v':
        if (this.f.sharpV && !signed) {
          this.fmtIntBase(v, 16, 'x', true);
          return;
        }
        this.fmtIntBase(v, 10, 'v', false);
        return;
      case 'd':
        this.fmtIntBase(v, 10, verb, false);
        return;
      case 'b':
        this.fmtIntBase(v, 2, verb, false);
        return;
      case 'o':
      case 'O':
        this.fmtIntBase(v, 8, verb, false);
        return;
      case 'x':
      case 'X':
        this.fmtIntBase(v, 16, verb, false);
        return;
      case 'c':
        this.buf += pad(validRune(v), this.f);
        return;
      case 'q':
        this.buf += pad(quoteRune(v, this.f.plus), this.f);
        return;
      case 'U': {
        let s = `U+${(v < 0n ? v + 2n ** 64n : v).toString(16).toUpperCase().padStart(4, '0')}`;
        if (this.f.sharp && v >= 0n && v <= 0x10ffffn && isPrintRune(Number(v))) {
          s += ` '${String.fromCodePoint(Number(v))}'`;
        }
        this.buf += pad(s, this.f);
        return;
      }
      default:
        this.badVerb(verb, orig);
    }
  }

  fmtIntBase(v: bigint, base: number, verb: string, forceSharp: boolean): void {
    const f = this.f;
    const neg = v < 0n;
    let digits = (neg ? -v : v).toString(base);
    if (verb === 'X') digits = digits.toUpperCase();
    let prec = f.prec;
    if (prec === undefined && f.zero && !f.minus && f.wid !== undefined) {
      prec = f.wid;
      if (neg || f.plus || f.space) prec--;
    }
    if (prec !== undefined) {
      if (prec === 0 && v === 0n) {
        this.buf += pad('', { ...f, zero: false });
        return;
      }
      if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    }
    if (f.sharp || forceSharp) {
      if (base === 2) digits = `0b${digits}`;
      else if (base === 8 && digits[0] !== '0') digits = `0${digits}`;
      else if (base === 16) digits = (verb === 'X' ? '0X' : '0x') + digits;
    }
    if (verb === 'O') digits = `0o${digits}`;
    if (neg) digits = `-${digits}`;
    else if (f.plus) digits = `+${digits}`;
    else if (f.space) digits = ` ${digits}`;
    // Zero padding was applied as precision above; the remaining padding is spaces.
    this.buf += pad(digits, { ...f, zero: false });
  }

  fmtFloat(x: number, verb: string): void {
    let fmt: 'b' | 'e' | 'E' | 'f' | 'g' | 'G' | 'x' | 'X';
    let prec: number;
    switch (verb) {
      case 'v':
        fmt = 'g';
        prec = -1;
        break;
      case 'b':
      case 'g':
      case 'G':
      case 'x':
      case 'X':
        fmt = verb;
        prec = -1;
        break;
      case 'e':
      case 'E':
      case 'f':
        fmt = verb;
        prec = 6;
        break;
      case 'F':
        fmt = 'f';
        prec = 6;
        break;
      default:
        this.badVerb(verb, x);
        return;
    }
    const f = this.f;
    if (f.prec !== undefined) prec = f.prec;
    let num = formatFloat(x, fmt, prec);
    num = num[0] === '-' || num[0] === '+' ? num : `+${num}`;
    if (f.space && num[0] === '+' && !f.plus) num = ` ${num.slice(1)}`;
    if (num[1] === 'I' || num[1] === 'N') {
      if (num[1] === 'N' && !f.space && !f.plus) num = num.slice(1);
      this.buf += pad(num, { ...f, zero: false });
      return;
    }
    if (f.sharp && fmt !== 'b') {
      // Go's fmt: force a decimal point and restore trailing zeros.
      let digits =
        verb === 'v' || verb === 'g' || verb === 'G' || verb === 'x' ? (prec === -1 ? 6 : prec) : 0;
      let tail = '';
      let hasPoint = false;
      let sawNonzero = false;
      let body = num[0]!;
      for (let i = 1; i < num.length; i++) {
        const c = num[i]!;
        if (c === '.') hasPoint = true;
        else if (c === 'p' || c === 'P' || ((c === 'e' || c === 'E') && fmt !== 'x' && fmt !== 'X')) {
          tail = num.slice(i);
          break;
        } else {
          if (c !== '0') sawNonzero = true;
          if (sawNonzero) digits--;
        }
        body += c;
      }
      num = body;
      if (!hasPoint) {
        if (num.length === 2 && num[1] === '0') digits--;
        num += '.';
      }
      if (digits > 0) num += '0'.repeat(digits);
      num += tail;
    }
    if (f.plus || num[0] !== '+') {
      if (f.zero && !f.minus && f.wid !== undefined && f.wid > num.length) {
        this.buf += num[0] + '0'.repeat(f.wid - num.length) + num.slice(1);
        return;
      }
      this.buf += pad(num, f);
      return;
    }
    this.buf += pad(num.slice(1), f);
  }

  fmtString(s: string, verb: string, orig: GoValue): void {
    const f = this.f;
    switch (verb) {
      case 'v':
        if (f.sharpV) this.buf += pad(goQuote(truncate(s, f.prec)), f);
        else this.buf += pad(truncate(s, f.prec), f);
        return;
      case 's':
        this.buf += pad(truncate(s, f.prec), f);
        return;
      case 'x':
      case 'X': {
        let bytes = Buffer.from(s, 'utf8');
        if (f.prec !== undefined && f.prec < bytes.length) bytes = bytes.subarray(0, f.prec);
        const parts = [...bytes].map((b) => {
          const h = b.toString(16).padStart(2, '0');
          return verb === 'X' ? h.toUpperCase() : h;
        });
        const prefix = f.sharp ? (verb === 'X' ? '0X' : '0x') : '';
        const out = f.space ? parts.map((p) => prefix + p).join(' ') : prefix + parts.join('');
        this.buf += pad(out, f);
        return;
      }
      case 'q': {
        const t = truncate(s, f.prec);
        if (f.sharp && canBackquote(t)) this.buf += pad(`\`${t}\``, f);
        else this.buf += pad(f.plus ? quoteASCII(t) : goQuote(t), f);
        return;
      }
      default:
        this.badVerb(verb, orig);
    }
  }

  /** Width and precision multiply output (per element, for lists): reserve them before formatting. */
  private reserve(): void {
    const pieces = 2 * APPEND_BYTES * ++this.values;
    meter().reserve(this.buf.length + pieces + Math.max(this.f.wid ?? 0, this.f.prec ?? 0));
  }

  printArg(v: GoValue, verb: string): void {
    this.reserve();
    if (v === undefined || v === null) {
      if (verb === 'T' || verb === 'v') this.buf += pad('<nil>', this.f);
      else this.badVerb(verb, v);
      return;
    }
    if (verb === 'T') {
      // fmtS: precision truncates, width pads (with zeros under the 0 flag).
      this.buf += pad(truncate(typeName(v), this.f.prec), this.f);
      return;
    }
    this.printValue(v, verb, 0);
  }

  printValue(v: GoValue, verb: string, depth: number): void {
    this.reserve();
    if (v === undefined || v === null) {
      if (depth === 0) this.buf += '<invalid reflect.Value>';
      else this.buf += this.f.sharpV ? 'interface {}(nil)' : '<nil>';
      return;
    }
    switch (typeof v) {
      case 'boolean':
        this.fmtBool(v, verb);
        return;
      case 'number':
        this.fmtFloat(v, verb);
        return;
      case 'bigint':
        this.fmtInteger(v, true, verb, v);
        return;
      case 'string':
        this.fmtString(v, verb, v);
        return;
    }
    if (v instanceof GoInt) {
      this.fmtInteger(intValue(v), kindOf(v).startsWith('int'), verb, v);
      return;
    }
    if (v instanceof JsonNumber || v instanceof GoSemver || v instanceof GoTime) {
      // Stringers: fmt calls String() for %v %s %x %X %q.
      // json.Number is string-kinded: fmtString formats (or rejects) every verb, %#v included.
      const s = v instanceof JsonNumber ? v.text : v instanceof GoSemver ? v.toString() : timeString(v);
      if (v instanceof JsonNumber || (!this.f.sharpV && 'vsxXq'.includes(verb))) this.fmtString(s, verb, v);
      else this.badVerb(verb, v);
      return;
    }
    if (v instanceof GoStruct) {
      if (this.f.sharpV) this.buf += v.type;
      this.buf += '{';
      v.fields.forEach(([name, x], i) => {
        if (i > 0) this.buf += this.f.sharpV ? ', ' : ' ';
        if (this.f.plusV || this.f.sharpV) this.buf += `${name}:`;
        this.printValue(x, verb, depth + 1);
      });
      this.buf += '}';
      return;
    }
    if (Array.isArray(v)) {
      if (this.f.sharpV) {
        this.buf += `${typeName(v)}{`;
        v.forEach((e, i) => {
          if (i > 0) this.buf += ', ';
          this.printValue(e, verb, depth + 1);
        });
        this.buf += '}';
        return;
      }
      this.buf += '[';
      v.forEach((e, i) => {
        if (i > 0) this.buf += ' ';
        this.printValue(e, verb, depth + 1);
      });
      this.buf += ']';
      return;
    }
    this.printMap(v, verb, depth);
  }

  printMap(m: GoMap, verb: string, depth: number): void {
    this.buf += this.f.sharpV ? `${typeName(m)}{` : 'map[';
    sortedKeys(m).forEach((k, i) => {
      if (i > 0) this.buf += this.f.sharpV ? ', ' : ' ';
      this.printValue(k, verb, depth + 1);
      this.buf += ':';
      this.printValue(m[k], verb, depth + 1);
    });
    this.buf += this.f.sharpV ? '}' : ']';
  }
}

function truncate(s: string, prec: number | undefined): string {
  if (prec === undefined) return s;
  return [...s].slice(0, prec).join('');
}

function validRune(v: bigint): string {
  if (v < 0n || v > 0x10ffffn || (v >= 0xd800n && v <= 0xdfffn)) return '\ufffd';
  return String.fromCodePoint(Number(v));
}

function quoteRune(v: bigint, ascii: boolean): string {
  const r = validRune(v);
  if (r === "'") return "'\\''";
  if (r === '"') return `'"'`;
  const q = ascii ? quoteASCII(r) : goQuote(r);
  return `'${q.slice(1, -1)}'`;
}

function quoteASCII(s: string): string {
  const q = goQuote(s);
  return q.replace(/[^\x20-\x7e]/gu, (ch) => {
    const c = ch.codePointAt(0)!;
    return c > 0xffff ? `\\U${c.toString(16).padStart(8, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
  });
}

function canBackquote(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '`' || ch === '\ufeff') return false;
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/** time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST". */
export function timeString(t: GoTime): string {
  const d = new Date(t.ms + t.offsetMin * 60000);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const nanos = (((t.ms % 1000) + 1000) % 1000) * 1e6 + t.nanos;
  const frac = nanos ? `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}` : '';
  const off = Math.abs(t.offsetMin);
  const sign = t.offsetMin < 0 ? '-' : '+';
  return (
    `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}${frac} ` +
    `${sign}${p2(Math.floor(off / 60))}${p2(off % 60)} ${t.zone}`
  );
}

/** fmt.Sprint. */
export function sprint(args: GoValue[]): string {
  const p = new Printer();
  let prevString = false;
  args.forEach((a, i) => {
    const isString = a !== undefined && a !== null && kindOf(a) === 'string';
    if (i > 0 && !isString && !prevString) p.buf += ' ';
    p.f = noFlags();
    p.printArg(a, 'v');
    prevString = isString;
  });
  return p.buf;
}

/** fmt.Sprintln. */
export function sprintln(args: GoValue[]): string {
  const p = new Printer();
  args.forEach((a, i) => {
    if (i > 0) p.buf += ' ';
    p.f = noFlags();
    p.printArg(a, 'v');
  });
  return `${p.buf}\n`;
}

/** Go's fmt tooLarge: widths and precisions beyond ±10^6 are refused. */
const tooLarge = (x: number): boolean => x > 1e6 || x < -1e6;

/**
 * Go's fmt parsenum: the digits at `start`; an overflowing number (checked before each digit, as Go
 * does) consumes the rest of the format, so that verb prints %!(NOVERB).
 */
function parseNum(s: string, start: number): { num: number; isNum: boolean; next: number } {
  let num = 0;
  let i = start;
  for (; i < s.length && s[i]! >= '0' && s[i]! <= '9'; i++) {
    if (tooLarge(num)) return { num: 0, isNum: false, next: s.length };
    num = num * 10 + (s.charCodeAt(i) - 48);
  }
  return { num, isNum: i > start, next: i };
}

function intFromArg(args: GoValue[], n: number): { v: number; ok: boolean; n: number } {
  if (n >= args.length) return { v: 0, ok: false, n };
  const a = args[n];
  let ok = false;
  let v = 0;
  const k = kindOf(a);
  // Not startsWith('int'): nil is interface-kinded, and a nil width is BADWIDTH, as in Go.
  if (isIntKind(k) || isUintKind(k)) {
    const b = intValue(a);
    if (!tooLarge(Number(b))) {
      v = Number(b);
      ok = true;
    }
  }
  return { v, ok, n: n + 1 };
}

/** fmt.Sprintf. */
export function sprintf(format: string, args: GoValue[]): string {
  const p = new Printer();
  let argNum = 0;
  const end = format.length;
  let i = 0;
  while (i < end) {
    const lasti = i;
    while (i < end && format[i] !== '%') i++;
    p.buf += format.slice(lasti, i);
    if (i >= end) break;
    i++;
    const f = noFlags();
    p.f = f;
    flags: for (; i < end; i++) {
      switch (format[i]) {
        case '#':
          f.sharp = true;
          break;
        case '0':
          f.zero = !f.minus;
          break;
        case '+':
          f.plus = true;
          break;
        case '-':
          f.minus = true;
          f.zero = false;
          break;
        case ' ':
          f.space = true;
          break;
        default:
          break flags;
      }
    }
    if (i < end && format[i] === '*') {
      i++;
      const r = intFromArg(args, argNum);
      argNum = r.n;
      if (!r.ok) p.buf += '%!(BADWIDTH)';
      else {
        f.wid = r.v;
        if (r.v < 0) {
          f.wid = -r.v;
          f.minus = true;
          f.zero = false;
        }
      }
    } else {
      const w = parseNum(format, i);
      if (w.isNum) f.wid = w.num;
      i = w.next;
    }
    if (i + 1 < end && format[i] === '.') {
      i++;
      if (format[i] === '*') {
        i++;
        const r = intFromArg(args, argNum);
        argNum = r.n;
        if (!r.ok || r.v < 0) {
          if (!r.ok) p.buf += '%!(BADPREC)';
        } else f.prec = r.v;
      } else {
        const p = parseNum(format, i);
        f.prec = p.num;
        i = p.next;
      }
    }
    if (i >= end) {
      p.buf += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') {
      p.buf += '%';
      continue;
    }
    if (argNum >= args.length) {
      p.buf += `%!${verb}(MISSING)`;
      continue;
    }
    if (verb === 'v') {
      f.sharpV = f.sharp;
      f.sharp = false;
      f.plusV = f.plus;
      f.plus = false;
    }
    p.printArg(args[argNum++], verb);
  }
  if (argNum < args.length) {
    p.f = noFlags();
    p.buf += '%!(EXTRA ';
    args.slice(argNum).forEach((a, k) => {
      if (k > 0) p.buf += ', ';
      if (a === undefined || a === null) p.buf += '<nil>';
      else {
        p.buf += `${typeName(a)}=`;
        p.printArg(a, 'v');
      }
    });
    p.buf += ')';
  }
  return p.buf;
}
