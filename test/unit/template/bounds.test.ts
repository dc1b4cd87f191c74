// Resource bounds of the template engine (issue 14): template bombs end in a TEMPLATE_LIMIT error
// before they allocate or spin, never in a crash, a RangeError or a stalled event loop. The clock
// is frozen unless a test is about the deadline, so every limit here is reached deterministically.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CODES } from '../../../src/errors.ts';
import {
  ALLOWED_FUNCTIONS,
  compileTemplates,
  TemplateError,
  type TemplateLimits,
} from '../../../src/template/index.ts';
import { findOracle, runOracle } from '../../differential/oracle.ts';

const frozen = (): number => 0;

function render(text: string, data: unknown = {}, limits?: TemplateLimits, clock = frozen): string {
  return compileTemplates([{ name: 'tpl', text }], { clock, ...(limits ? { limits } : {}) }).render(
    'tpl',
    data,
  );
}

function limitError(
  text: string,
  data: unknown = {},
  limits?: TemplateLimits,
  clock = frozen,
): TemplateError {
  try {
    render(text, data, limits, clock);
  } catch (e) {
    assert.ok(e instanceof TemplateError, `${text}: expected a TemplateError, got ${String(e)}`);
    assert.equal(e.code, CODES.TEMPLATE_LIMIT, `${text}: ${e.message}`);
    return e;
  }
  assert.fail(`${text}: expected a limit error`);
}

const DOUBLE_30 = '{{ $l := list .s .s }}{{ range until 30 }}{{ $l = list $l $l }}{{ end }}';

// Each would allocate hundreds of megabytes (or more) in one step, or run for minutes.
const BOMBS: [string, string][] = [
  ['indent', '{{ indent 400000000 "a" }}'],
  ['nindent', '{{ nindent 400000000 "a" }}'],
  ['repeat of a long string', '{{ repeat 5000 (repeat 10000 "xxxxxxxxxx") }}'],
  ['replace', '{{ replace "a" (repeat 1000 "b") (repeat 100000 "aaaaaaaaaa") }}'],
  ['replace of the empty string', '{{ replace "" (repeat 1000 "b") (repeat 100000 "aaaaaaaaaa") }}'],
  ['regexReplaceAll', '{{ regexReplaceAll "a" (repeat 100000 "aaaaaaaaaa") (repeat 1000 "b") }}'],
  [
    'regexReplaceAll with a group',
    '{{ regexReplaceAll "(a+)" (repeat 100000 "aaaaaaaaa ") (repeat 100 "$1") }}',
  ],
  ['join with a long separator', '{{ join (repeat 100000 "x") (splitList "" (repeat 1000 "a")) }}'],
  ['printf widths', `{{ printf "${'%09999999d'.repeat(8)}" 1 2 3 4 5 6 7 8 }}`],
  ['printf width per list element', '{{ printf "%9999999v" (until 100) }}'],
  [
    'printf precision',
    '{{ printf "%.9999999f %.9999999f %.9999999f %.9999999f %.9999999f %.9999999f %.9999999f" 1.0 1.0 1.0 1.0 1.0 1.0 1.0 }}',
  ],
  ['wrapWith with a long separator', '{{ wrapWith 1 (repeat 100000 "x") (repeat 1000 "a ") }}'],
  ['toJson of shared sub-lists', `${DOUBLE_30}{{ toJson $l }}`],
  ['toPrettyJson of shared sub-lists', `${DOUBLE_30}{{ toPrettyJson $l }}`],
  ['print of shared sub-lists', `${DOUBLE_30}{{ print $l }}`],
  ['deepCopy of shared sub-lists', `${DOUBLE_30}{{ deepCopy $l | len }}`],
  ['split into a map', '{{ split "" (repeat 200000 "aaaaaaaaaa") | len }}'],
  ['sortAlpha of a long list', '{{ sortAlpha (splitList "" (repeat 100000 "abcdefghij")) | len }}'],
  ['accumulation', '{{ $s := "" }}{{ range until 20000 }}{{ $s = print $s (repeat 1000 "x") }}{{ end }}'],
];

