// The Sprig functions that depend on time, randomness or crypto: ago, durationRound, bcrypt,
// htpasswd, urlParse/urlJoin redaction and buildCustomCert errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import bcryptjs from 'bcryptjs';
import type { CallContext } from '../../../src/template/func.ts';
import { FuncError } from '../../../src/template/func.ts';
import { compileTemplates, TemplateError } from '../../../src/template/index.ts';
import { SPRIG } from '../../../src/template/sprig.ts';

const NOW = Date.parse('2024-06-01T12:00:00Z');
const render = (text: string, data: unknown = {}): string =>
  compileTemplates([{ name: 't', text }], { now: () => NOW }).render('t', data);

test('ago measures from the injected clock, rounded to seconds', () => {
  assert.equal(render('{{ ago (mustToDate "2006-01-02" "2024-06-01") }}'), '12h0m0s');
  assert.equal(render('{{ ago .t }}', { t: undefined }), '0s');
  assert.equal(render(`{{ ago ${Math.floor(NOW / 1000) - 90} }}`), '1m30s');
  assert.equal(render('{{ ago (int64 0) }}'), '477012h0m0s');
});

test('durationRound picks the largest whole unit', () => {
  assert.equal(render('{{ durationRound "3601s" }}'), '1h');
  assert.equal(render('{{ durationRound "-49h" }}'), '2d');
  assert.equal(render('{{ durationRound "bogus" }}'), '0s');
  assert.equal(render('{{ durationRound (mustToDate "2006-01-02" "2023-01-01") }}'), '1y');
});

test('bcrypt and htpasswd produce verifiable $2a$10$ hashes', () => {
  const h = render('{{ bcrypt .p }}', { p: 'hunter2' });
  assert.match(h, /^\$2a\$10\$/);
  assert.ok(bcryptjs.compareSync('hunter2', h));
  const line = render('{{ htpasswd "alice" .p }}', { p: 'pw' });
  assert.ok(line.startsWith('alice:$2a$10$'));
  assert.ok(bcryptjs.compareSync('pw', line.slice('alice:'.length)));
});

test('urlParse and urlJoin errors do not echo the URL', () => {
  const secret = 'https://user:s3cr3t@h:port/';
  try {
    render('{{ urlParse .u }}', { u: secret });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof TemplateError);
    assert.doesNotMatch(e.message, /s3cr3t/);
    assert.match(e.message, /error calling urlParse: unable to parse url: invalid port after host/);
  }
  assert.throws(
    () => render('{{ urlJoin .d }}', { d: { userinfo: 's3cr3t pw' } }),
    (e: Error) => {
      assert.doesNotMatch(e.message, /s3cr3t/);
      return true;
    },
  );
  assert.equal(render('{{ urlJoin (dict "scheme" "https" "host" "h" "path" "/a b") }}'), 'https://h/a%20b');
});

test('buildCustomCert rejects non-PEM input without echoing it', () => {
  const b64 = Buffer.from('not a pem s3cr3t').toString('base64');
  assert.throws(
    () => render('{{ buildCustomCert .c .c }}', { c: b64 }),
    (e: Error) => /unable to decode certificate/.test(e.message) && !/s3cr3t/.test(e.message),
  );
});

test("urlParse errors: Go's text quotes the URL with strconv.Quote; the user-facing text leaves it out", () => {
  const call = (url: string): FuncError => {
    try {
      SPRIG.urlParse!.fn([url], {} as CallContext);
    } catch (e) {
      if (e instanceof FuncError) return e;
      throw e;
    }
    throw new Error('urlParse should have failed');
  };
  const e = call('http://[::1\u00e9\t');
  // %q: non-ASCII printable runes stay, a tab is \t (JSON.stringify would agree here but not for
  // e.g. U+2028, which Go escapes and JSON does not).
  assert.equal(
    e.message,
    'unable to parse url: parse "http://[::1\u00e9\\t": net/url: invalid control character in URL',
  );
  assert.equal(e.safe, 'unable to parse url: net/url: invalid control character in URL');
  assert.equal(
    call('%zz\u2028').message,
    'unable to parse url: parse "%zz\\u2028": invalid URL escape "%zz"',
  );
});
