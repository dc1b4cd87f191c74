// Parser, lexer and executor fuzzing: any text, and any soup of template tokens, either compiles
// or fails with a TemplateError; whatever compiles renders or fails with a TemplateError. Nothing
// else escapes (no TypeError, RangeError or hang), whatever a tenant writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compileTemplates, TemplateError } from '../../../src/template/index.ts';

const TOKENS = [
  '{{',
  '}}',
  '{{-',
  '-}}',
  ' ',
  '\n',
  '(',
  ')',
  '|',
  '.',
  '$',
  '$x',
  ':=',
  '=',
  ',',
  '"s"',
  '`r`',
  "'c'",
  '1',
  '-2',
  '0x1F',
  '1e3',
  '.5',
  'nil',
  'true',
  '.a',
  '.a.b',
  '$.a',
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'break',
  'continue',
  '"t"',
  'len',
  'index',
  'printf',
  'print',
  'and',
  'or',
  'not',
  'eq',
  'call',
  'list',
  'dict',
  'repeat',
  'until',
  'toJson',
  'fromJson',
  'regexFind',
  'wrap',
  'indent',
  'default',
  '/*',
  '*/',
  '{{/*',
  '*/}}',
  'else if',
];
const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(''));
const data = { a: { b: [1, 'x', null] }, s: 'secret', n: 3 };

function survives(text: string): void {
  let render: ((name: string, d: unknown) => string) | undefined;
  try {
    const set = compileTemplates([{ name: 't', text }], {
      limits: { maxSteps: 20_000, maxAllocBytes: 1 << 20 },
    });
    render = set.render;
  } catch (e) {
    assert.ok(e instanceof TemplateError, `compile ${JSON.stringify(text)}: ${String(e)}`);
    return;
  }
  try {
    render('t', data);
  } catch (e) {
    assert.ok(e instanceof TemplateError, `render ${JSON.stringify(text)}: ${String(e)}`);
  }
}

test('any text compiles or fails with a TemplateError', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), survives), { numRuns: 2000, seed: 14 });
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 100 }), survives), { numRuns: 500, seed: 14 });
});

test('token soup compiles and renders or fails with a TemplateError', () => {
  fc.assert(fc.property(soup, survives), { numRuns: 5000, seed: 14 });
});
