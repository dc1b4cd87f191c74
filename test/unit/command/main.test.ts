import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../../src/clock.ts';
import { parseInvocation, UsageError } from '../../../src/command/args.ts';
import type { Io } from '../../../src/command/context.ts';
import { COMMANDS, main } from '../../../src/command/main.ts';
import { humanDuration, painter, table } from '../../../src/command/output.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const LINT = join(ROOT, 'test', 'fixtures', 'lint');

function io(opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const value: Io = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: { KUBECONFIG: '/nonexistent/kubeconfig', ...opts.env },
    readStdin: async () => opts.stdin ?? '',
    clock: systemClock,
    signal: new AbortController().signal,
  };
  return { io: value, out: () => out.join(''), err: () => err.join('') };
}

describe('ferry: arguments', () => {
  it('takes kubectl flags before or after the command', () => {
    const a = parseInvocation(['-n', 'team', 'lint', '--cluster', 'x.yaml', '-o', 'json'], COMMANDS);
    assert.equal(a.command?.name, 'lint');
    assert.equal(a.global.namespace, 'team');
    assert.equal(a.global.output, 'json');
    assert.equal(a.values.cluster, true);
    assert.deepEqual(a.positionals, ['x.yaml']);
    const b = parseInvocation(['status', '-A', '--context=prod', '--kubeconfig', 'k'], COMMANDS);
    assert.equal(b.global.allNamespaces, true);
    assert.equal(b.global.context, 'prod');
    assert.equal(b.global.kubeconfig, 'k');
  });

  it('refuses unknown flags, commands, formats and a flag of another command', () => {
    const refused = (argv: string[], re: RegExp) =>
      assert.throws(
        () => parseInvocation(argv, COMMANDS),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
      );
    refused(['lint', '--bogus', 'x'], /Unknown option '--bogus'/);
    refused(['frobnicate'], /unknown command "frobnicate"/);
    refused(['status', '-o', 'wide'], /--output must be one of table, json, yaml/);
    refused(['status', '--fix'], /Unknown option '--fix'/);
    refused(['status', '-n', 'a', '-A'], /exclude each other/);
    refused(['lint'], /usage: ferry lint/);
  });
});

describe('ferry: exit codes and messages', () => {
  it('0 for help, 1 for findings, 0 for a clean file, 2 for usage and unreadable input', async () => {
    let t = io();
    assert.equal(await main(['--help'], t.io), 0);
    assert.match(t.out(), /Commands:\n {2}status/);
    t = io();
    assert.equal(await main([], t.io), 2);
    assert.equal(t.out(), '');
    assert.match(t.err(), /^Usage: ferry COMMAND/);
    t = io();
    assert.equal(await main(['lint', '--help'], t.io), 0);
    assert.match(t.out(), /Usage: ferry lint FILE\|DIR\|-/);
    t = io();
    assert.equal(await main(['lint', join(LINT, 'bad', 'dialect.yaml')], t.io), 1);
    t = io();
    assert.equal(await main(['lint', join(LINT, 'good')], t.io), 0);
    assert.match(t.out(), /no findings/);
    t = io();
    assert.equal(await main(['lint', '--nope', 'x'], t.io), 2);
    assert.match(t.err(), /^ferry: Unknown option '--nope'\nRun `ferry --help` for usage\.\n$/);
    t = io();
    assert.equal(await main(['audit', '--help'], t.io), 0);
    assert.match(t.out(), /Usage: ferry audit \[-n NS \| -A\] \[--environments FILE\]/);
    t = io();
    assert.equal(await main(['audit', '--environments', '/nonexistent/envs.yaml'], t.io), 2);
    assert.match(t.err(), /^ferry: --environments \/nonexistent\/envs\.yaml: ENOENT/);
    t = io();
    assert.equal(await main(['doctor', '--help'], t.io), 0);
    assert.match(t.out(), /--no-login/);
    t = io();
    assert.equal(await main(['lint', '/nonexistent/dir'], t.io), 2);
    assert.doesNotMatch(t.err(), /\n\s+at /, 'no stack trace');
  });

  it('reads stdin with -, and prints JSON that parses', async () => {
    const t = io({
      stdin: 'apiVersion: secrets.hashicorp.com/v1beta1\nkind: VaultSecret\nmetadata: {name: x}\n',
    });
    assert.equal(await main(['lint', '-', '-o', 'json'], t.io), 1);
    const parsed = JSON.parse(t.out()) as { findings: { rule: string; file: string }[] };
    assert.equal(parsed.findings[0]?.rule, 'dialect');
    assert.equal(parsed.findings[0]?.file, '<stdin>');
  });

  it('--fix writes the corrections back to the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-fix-'));
    const file = join(dir, 'a.yaml');
    writeFileSync(file, readFileSync(join(LINT, 'bad', 'dialect.yaml')));
    assert.equal(await main(['lint', '--fix', file], io().io), 1);
    const t = io();
    assert.equal(await main(['lint', file, '-o', 'json'], t.io), 1);
    const left = (JSON.parse(t.out()) as { findings: { field: string }[] }).findings.map((f) => f.field);
    assert.deepEqual(left, ['spec.rollout']);
  });

  it('a connection problem is exit code 2 with one line', async () => {
    const t = io();
    assert.equal(await main(['lint', '--cluster', join(LINT, 'good')], t.io), 2);
    assert.match(t.err(), /^ferry: cannot read kubeconfig \/nonexistent\/kubeconfig\n$/);
  });

  it('the bin entry runs with Node 24 and exits with the code', async () => {
    const run = promisify(execFile);
    const node = join(ROOT, 'node_modules', '.bin', 'node');
    const { stdout } = await run(node, [join(ROOT, 'src', 'cli', 'ferry.ts'), '--help']);
    assert.match(stdout, /^Usage: ferry COMMAND/);
    await assert.rejects(
      run(node, [join(ROOT, 'src', 'cli', 'ferry.ts'), 'lint', '--x', 'y']),
      (e: { code?: number }) => e.code === 2,
    );
  });
});

describe('ferry: output', () => {
  it('aligns table columns, ignoring colour codes', () => {
    const paint = painter({ write: () => true, isTTY: true }, {});
    const t = table(
      ['A', 'LONGER'],
      [
        [paint('red', 'xx'), 'y'],
        ['z', 'w'],
      ],
    );
    assert.equal(
      t.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), ''),
      'A    LONGER\nxx   y\nz    w\n',
    );
  });

  it('colours only a terminal, and never with NO_COLOR', () => {
    assert.equal(painter({ write: () => true, isTTY: false }, {})('red', 'x'), 'x');
    assert.equal(painter({ write: () => true, isTTY: true }, { NO_COLOR: '1' })('red', 'x'), 'x');
    assert.equal(painter({ write: () => true, isTTY: true }, {})('red', 'x'), '\x1b[31mx\x1b[0m');
  });

  it('writes ages as kubectl does', () => {
    assert.deepEqual([5_000, 119_000, 600_000, 3_600_000, 5_400_000, 3 * 86_400_000].map(humanDuration), [
      '5s',
      '119s',
      '10m',
      '1h',
      '1h30m',
      '3d',
    ]);
  });
});
