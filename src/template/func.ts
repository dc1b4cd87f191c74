// Function signatures in Go terms, so argument checking and conversion follow text/template's
// evalArg/validateType rules (e.g. an int64 result passed to an `int` parameter is an error).
import type { GoValue } from './values.ts';

/**
 * any: interface{}; value: reflect.Value (builtins); map: map[string]interface{};
 * list: []interface{}; strings: []string.
 */
export type ParamType = 'any' | 'value' | 'string' | 'int' | 'int64' | 'float64' | 'bool' | 'map' | 'list';

export const GO_PARAM_TYPE: Record<ParamType, string> = {
  any: 'interface {}',
  value: 'reflect.Value',
  string: 'string',
  int: 'int',
  int64: 'int64',
  float64: 'float64',
  bool: 'bool',
  map: 'map[string]interface {}',
  list: '[]interface {}',
};

/** What a function may read of the render besides its arguments. Its work and allocations are
 * charged through meter() (meter.ts), the one budget of the render in progress. */
export interface CallContext {
  /** Wall clock in milliseconds, injectable for tests. */
  now(): number;
  /** Uniform random in [0, 1). */
  random(): number;
}

export interface GoFunc {
  params: ParamType[];
  /** Element type of a trailing variadic parameter. */
  variadic?: ParamType;
  fn: (args: GoValue[], ctx: CallContext) => GoValue;
}

/**
 * A Go function's error result or panic, reported as "error calling NAME: message". `safe` replaces
 * the message in Ferry's error when Go's text would echo data values.
 */
export class FuncError extends Error {
  readonly safe: string | undefined;
  constructor(message: string, safe?: string) {
    super(message);
    this.safe = safe;
  }
}

export const fn = (params: ParamType[], f: GoFunc['fn'], variadic?: ParamType): GoFunc =>
  variadic ? { params, variadic, fn: f } : { params, fn: f };
