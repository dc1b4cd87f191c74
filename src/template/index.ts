// Ferry's Go text/template + Sprig engine: the public API. Compile a set of named sources once,
// render any of them many times. Errors carry template name, line and column, and never echo
// values from the data.
import { randomBytes } from 'node:crypto';
import { CODES, FerryError } from '../errors.ts';
import { ALLOWED_FUNCTIONS } from './allowed.ts';
import { BUILTINS } from './builtins.ts';
import { type Env, ExecFailure, execute, LimitExceeded } from './exec.ts';
import type { GoFunc } from './func.ts';
import { ParseFailure, parseInto, type Tree } from './parse.ts';
import { SPRIG } from './sprig.ts';
import { fromJS } from './values.ts';

export { ALLOWED_FUNCTIONS } from './allowed.ts';
export { decodeVaultJson, GoInt, JsonNumber } from './values.ts';

export interface TemplateSource {
  name: string;
  text: string;
}

export interface TemplateLimits {
  maxSteps?: number;
  maxOutputBytes?: number;
  maxAllocBytes?: number;
  maxDurationMs?: number;
}

export interface CompileOptions {
  limits?: TemplateLimits;
  /** Clock and randomness for date and random functions; defaults to the real ones. */
  now?: () => number;
  random?: () => number;
  /** Monotonic milliseconds for the render deadline; defaults to performance.now. */
  clock?: () => number;
}

export interface CompiledTemplates {
  /** Renders a template; `data` is JSON-shaped (JsonNumber marks json.Number values). */
  render(name: string, data: unknown): string;
}

/** TEMPLATE for errors in the template, TEMPLATE_LIMIT when a render ran out of a resource budget. */
export class TemplateError extends FerryError {
  readonly templateName: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  constructor(
    message: string,
    where: { templateName: string; line?: number | undefined; col?: number | undefined },
    code: typeof CODES.TEMPLATE | typeof CODES.TEMPLATE_LIMIT = CODES.TEMPLATE,
  ) {
    super(code, message);
    this.templateName = where.templateName;
    this.line = where.line;
    this.col = where.col;
  }
}

/** Per render; docs/security.md explains the values. */
export const DEFAULT_LIMITS = {
  maxSteps: 1_000_000,
  maxOutputBytes: 1 << 20,
  maxAllocBytes: 32 << 20,
  maxDurationMs: 1000,
} as const;

// The function table is the same for every template set: built once, read-only afterwards.
const FUNCS = new Map<string, GoFunc>(Object.entries(BUILTINS));
// Added functions shadow builtins, as in Go (Sprig's slice replaces the builtin slice).
for (const k of ALLOWED_FUNCTIONS) FUNCS.set(k, SPRIG[k]!);
const BUILTIN_NAMES: ReadonlySet<string> = new Set(Object.keys(BUILTINS));
const hasFunction = (name: string): boolean => FUNCS.has(name);

export function compileTemplates(sources: TemplateSource[], opts: CompileOptions = {}): CompiledTemplates {
  const trees = new Map<string, Tree>();
  for (const s of sources) {
    try {
      parseInto(s.name, s.text, trees, hasFunction);
    } catch (e) {
      if (e instanceof ParseFailure)
        throw new TemplateError(e.message, { templateName: e.templateName, line: e.line });
      throw e;
    }
  }
  const env: Env = {
    trees,
    funcs: FUNCS,
    builtins: BUILTIN_NAMES,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    clock: opts.clock ?? (() => performance.now()),
    ctx: {
      now: opts.now ?? Date.now,
      random: opts.random ?? (() => randomBytes(6).readUIntBE(0, 6) / 2 ** 48),
    },
  };
  return {
    render(name, data) {
      try {
        return execute(env, name, fromJS(data));
      } catch (e) {
        if (e instanceof ExecFailure) {
          const where = { templateName: e.templateName, line: e.line, col: e.col };
          const code = e instanceof LimitExceeded ? CODES.TEMPLATE_LIMIT : CODES.TEMPLATE;
          throw new TemplateError(e.message, where, code);
        }
        if (e instanceof RangeError && /call stack/i.test(e.message)) {
          throw new TemplateError(
            `template: ${name}: execution too deeply nested`,
            { templateName: name },
            CODES.TEMPLATE_LIMIT,
          );
        }
        throw e;
      }
    },
  };
}
