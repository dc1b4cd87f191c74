// Rendering for `ferry`: aligned tables (kubectl style), JSON/YAML, colour only on a terminal, and
// short human durations. Small enough that a table library would cost more than it saves.
import { stringify } from 'yaml';
import type { OutputFormat } from './args.ts';

export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export type Style = 'red' | 'yellow' | 'green' | 'dim' | 'bold';
const SGR: Record<Style, string> = { red: '31', yellow: '33', green: '32', dim: '2', bold: '1' };

export type Paint = (style: Style, text: string) => string;

/** Colour when the stream is a terminal, unless NO_COLOR is set (no-color.org) or TERM is dumb. */
export function painter(stream: Stream, env: Record<string, string | undefined>): Paint {
  const on = stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
  return on ? (style, text) => `\x1b[${SGR[style]}m${text}\x1b[0m` : (_style, text) => text;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the SGR sequences painter() writes
const ANSI = /\x1b\[[0-9;]*m/g;
const width = (s: string): number => s.replace(ANSI, '').length;

/** Columns separated by three spaces, padded to the widest cell; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - width(c))))
      .join('   ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function serialize(data: unknown, format: Exclude<OutputFormat, 'table'>): string {
  return format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data);
}

/** kubectl's age notation: 45s, 12m, 5h, 3d (the two leading units below a day: 2h5m). */
export function humanDuration(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d`;
}

/** Vault's multi-line errors ("1 error occurred:\n\t* permission denied") on one line. */
export const oneLine = (message: string): string => message.replace(/\s+/g, ' ').trim();
