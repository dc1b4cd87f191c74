// Go's dynamic value model as seen by text/template over JSON-decoded data:
//   undefined       an invalid reflect.Value (missing map key, <no value>)
//   null            a nil interface{} (JSON null inside a map or slice)
//   string, boolean Go string and bool
//   number          float64 (encoding/json's default for numbers)
//   bigint          Go int (template integer constants, len, atoi, ...)
//   GoInt           other integer types (int64 from Sprig arithmetic, uint8 from index on a string)
//   JsonNumber      json.Number (how the Vault API client decodes numbers, so what VSO sees)
//   GoTime          time.Time (toDate)
//   GoSemver        *semver.Version (semver)
//   GoStruct        a plain Go struct value (sprig.certificate from buildCustomCert)
//   arrays/objects  []interface{} / map[string]interface{}, or the typed variants recorded below

export type GoValue =
  | undefined
  | null
  | string
  | boolean
  | number
  | bigint
  | GoInt
  | JsonNumber
  | GoTime
  | GoSemver
  | GoStruct
  | GoValue[]
  | GoMap;
export interface GoMap {
  [key: string]: GoValue;
}

/** An empty map. Without a prototype, so that a key named `__proto__` (legal in Vault data and in
 * Go maps) is an ordinary key rather than the object's prototype. */
export const newMap = (): GoMap => Object.create(null) as GoMap;

export type IntType = 'int64' | 'int32' | 'uint8' | 'uint64' | 'uint';

export class GoInt {
  readonly type: IntType;
  readonly value: bigint;
  constructor(type: IntType, value: bigint) {
    this.type = type;
    this.value = value;
  }
}

/** json.Number: a string-kinded number that keeps Vault's exact text. */
export class JsonNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

export class GoTime {
  /** Milliseconds since the epoch; Go's nanoseconds below a millisecond are kept separately. */
  readonly ms: number;
  readonly nanos: number;
  /** Offset from UTC in minutes; the zone name Go prints alongside it. */
  readonly offsetMin: number;
  readonly zone: string;
  constructor(ms: number, nanos = 0, offsetMin = 0, zone = 'UTC') {
    this.ms = ms;
    this.nanos = nanos;
    this.offsetMin = offsetMin;
    this.zone = zone;
  }
}

export class GoSemver {
  readonly major: bigint;
  readonly minor: bigint;
  readonly patch: bigint;
  readonly pre: string;
  readonly metadata: string;
  readonly original: string;
  constructor(major: bigint, minor: bigint, patch: bigint, pre: string, metadata: string, original: string) {
    this.major = major;
    this.minor = minor;
    this.patch = patch;
    this.pre = pre;
    this.metadata = metadata;
    this.original = original;
  }
  toString(): string {
    let s = `${this.major}.${this.minor}.${this.patch}`;
    if (this.pre) s += `-${this.pre}`;
    if (this.metadata) s += `+${this.metadata}`;
    return s;
  }
}

/** A struct value with exported fields in declaration order. */
export class GoStruct {
  readonly type: string;
  readonly fields: ReadonlyArray<readonly [string, GoValue]>;
  constructor(type: string, fields: ReadonlyArray<readonly [string, GoValue]>) {
    this.type = type;
    this.fields = fields;
  }
  /** Go's == on struct values whose fields are strings. */
  equals(o: GoStruct): boolean {
    return (
      this.type === o.type &&
      this.fields.every(([k, v], i) => o.fields[i]?.[0] === k && o.fields[i]?.[1] === v)
    );
  }
  field(name: string): { value: GoValue } | undefined {
    const f = this.fields.find(([k]) => k === name);
    return f ? { value: f[1] } : undefined;
  }
}

// Element/value types of slices and maps that are not interface{} (e.g. []string from splitList).
const compositeTypes = new WeakMap<object, string>();

export function typed<T extends GoValue[] | GoMap>(v: T, elemType: string): T {
  compositeTypes.set(v, elemType);
  return v;
}

export function elemType(v: GoValue[] | GoMap): string {
  return compositeTypes.get(v) ?? 'interface {}';
}

export const isMap = (v: unknown): v is GoMap =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  !(v instanceof GoInt) &&
  !(v instanceof JsonNumber) &&
  !(v instanceof GoTime) &&
  !(v instanceof GoSemver) &&
  !(v instanceof GoStruct);

