// Vault's numbers keep their text from the wire to templates and Secret data, as VSO (json.Number)
// does: `8080.0` stays `8080.0`, integers beyond 2^53 stay exact, `1e3` stays `1e3`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeSecretData } from '../../../src/delivery/secret-data.ts';
import { shapeData } from '../../../src/delivery/transformation.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import { FakeVault } from '../vault/helpers.ts';
import { storeOf } from './helpers.ts';

let vault: FakeVault;
before(async () => {
  vault = await FakeVault.start();
});
after(async () => {
  await vault.close();
});

const RAW =
  '{"data":{"port":8080.0,"big":9007199254740993,"sci":1e3,"neg":-0,"plain":42,"ratio":0.25,' +
  '"list":[1.50,7],"nested":{"n":100.000},"s":"x"}}';
const decode = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64').toString('utf8');

test('numbers keep the text Vault sent in templates, Secret values and _raw', async () => {
  vault.handler = () => ({ status: 200, raw: RAW });
  const client = new VaultClient({ address: vault.address });
  const res = await client.read('secret/app');
  await client.close();
  const source = res?.data ?? {};
  const shaping = shapeData(
    { transformations: storeOf(), globalExcludeRaw: false },
    'app',
    {
      templates: {
        t: {
          text:
            '{{ .Secrets.port }} {{ .Secrets.big }} {{ .Secrets.sci }} {{ .Secrets.neg }} {{ .Secrets.plain }} ' +
            '{{ .Secrets.ratio }} {{ index .Secrets.list 0 }} {{ .Secrets.nested.n }} {{ toJson .Secrets.nested }}',
        },
      },
    },
    { secrets: source, metadata: {}, annotations: {}, labels: {} },
  );
  assert.equal(shaping.rendered?.t, '8080.0 9007199254740993 1e3 -0 42 0.25 1.50 100.000 {"n":100.000}');
  const data = makeSecretData(source, source, shaping);
  assert.equal(decode(data.port), '8080.0');
  assert.equal(decode(data.big), '9007199254740993');
  assert.equal(decode(data.sci), '1e3');
  assert.equal(decode(data.plain), '42');
  assert.equal(decode(data.list), '[1.50,7]');
  assert.equal(decode(data.nested), '{"n":100.000}');
  assert.equal(decode(data.s), 'x');
  // Keys in byte order, as encoding/json sorts a map.
  assert.equal(
    decode(data._raw),
    '{"big":9007199254740993,"list":[1.50,7],"neg":-0,"nested":{"n":100.000},"plain":42,"port":8080.0,"ratio":0.25,"s":"x","sci":1e3}',
  );
});
