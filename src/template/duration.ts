// Go's time.Duration (int64 nanoseconds as bigint): ParseDuration, String, Round, and Sprig's
// ago/durationRound built on them.
import { GoInt, GoTime, type GoValue } from './values.ts';

const NS = 1n;
const US = 1000n;
const MS = 1_000_000n;
const SEC = 1_000_000_000n;
const MIN = 60n * SEC;
const HOUR = 60n * MIN;
const MAX = (1n << 63n) - 1n;
const MIN_DURATION = -(1n << 63n);

const UNITS: Record<string, bigint> = {
  ns: NS,
  us: US,
  µs: US,
  μs: US,
  ms: MS,
  s: SEC,
  m: MIN,
  h: HOUR,
};

/** time.ParseDuration; undefined where Go returns an error. */
export function parseDuration(input: string): bigint | undefined {
  let s = input;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let d = 0n;
  while (s !== '') {
    if (!/^[0-9.]/.test(s)) return undefined;
    const int = /^[0-9]*/.exec(s)![0];
    let v = 0n;
    for (const c of int) {
      if (v > (1n << 63n) / 10n) return undefined;
      v = v * 10n + BigInt(c.charCodeAt(0) - 48);
      if (v > 1n << 63n) return undefined;
    }
    s = s.slice(int.length);
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      const frac = /^[0-9]*/.exec(s.slice(1))![0];
      post = frac.length > 0;
      let overflow = false;
      for (const c of frac) {
        if (overflow) continue;
        if (f > MAX / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(c.charCodeAt(0) - 48);
        if (y > 1n << 63n) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      s = s.slice(1 + frac.length);
    }
    if (int.length === 0 && !post) return undefined;
    const unitText = /^[^0-9.]*/.exec(s)![0];
    if (unitText === '') return undefined;
    s = s.slice(unitText.length);
    const unit = UNITS[unitText];
    if (unit === undefined) return undefined;
    if (v > (1n << 63n) / unit) return undefined;
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > 1n << 63n) return undefined;
    }
    d += v;
    if (d > 1n << 63n) return undefined;
  }
  if (neg) return -d;
  return d > MAX ? undefined : d;
}

/** time.Duration.String. */
export function durationString(d: bigint): string {
  const neg = d < 0n;
  let u = neg ? -d : d;
  let out: string;
  const frac = (v: bigint, prec: number): [string, bigint] => {
    let digits = '';
    let printed = false;
    let x = v;
    for (let i = 0; i < prec; i++) {
      const digit = x % 10n;
      printed ||= digit !== 0n;
      if (printed) digits = digit.toString() + digits;
      x /= 10n;
    }
    return [printed ? `.${digits}` : '', x];
  };
  if (u < SEC) {
    if (u === 0n) return '0s';
    const [prec, unit] = u < US ? [0, 'ns'] : u < MS ? [3, 'µs'] : [6, 'ms'];
    const [f, rest] = frac(u, prec);
    out = `${rest}${f}${unit}`;
  } else {
    const [f, secs] = frac(u, 9);
    u = secs;
    out = `${u % 60n}${f}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/** time.Duration.Round(m) for m > 0. */
function roundDuration(d: bigint, m: bigint): bigint {
  let r = d % m;
  if (d < 0n) {
    r = -r;
    if (r + r < m) return d + r;
    const d1 = d - m + r;
    return d1 >= MIN_DURATION ? d1 : MIN_DURATION;
  }
  if (r + r < m) return d - r;
  const d1 = d + m - r;
  return d1 <= MAX ? d1 : MAX;
}

/** time.Since(t) in nanoseconds, saturating like time.Time.Sub. */
function since(t: GoTime | bigint, nowMs: number): bigint {
  const tNs = t instanceof GoTime ? BigInt(t.ms) * MS + BigInt(t.nanos) : t * SEC;
  const d = BigInt(Math.trunc(nowMs)) * MS - tNs;
  return d > MAX ? MAX : d < MIN_DURATION ? MIN_DURATION : d;
}

/** Sprig's ago: time since a time.Time, int or int64 (Unix seconds), rounded to seconds. */
export function sprigAgo(date: GoValue, nowMs: number): string {
  let t: GoTime | bigint | undefined;
  if (date instanceof GoTime) t = date;
  else if (typeof date === 'bigint') t = date;
  else if (date instanceof GoInt && date.type === 'int64') t = date.value;
  const d = t === undefined ? 0n : since(t, nowMs);
  return durationString(roundDuration(d, SEC));
}

/** Sprig's durationRound: the largest whole unit (y, mo, d, h, m, s) of a duration. */
export function sprigDurationRound(duration: GoValue, nowMs: number): string {
  let d = 0n;
  if (typeof duration === 'string') d = parseDuration(duration) ?? 0n;
  else if (duration instanceof GoInt && duration.type === 'int64') d = duration.value;
  else if (duration instanceof GoTime) d = since(duration, nowMs);
  // uint64(d) and its negation, as Go computes them.
  const u = BigInt.asUintN(64, d < 0n ? -d : d);
  const day = 24n * HOUR;
  const steps: [bigint, string][] = [
    [365n * day, 'y'],
    [30n * day, 'mo'],
    [day, 'd'],
    [HOUR, 'h'],
    [MIN, 'm'],
    [SEC, 's'],
  ];
  for (const [unit, suffix] of steps) if (u > unit) return `${u / unit}${suffix}`;
  return '0s';
}