export type Kind =
  | 'invalid'
  | 'interface'
  | 'bool'
  | 'int'
  | 'int64'
  | 'int32'
  | 'uint8'
  | 'uint64'
  | 'uint'
  | 'float64'
  | 'string'
  | 'slice'
  | 'map'
  | 'struct'
  | 'ptr';

export function kindOf(v: GoValue): Kind {
  if (v === undefined) return 'invalid';
  if (v === null) return 'interface';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
      return 'float64';
    case 'bigint':
      return 'int';
  }
  if (v instanceof GoInt) return v.type;
  if (v instanceof JsonNumber) return 'string';
  if (v instanceof GoTime || v instanceof GoStruct) return 'struct';
  if (v instanceof GoSemver) return 'ptr';
  return Array.isArray(v) ? 'slice' : 'map';
}

export function typeName(v: GoValue): string {
  if (v === undefined || v === null) return '<nil>';
  if (v instanceof JsonNumber) return 'json.Number';
  if (v instanceof GoTime) return 'time.Time';
  if (v instanceof GoSemver) return '*semver.Version';
  if (v instanceof GoStruct) return v.type;
  if (Array.isArray(v)) return `[]${elemType(v)}`;
  if (isMap(v)) return `map[string]${elemType(v)}`;
  return kindOf(v);
}

export const isIntKind = (k: Kind): boolean => k === 'int' || k === 'int64' || k === 'int32';
export const isUintKind = (k: Kind): boolean => k === 'uint8' || k === 'uint64' || k === 'uint';

/** Integer value of an int/uint-kinded value. */
export function intValue(v: GoValue): bigint {
  if (typeof v === 'bigint') return v;
  if (v instanceof GoInt) return v.value;
  throw new TypeError('not an integer');
}

/** Go's length for strings (UTF-8 bytes), slices and maps; undefined when len is not defined. */
export function goLen(v: GoValue): number | undefined {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (v instanceof JsonNumber) return Buffer.byteLength(v.text, 'utf8');
  if (Array.isArray(v)) return v.length;
  if (isMap(v)) return Object.keys(v).length;
  return undefined;
}

/** text/template's isTrue. */
export function truth(v: GoValue): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'string':
      return v.length > 0;
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
  }
  if (v instanceof GoInt) return v.value !== 0n;
  if (v instanceof JsonNumber) return v.text.length > 0;
  if (v instanceof GoTime || v instanceof GoSemver || v instanceof GoStruct) return true;
  return (goLen(v) ?? 0) > 0;
}

/** Go string value of a string-kinded value (string or json.Number). */
export function stringValue(v: GoValue): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof JsonNumber) return v.text;
  return undefined;
}

/** Sorts map keys the way fmt and range do (byte order of the UTF-8 encoding). */
export function sortedKeys(m: GoMap): string[] {
  return Object.keys(m).sort(compareGoStrings);
}

export function compareGoStrings(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Converts plain JSON-decoded data to the value model (numbers become float64, as encoding/json does). */
export function fromJS(v: unknown): GoValue {
  if (v === undefined || v === null) return v;
  if (Array.isArray(v)) return v.map(fromJS);
  if (
    v instanceof GoInt ||
    v instanceof JsonNumber ||
    v instanceof GoTime ||
    v instanceof GoSemver ||
    v instanceof GoStruct
  )
    return v;
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'number':
    case 'bigint':
      return v;
    case 'object': {
      const out = newMap();
      for (const [k, x] of Object.entries(v)) out[k] = fromJS(x);
      return out;
    }
  }
  return String(v);
}

/**
 * Decodes JSON the way the Vault API client does (json.Decoder.UseNumber): numbers keep their exact
 * text as json.Number. This is what VSO's templates see in .Secrets.
 */
export function decodeVaultJson(text: string): GoValue {
  const reviver = function (this: unknown, _k: string, v: unknown, ctx?: { source?: string }): unknown {
    return typeof v === 'number' && ctx?.source !== undefined ? new JsonNumber(ctx.source) : v;
  };
  return fromJS(JSON.parse(text, reviver as (k: string, v: unknown) => unknown));
}
