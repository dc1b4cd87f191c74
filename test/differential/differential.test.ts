// Differential test: Ferry's engine against Go's text/template + Sprig (the oracle) on the
// hand-written corpus and on fast-check generated templates. Outputs must agree byte for byte,
// or both sides must fail; error-message agreement is reported separately.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ALLOWED_FUNCTIONS, compileTemplates, decodeVaultJson } from '../../src/template/index.ts';
import { type OracleCase, type OracleResult, runOracle } from './oracle.ts';

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
  const go = runOracle(cases, ALLOWED_FUNCTIONS);
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

const corpus = JSON.parse(
  readFileSync(join(import.meta.dirname, 'corpus', 'corpus.json'), 'utf8'),
) as OracleCase[];

test('hand-written corpus agrees with Go', () => {
  const r = compare(corpus);
  console.log(summary('corpus', r));
  for (const d of r.divergences) console.log(d);
  assert.equal(r.divergences.filter((d) => !d.startsWith('(message)')).length, 0);
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
const action = fc.oneof(
  piece.map((p) => `{{ ${p} }}`),
  fc
    .tuple(fnName, fc.array(piece, { minLength: 0, maxLength: 3 }))
    .map(([f, a]) => `{{ ${f} ${a.join(' ')} }}`),
  fc.tuple(piece, fnName).map(([p, f]) => `{{ ${p} | ${f} }}`),
  fc.tuple(piece, piece).map(([p, q]) => `{{ if ${p} }}T{{ else }}{{ ${q} }}{{ end }}`),
  piece.map((p) => `{{ range $i, $v := ${p} }}{{ $i }}:{{ $v }},{{ end }}`),
  piece.map((p) => `{{ with ${p} }}{{ . }}{{ end }}`),
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

test('generated templates agree with Go', () => {
  const cases = fc.sample(template, { numRuns: 400, seed: 5 }).map(
    (parts, i): OracleCase => ({
      name: `gen-${i}`,
      templates: [{ name: 't', text: parts.join('') }],
      entry: 't',
      data,
    }),
  );
  const r = compare(cases);
  console.log(summary('generated', r));
  for (const d of r.divergences) console.log(d);
  assert.equal(r.divergences.filter((d) => !d.startsWith('(message)')).length, 0);
});