for (const [name, text] of BOMBS) {
  test(`template bomb ends in a limit error: ${name}`, { timeout: 20_000 }, () => {
    // A smaller budget than the default keeps the suite fast; each bomb needs far more.
    const e = limitError(text, { s: 'hunter2-SECRET' }, { maxAllocBytes: 16 << 20 });
    assert.match(e.message, /limit/);
    assert.doesNotMatch(e.message, /hunter2/);
  });
}

test('limit errors name the limit and its value, and the action at fault', () => {
  const e = limitError('a\n  {{ indent 400000000 "a" }}');
  assert.equal(e.line, 2);
  assert.match(
    e.message,
    /^template: tpl:2:\d+: executing "tpl" at <indent 400000000 "a">: execution exceeded the allocation limit \(33554432 bytes\)$/,
  );
  assert.match(
    limitError('{{ range until 20 }}{{ end }}', {}, { maxSteps: 10 }).message,
    /step limit \(10\)/,
  );
});

test('widths and precisions beyond 10^6 digits are refused as Go refuses them', () => {
  // Go's parsenum gives up on a number that passed 10^6 and the verb becomes %!(NOVERB).
  assert.equal(render('{{ printf "%0400000000d" 1 }}'), '%!(NOVERB)%!(EXTRA int=1)');
  assert.equal(render('{{ printf "x%.400000000f" 1.5 }}'), 'x%!(NOVERB)%!(EXTRA float64=1.5)');
  assert.equal(render('{{ printf "%*d" 400000000 1 }}'), '%!(BADWIDTH)1');
  assert.equal(render('{{ printf "%05d|%-4s|%.2f" 42 "ab" 3.14159 }}'), '00042|ab  |3.14');
});

test('the deadline stops a render that runs too long, in the executor and inside a builtin', () => {
  let t = 0;
  const ticking = (): number => (t += 1);
  const e = limitError('{{ range until 100000 }}{{ end }}', {}, { maxDurationMs: 50 }, ticking);
  assert.match(e.message, /time limit \(50 ms\)/);
  t = 0;
  const inside = limitError(
    '{{ regexReplaceAll "a" (repeat 100000 "aaaaaaaaaa") "b" | len }}',
    {},
    { maxDurationMs: 100 },
    ticking,
  );
  assert.match(inside.message, /at <regexReplaceAll .*time limit \(100 ms\)/);
});

test('wrap is linear: a megabyte of words wraps within the budget', { timeout: 20_000 }, () => {
  const words = 'lorem ipsum dolor sit amet '.repeat(38_000);
  const out = render('{{ wrap 80 .s }}', { s: words });
  // Each break replaces one space: the text is unchanged but for the newlines.
  assert.equal(out.replaceAll('\n', ' '), words);
  const lines = out.split('\n');
  assert.ok(lines.every((line) => line.length <= 80));
  assert.ok(lines.slice(0, -1).every((line) => line.length > 70));
  const long = render('{{ wrapWith 3 "|" .s | len }}', { s: 'x'.repeat(1_000_000) });
  assert.equal(long, String(1_000_000 + 333_333));
});

test('uniq of many distinct values is linear', { timeout: 20_000 }, () => {
  assert.equal(render('{{ uniq (until 200000) | len }}'), '200000');
  assert.equal(render('{{ uniq (list 1 "1" 1 (int64 1) (int64 1) nil nil 2.5 2.5) | len }}'), '5');
});

test('legitimate templates stay within the default limits', () => {
  const cert = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(64)}\n`.repeat(2000);
  const data = { cert, users: Array.from({ length: 500 }, (_, i) => ({ name: `u${i}`, pw: `p${i}` })) };
  const out = render(
    '{{ .cert | b64enc | wrap 76 | nindent 4 }}{{ range .users }}{{ .name }}:{{ .pw | sha256sum }}\n{{ end }}{{ toPrettyJson .users | len }}',
    data,
  );
  assert.ok(out.length > cert.length);
});

// Amplifying functions composed at random, with arguments up to 10^9: every render either
// succeeds or stops at a limit; nothing else escapes and nothing runs unbounded.
const small = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 1_000_000_000 }));
const str = fc.constantFrom('"a"', '"ab \\n"', '.s', '""', '"x y z"');
const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    str,
    fc.tuple(small, tie('e')).map(([n, e]) => `(repeat ${n} ${e})`),
    fc.tuple(small, tie('e')).map(([n, e]) => `(indent ${n} ${e})`),
    fc.tuple(small, tie('e')).map(([n, e]) => `(nindent ${n} ${e})`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(replace "a" ${a} ${b})`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(regexReplaceAll "[a ]" ${a} ${b})`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(join ${a} (splitList "" ${b}))`),
    fc.tuple(small, tie('e'), tie('e')).map(([n, a, b]) => `(wrapWith ${n} ${a} ${b})`),
    fc.tuple(small, tie('e')).map(([n, e]) => `(printf "%${n}s|%-${n}v" ${e} (list ${e} ${e}))`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `(toPrettyJson (list ${a} (dict "k" ${b})))`),
  ),
})).e;

