// Regressions for what the fuzz suite (test/fuzz/template.test.ts) found in the template engine;
// expected outputs are Go's (the differential oracle's).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileTemplates } from '../../../src/template/index.ts';

const render = (text: string, data: unknown = {}): string =>
  compileTemplates([{ name: 't', text }]).render('t', data);

test('toDecimal parses negative and out-of-range octal as strconv.ParseInt does', () => {
  // A negative number threw a SyntaxError (BigInt("-0o1")), which escaped the engine.
  assert.equal(render('{{ toDecimal "-1" }}'), '-1');
  assert.equal(render('{{ toDecimal -17 }}'), '-15');
  assert.equal(render('{{ toDecimal "+17" }}'), '15');
  assert.equal(render('{{ toDecimal "-1000000000000000000000" }}'), '-9223372036854775808');
  assert.equal(render('{{ toDecimal "1000000000000000000000" }}'), '0');
  assert.equal(render('{{ toDecimal "-1000000000000000000001" }}'), '0');
});
