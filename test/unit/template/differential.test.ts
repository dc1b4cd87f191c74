// Differential test: Ferry's engine against Go's text/template + Sprig (the oracle in
// test/differential/) on the hand-written corpus, on fast-check generated templates, and
// structurally on the non-deterministic functions. Outputs must agree byte for byte, or both sides
// must fail; error-message agreement is reported separately. Skips only without a Go toolchain.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import bcryptjs from 'bcryptjs';
import fc from 'fast-check';
import { ALLOWED_FUNCTIONS, compileTemplates, decodeVaultJson } from '../../../src/template/index.ts';
import { findOracle, type OracleCase, type OracleResult, runOracle } from '../../differential/oracle.ts';

const corpusDir = join(import.meta.dirname, '..', '..', 'differential', 'corpus');
const oracle = findOracle();
const skip = 'skip' in oracle ? oracle.skip : false;
const runGo = (cases: OracleCase[]): OracleResult[] => {
  if ('skip' in oracle) throw new Error(oracle.skip);
  return runOracle(oracle.bin, cases, ALLOWED_FUNCTIONS);
};

type Ours = { output: string } | { error: string };

function runOurs(c: OracleCase): Ours {
  try {
    const t = compileTemplates(c.templates);
    const data = c.jsonNumber ? decodeVaultJson(JSON.stringify(c.data)) : c.data;
    return { output: t.render(c.entry, data) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

interface Report {
  total: number;
  agree: number;
  bothError: number;
  sameMessage: number;
  divergences: string[];
}

function compare(cases: OracleCase[]): Report {
  const go = runGo(cases);
  const r: Report = { total: cases.length, agree: 0, bothError: 0, sameMessage: 0, divergences: [] };
  cases.forEach((c, i) => {
    const g = go[i] as OracleResult;
    const o = runOurs(c);
    if ('output' in g && 'output' in o && g.output === o.output) r.agree++;
    else if ('error' in g && 'error' in o) {
      r.agree++;
      r.bothError++;
      if (g.error === o.error) r.sameMessage++;
      else if (process.env.FERRY_DIFF_VERBOSE)
        r.divergences.push(`(message) ${c.name}\n  go:    ${g.error}\n  ferry: ${o.error}`);
    } else {
      r.divergences.push(
        `${c.name}: ${JSON.stringify(c.templates[0]?.text)}\n  go:    ${JSON.stringify(g)}\n  ferry: ${JSON.stringify(o)}`,
      );
    }
  });
  return r;
}

function summary(label: string, r: Report): string {
  const pct = (n: number, d: number): string => (d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(1)}%`);
  return `${label}: ${r.agree}/${r.total} agree (${pct(r.agree, r.total)}); error messages identical in ${r.sameMessage}/${r.bothError} (${pct(r.sameMessage, r.bothError)})`;
}

const loadCases = (file: string): OracleCase[] =>
  JSON.parse(readFileSync(join(corpusDir, file), 'utf8')) as OracleCase[];

test('hand-written corpus agrees with Go', { skip }, (t) => {
  const r = compare(loadCases('corpus.json'));
  t.diagnostic(summary('corpus', r));
  for (const d of r.divergences) t.diagnostic(d);
  assert.equal(r.divergences.filter((d) => !d.startsWith('(message)')).length, 0);
});

// Non-deterministic functions: both engines' outputs must satisfy the same structural check.
const structural: Record<string, (out: string) => boolean> = {
  'nd-randInt': (o) => /^[1-9]$/.test(o),
  'nd-shuffle': (o) => [...o].sort().join('') === 'abc',
  'nd-bcrypt': (o) => /^\$2a\$10\$[./A-Za-z0-9]{53}$/.test(o) && bcryptjs.compareSync('x', o),
  'nd-htpasswd': (o) =>
    o.startsWith('u:') && /^\$2a\$10\$/.test(o.slice(2)) && bcryptjs.compareSync('p', o.slice(2)),
};

test('non-deterministic functions agree with Go structurally', { skip }, () => {
  const cases = loadCases('nondeterministic.json');
  const go = runGo(cases);
  cases.forEach((c, i) => {
    const g = go[i] as OracleResult;
    const o = runOurs(c);
    const check = structural[c.name];
    if (check) {
      assert.ok(
        'output' in g && check(g.output),
        `${c.name}: Go output fails the check: ${JSON.stringify(g)}`,
      );
      assert.ok(
        'output' in o && check(o.output),
        `${c.name}: Ferry output fails the check: ${JSON.stringify(o)}`,
      );
    } else if ('error' in g) assert.ok('error' in o, `${c.name}: Go failed, Ferry gave ${JSON.stringify(o)}`);
    else assert.deepEqual(o, { output: g.output }, c.name);
  });
});

const piece = fc.oneof(
  fc.constantFrom('.a', '.b', '.n', '.f', '.l', '.m', '.missing', '.z', '$', '.m.k', '(index .l 0)'),
  fc.constantFrom('1', '0', '-3', '2.5', '1e6', '"x"', '"<&>"', 'true', 'false', "'a'", '0x10'),
);
const fnName = fc.constantFrom(
  'print',
  'len',
  'not',
  'eq',
  'lt',
  'printf "%v|%d|%s|%q"',
  'printf "%5.2f %x"',
  'toString',
  'toJson',
  'upper',
  'add',
  'sub',
  'default "d"',
  'empty',
  'quote',
  'kindOf',
  'typeOf',
  'list',
  'int',
  'float64',
  'join ","',
  'index',
  'and',
  'or',
  'ne',
  'ge',
  'html',
  'js',
  'urlquery',
  'b64enc',
  'trim',
  'repeat 2',
  'max',
  'round',
);
// printf with Go's flags, widths and precisions on any verb.
const printfFormat = fc
  .tuple(
    fc.constantFrom('', '+', '-', '#', ' ', '0', '-+', '#0'),
    fc.constantFrom('', '1', '6', '08'),
    fc.constantFrom('', '.0', '.2', '.'),
    fc.constantFrom('v', 'd', 's', 'q', 'x', 'X', 'f', 'e', 'g', 'T', 't', 'c', 'U', 'o', 'b'),
  )
  .map(([flags, width, prec, verb]) => `%${flags}${width}${prec}${verb}`);
const action = fc.oneof(
  piece.map((p) => `{{ ${p} }}`),
  fc
    .tuple(fnName, fc.array(piece, { minLength: 0, maxLength: 3 }))
    .map(([f, a]) => `{{ ${f} ${a.join(' ')} }}`),
  fc.tuple(piece, fnName).map(([p, f]) => `{{ ${p} | ${f} }}`),
  fc.tuple(piece, piece).map(([p, q]) => `{{ if ${p} }}T{{ else }}{{ ${q} }}{{ end }}`),
  piece.map((p) => `{{ range $i, $v := ${p} }}{{ $i }}:{{ $v }},{{ end }}`),
  piece.map((p) => `{{ with ${p} }}{{ . }}{{ end }}`),
  fc
    .tuple(printfFormat, printfFormat, piece, piece)
    .map(([f, g, p, q]) => `{{ printf "${f}|${g}" ${p} ${q} }}`),
  fc
    .tuple(fc.constantFrom('x', 'y'), piece, piece)
    .map(([n, body, arg]) => `{{ define "${n}" }}[{{ ${body} }}]{{ end }}{{ template "${n}" ${arg} }}`),
  fc.tuple(fc.constantFrom('x', 'y'), piece).map(([n, arg]) => `{{ template "${n}" ${arg} }}`),
  fc.tuple(fc.constantFrom('b', 'c'), piece).map(([n, p]) => `{{ block "${n}" ${p} }}<{{ . }}>{{ end }}`),
);
const template = fc.array(fc.oneof(action, fc.constantFrom(' ', '\n', 'txt')), {
  minLength: 1,
  maxLength: 5,
});
const data = {
  a: 'secret',
  b: '',
  n: 42,
  f: 0.1,
  l: ['x', 1, null, 2.5],
  m: { k: 'v', j: [1] },
  z: null,
};

test('generated templates agree with Go', { skip }, (t) => {
  const cases = fc.sample(template, { numRuns: 600, seed: 5 }).map(
    (parts, i): OracleCase => ({
      name: `gen-${i}`,
      templates: [{ name: 't', text: parts.join('') }],
      entry: 't',
      data,
    }),
  );
  const r = compare(cases);
  t.diagnostic(summary('generated', r));
  for (const d of r.divergences) t.diagnostic(d);
  assert.equal(r.divergences.filter((d) => !d.startsWith('(message)')).length, 0);
});
