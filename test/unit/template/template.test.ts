import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFerryError } from '../../../src/errors.ts';
import {
  ALLOWED_FUNCTIONS,
  compileTemplates,
  decodeVaultJson,
  TemplateError,
} from '../../../src/template/index.ts';

const render = (
  text: string,
  data: unknown,
  limits?: { maxSteps?: number; maxOutputBytes?: number },
): string => compileTemplates([{ name: 'tpl', text }], limits ? { limits } : {}).render('tpl', data);

function renderError(text: string, data: unknown): TemplateError {
  try {
    render(text, data);
  } catch (e) {
    assert.ok(e instanceof TemplateError);
    return e;
  }
  assert.fail('expected a TemplateError');
}

test('ALLOWED_FUNCTIONS is exactly VSO list of 179 Sprig names', () => {
  assert.equal(ALLOWED_FUNCTIONS.length, 179);
  assert.equal(new Set(ALLOWED_FUNCTIONS).size, 179);
  assert.ok(ALLOWED_FUNCTIONS.includes('sha256sum'));
  assert.ok(!ALLOWED_FUNCTIONS.includes('env'));
  assert.ok(!ALLOWED_FUNCTIONS.includes('genPrivateKey'));
});

test('functions outside the allow-list are parse errors', () => {
  assert.throws(() => render('{{ env "HOME" }}', {}), /function "env" not defined/);
});

test('parse errors name the template and line, as Go does', () => {
  const err = (() => {
    try {
      compileTemplates([{ name: 'creds', text: 'a\nb\n{{ if }}' }]);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof TemplateError);
  assert.ok(isFerryError(err));
  assert.equal(err.code, 'FERRY_ERR_TEMPLATE');
  assert.equal(err.message, 'template: creds:3: missing value for if');
  assert.equal(err.templateName, 'creds');
  assert.equal(err.line, 3);
});

test('execution errors carry template name, line and byte column', () => {
  const e = renderError('x\n  {{ index .l 5 }}', { l: [1] });
  assert.equal(e.line, 2);
  assert.equal(e.col, 5);
  assert.match(e.message, /^template: tpl:2:5: executing "tpl" at <index .l 5>: error calling index/);
});

test('errors never echo secret values', () => {
  const secret = 'hunter2-SECRET';
  const data = { s: secret, l: [secret], m: { k: secret }, f: 3.25 };
  for (const text of [
    '{{ range .s }}{{ end }}',
    '{{ range .f }}{{ end }}',
    '{{ eq .l .l }}',
    '{{ eq .m .l }}',
    '{{ fail .s }}',
    '{{ mustFromJson .s }}',
    // found by test/fuzz: a piped callee of `call` was printed
    '{{ .s | call }}',
  ]) {
    const e = renderError(text, data);
    assert.ok(!e.message.includes(secret), `${text}: ${e.message}`);
    assert.ok(!e.message.includes('3.25'), `${text}: ${e.message}`);
  }
  assert.match(
    renderError('{{ range .s }}{{ end }}', data).message,
    /range can't iterate over <string value>/,
  );
});

test('step limit stops runaway templates', () => {
  assert.throws(
    () =>
      render(
        '{{ range until 1000000 }}{{ range until 1000000 }}{{ end }}{{ end }}',
        {},
        { maxSteps: 10_000 },
      ),
    /step limit/,
  );
  assert.throws(
    () => render('{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}', {}),
    (e: unknown) => {
      return e instanceof TemplateError && /depth|nested/.test(e.message);
    },
  );
});

test('output limit stops output bombs', () => {
  assert.throws(
    () => render('{{ range until 1000 }}{{ repeat 1000 "x" }}{{ end }}', {}, { maxOutputBytes: 10_000 }),
    /size limit/,
  );
});

test('renders Go formatting of numbers, maps, slices and missing keys', () => {
  assert.equal(
    render('{{ .n }} {{ .big }} {{ 3.0 }} {{ .m }} {{ .l }} {{ .missing }}', {
      n: 8080,
      big: 1234567,
      m: { b: 2, a: 1 },
      l: [1, 'x', null],
    }),
    '8080 1.234567e+06 3 map[a:1 b:2] [1 x <nil>] <no value>',
  );
});

test('Vault data decoded as json.Number keeps the exact text', () => {
  const data = decodeVaultJson('{"port": 8080, "big": 1234567, "ratio": 1.50}');
  assert.equal(
    render('{{ .port }} {{ .big }} {{ .ratio }} {{ typeOf .port }} {{ add .port 1 }}', data),
    '8080 1234567 1.50 json.Number 8081',
  );
});

test('toJson escapes HTML like encoding/json', () => {
  assert.equal(render('{{ toJson . }}', { b: '<&>', a: [1.5] }), '{"a":[1.5],"b":"\\u003c\\u0026\\u003e"}');
});
