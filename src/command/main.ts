// `ferry`: dispatches to a command and turns its outcome into an exit code scripts can use:
// 0 fine, 1 findings, 2 usage or connection error. Errors are one line on stderr, never a stack
// trace, unless FERRY_DEBUG is set.
import { errorMessage, isFerryError } from '../errors.ts';
import { K8sApiError } from '../k8s/errors.ts';
import { commandHelp, mainHelp, parseInvocation, UsageError } from './args.ts';
import { auditCommand } from './audit.ts';
import { type Command, CommandContext, type Io } from './context.ts';
import { doctorCommand } from './doctor.ts';
import { lintCommand } from './lint.ts';
import { statusCommand } from './status.ts';

export const COMMANDS: readonly Command[] = [statusCommand, auditCommand, lintCommand, doctorCommand];

export const EXIT = { OK: 0, FINDINGS: 1, ERROR: 2 } as const;

function describe(err: unknown): string {
  if (err instanceof K8sApiError && (err.status === 401 || err.status === 403)) {
    return `the API server refused the request (${err.status} ${err.reason}): ${err.message}`;
  }
  return errorMessage(err);
}

export async function main(argv: string[], io: Io): Promise<number> {
  let ctx: CommandContext | undefined;
  try {
    const inv = parseInvocation(argv, COMMANDS);
    const command = inv.command;
    if (inv.global.help) {
      io.stdout.write(command ? commandHelp(command) : mainHelp(COMMANDS));
      return EXIT.OK;
    }
    if (!command) {
      // `ferry` alone is a usage error: the help goes where errors go.
      io.stderr.write(mainHelp(COMMANDS));
      return EXIT.ERROR;
    }
    ctx = new CommandContext(inv, io);
    return await command.run(ctx);
  } catch (err) {
    io.stderr.write(`ferry: ${describe(err)}\n`);
    if (err instanceof UsageError) io.stderr.write('Run `ferry --help` for usage.\n');
    if (io.env.FERRY_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    else if (!isFerryError(err)) io.stderr.write('(FERRY_DEBUG=1 shows where this came from)\n');
    return EXIT.ERROR;
  } finally {
    await ctx?.close();
  }
}
