// The bench scripts' flags, parsed one way: `--name value` (or `--name` for a boolean), each flag
// typed by its default. A number flag that is not a finite number is an error rather than a NaN
// that would reach the figures; an unknown flag is an error too.
import { parseArgs } from 'node:util';

type Value = number | string | boolean;
export type Args<T> = {
  [K in keyof T]: T[K] extends number ? number : T[K] extends boolean ? boolean : string;
};

export function benchArgs<T extends Record<string, Value>>(
  defaults: T,
  args: string[] = process.argv.slice(2),
): Args<T> {
  const options = Object.fromEntries(
    Object.entries(defaults).map(([k, v]) => [
      k,
      typeof v === 'boolean'
        ? { type: 'boolean' as const, default: v }
        : { type: 'string' as const, default: String(v) },
    ]),
  );
  const { values } = parseArgs({ args, options, strict: true });
  const out: Record<string, Value> = {};
  for (const [k, d] of Object.entries(defaults)) {
    const v = values[k] as string | boolean;
    if (typeof d !== 'number') out[k] = v;
    else if (v === '' || !Number.isFinite(Number(v)))
      throw new Error(`--${k}: '${String(v)}' is not a number`);
    else out[k] = Number(v);
  }
  return out as Args<T>;
}
