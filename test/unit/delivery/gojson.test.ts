import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { byteOrder, goJson } from '../../../src/delivery/gojson.ts';

const bytewise = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

test('byteOrder orders as the UTF-8 bytes do, surrogate pairs and lone surrogates included', () => {
  const str = fc.oneof(
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }),
    fc.string({
      unit: fc.constantFrom('a', '\u007f', '\u00e9', '\uffff', '\ud83d\ude00', '\ud800', '\udfff'),
    }),
  );
  fc.assert(fc.property(str, str, (a, b) => Math.sign(byteOrder(a, b)) === Math.sign(bytewise(a, b))));
});

test('goJson sorts keys byte-wise: U+FFFF sorts before an astral character, unlike UTF-16 order', () => {
  assert.equal(
    goJson({ '\ud83d\ude00': 1, '\uffff': 2, b: 3, a: 4 }),
    '{"a":4,"b":3,"\uffff":2,"\ud83d\ude00":1}',
  );
});
