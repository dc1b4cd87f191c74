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

test('b32dec reports Go error offsets and accepts what base32.StdEncoding accepts', () => {
  assert.equal(render('{{ b32dec "NBSWY3DP" }}'), 'hello');
  assert.equal(render('{{ b32dec "NBSWY===" }}'), 'hel');
  // Newlines are dropped, and characters after complete padding are not looked at.
  assert.equal(render('{{ b32dec "NBSW\\nY3DP" }}'), 'hello');
  assert.equal(render('{{ b32dec "ME=======" }}'), 'a');
  assert.equal(render('{{ b32dec "ME========" }}'), 'a');
  // The error names the byte, as Go's CorruptInputError does (the offset was missing).
  assert.equal(render('{{ b32dec "me======" }}'), 'illegal base32 data at input byte 0');
  assert.equal(render('{{ b32dec "NBSWY3D" }}'), 'illegal base32 data at input byte 0');
  assert.equal(render('{{ b32dec "NBSWY3D=" }}'), 'hell');
  assert.equal(render('{{ b32dec "M=======" }}'), 'illegal base32 data at input byte 1');
  assert.equal(render('{{ b32dec "MZXW6===MZXW6===" }}'), 'illegal base32 data at input byte 5');
});