test('random compositions of amplifying functions end in output or a limit error', {
  timeout: 120_000,
}, () => {
  fc.assert(
    fc.property(expr, (e) => {
      try {
        const out = render(`{{ ${e} | len }}`, { s: 'secret value' }, { maxAllocBytes: 1 << 20 });
        assert.match(out, /^\d+$/);
      } catch (err) {
        assert.ok(err instanceof TemplateError, `${e}: ${String(err)}`);
        assert.equal(err.code, CODES.TEMPLATE_LIMIT, `${e}: ${err.message}`);
      }
    }),
    { numRuns: 300, seed: 14 },
  );
});

// The functions rewritten for bounds still agree with Go on small inputs (newlines, runs of
// spaces and multi-byte text included).
const oracle = findOracle();
test('bounded functions agree with Go', { skip: 'skip' in oracle ? oracle.skip : false }, () => {
  const text = fc.stringMatching(/^[ab \né]{0,24}$/);
  const bounded = fc.oneof(
    fc.tuple(fc.integer({ min: -1, max: 9 }), text).map(([n, s]) => ({ t: `{{ wrap ${n} .s }}`, s })),
    fc
      .tuple(fc.integer({ min: -1, max: 9 }), fc.constantFrom('""', '"|"', '"\\n-"'), text)
      .map(([n, sep, s]) => ({ t: `{{ wrapWith ${n} ${sep} .s }}`, s })),
    fc.tuple(fc.integer({ min: 0, max: 4 }), text).map(([n, s]) => ({ t: `{{ nindent ${n} .s }}`, s })),
    fc
      .tuple(fc.constantFrom('""', '"a"', '"ab"', '" "'), fc.constantFrom('""', '"xy"'), text)
      .map(([o, r, s]) => ({ t: `{{ replace ${o} ${r} .s }}`, s })),
    fc
      // biome-ignore lint/suspicious/noTemplateCurlyInString: ${2} is Go's regexp expansion syntax
      .tuple(fc.constantFrom('"a+"', '"(a)(b)?"', '"a*"'), fc.constantFrom('"<$1>"', '"${2}$1"', '"-"'), text)
      .map(([p, r, s]) => ({ t: `{{ regexReplaceAll ${p} .s ${r} }}`, s })),
    text.map((s) => ({ t: '{{ splitList "a" .s | join "--" }}{{ uniq (splitList "" .s) }}', s })),
    fc
      .tuple(fc.constantFrom('%5s', '%-7v', '%08.3f', '%1000001d', '%.10000001s', '%x', '%3d%3d'), text)
      .map(([f, s]) => ({ t: `{{ printf "${f}" .s 2.5 }}`, s })),
  );
  const cases = fc.sample(bounded, { numRuns: 400, seed: 14 }).map((c, i) => ({
    name: `b${i}`,
    templates: [{ name: 't', text: c.t }],
    entry: 't',
    data: { s: c.s },
  }));
  if ('skip' in oracle) return;
  const go = runOracle(oracle.bin, cases, ALLOWED_FUNCTIONS);
  cases.forEach((c, i) => {
    const want = go[i]!;
    let ours: { output: string } | { error: string };
    try {
      ours = { output: render(c.templates[0]!.text, c.data) };
    } catch (e) {
      ours = { error: (e as Error).message };
    }
    if ('output' in want)
      assert.deepEqual(ours, { output: want.output }, `${c.templates[0]!.text} ${JSON.stringify(c.data)}`);
    else assert.ok('error' in ours, `${c.templates[0]!.text}: Go failed (${want.error}), Ferry did not`);
  });
});
