// Argument parsing for `ferry`: kubectl's connection flags shared by every command, each command's
// own flags, strict (an unknown flag is a usage error, not a crash). Built on util.parseArgs.
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { CODES, errorMessage, FerryError } from '../errors.ts';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Flags every command takes (kubectl's names). */
export interface GlobalFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces: boolean;
  output: OutputFormat;
  help: boolean;
}

export type CommandValues = Record<string, string | boolean | undefined>;

export interface CommandSpec {
  name: string;
  summary: string;
  /** The synopsis after `ferry <name>`, e.g. `FILE|DIR|- [--cluster]`. */
  synopsis: string;
  /** Paragraphs printed under the synopsis by `ferry <name> --help`. */
  description: string;
  options: ParseArgsOptionsConfig;
  /** One help line per option of `options`, keyed by its name. */
  optionHelp: Record<string, string>;
  positionals: { min: number; max: number };
}

export interface Invocation<C extends CommandSpec = CommandSpec> {
  command: C | undefined;
  global: GlobalFlags;
  values: CommandValues;
  positionals: string[];
}

export class UsageError extends FerryError {
  constructor(message: string) {
    super(CODES.USAGE, message);
  }
}

const GLOBAL_OPTIONS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

export const GLOBAL_HELP = `Flags for every command:
  --kubeconfig FILE        kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  --context NAME           kubeconfig context to use
  -n, --namespace NS       namespace (default: the context's)
  -A, --all-namespaces     every namespace
  -o, --output FORMAT      table (default), json or yaml
  -h, --help               this help`;

/**
 * Splits argv into the command and its flags. Flags may come before or after the command name, as
 * with kubectl; `--` ends the flags.
 */
export function parseInvocation<C extends CommandSpec>(
  argv: string[],
  commands: readonly C[],
): Invocation<C> {
  const all: ParseArgsOptionsConfig = { ...GLOBAL_OPTIONS };
  for (const c of commands) Object.assign(all, c.options);
  // First pass, lenient: only to find the command name among the positionals.
  const { tokens } = parseArgs({
    args: argv,
    options: all,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === 'positional');
  const command = first ? commands.find((c) => c.name === first.value) : undefined;
  if (first && !command) {
    throw new UsageError(
      `unknown command "${first.value}" (commands: ${commands.map((c) => c.name).join(', ')})`,
    );
  }
  const args = first ? argv.filter((_, i) => i !== first.index) : argv;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      options: { ...GLOBAL_OPTIONS, ...command?.options },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    // util.parseArgs explains unknown flags and missing values well; only the advice about '--' is noise.
    throw new UsageError(errorMessage(err).replace(/\. To specify a positional argument.*$/s, ''));
  }
  const v = parsed.values as CommandValues;
  const output = (v.output as string | undefined) ?? 'table';
  if (!(OUTPUT_FORMATS as readonly string[]).includes(output)) {
    throw new UsageError(`--output must be one of ${OUTPUT_FORMATS.join(', ')}, not "${output}"`);
  }
  const global: GlobalFlags = {
    allNamespaces: v['all-namespaces'] === true,
    output: output as OutputFormat,
    help: v.help === true,
  };
  if (typeof v.kubeconfig === 'string') global.kubeconfig = v.kubeconfig;
  if (typeof v.context === 'string') global.context = v.context;
  if (typeof v.namespace === 'string') global.namespace = v.namespace;
  if (global.allNamespaces && global.namespace !== undefined) {
    throw new UsageError('--namespace and --all-namespaces exclude each other');
  }
  const values: CommandValues = {};
  for (const name of Object.keys(command?.options ?? {})) values[name] = v[name];
  if (command && !global.help) {
    const n = parsed.positionals.length;
    const { min, max } = command.positionals;
    if (n < min || n > max) {
      throw new UsageError(`usage: ferry ${command.name} ${command.synopsis}`);
    }
  }
  return { command, global, values, positionals: parsed.positionals };
}

function optionLine(name: string, cfg: ParseArgsOptionsConfig[string], help: string): string {
  const flag = `${cfg?.short ? `-${cfg.short}, ` : ''}--${name}${cfg?.type === 'string' ? ' VALUE' : ''}`;
  return `  ${flag.padEnd(24)} ${help}`;
}

export function commandHelp(c: CommandSpec): string {
  const own = Object.entries(c.options).map(([name, cfg]) => optionLine(name, cfg, c.optionHelp[name] ?? ''));
  return [
    `Usage: ferry ${c.name} ${c.synopsis}`,
    '',
    c.description,
    '',
    ...(own.length > 0 ? ['Flags:', ...own, ''] : []),
    GLOBAL_HELP,
    '',
    'Exit codes: 0 fine, 1 findings, 2 usage or connection error.',
    '',
  ].join('\n');
}

export function mainHelp(commands: readonly CommandSpec[]): string {
  return [
    'Usage: ferry COMMAND [flags]',
    '',
    'Ferry delivers secrets from Vault and OpenBao into Kubernetes (secrets.hashicorp.com/v1beta1).',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    GLOBAL_HELP,
    '',
    'Run `ferry COMMAND --help` for a command. Exit codes: 0 fine, 1 findings, 2 usage or connection error.',
    '',
  ].join('\n');
}
