// shapeData and transformationRefKeys: precedence of inline templates, transformationRefs with
// templateRefs/keyOverride, sourceTemplates, includes/excludes merging, duplicates, redaction,
// excludeRaw; and the SecretTransformation validator.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transformation } from '../../../src/api/v1beta1/common.ts';
import type {
  SecretTransformation,
  SecretTransformationSpec,
} from '../../../src/api/v1beta1/secrettransformation.ts';
import { validateSecretTransformation } from '../../../src/controllers/secrettransformation/reconcile.ts';
import { makeSecretData } from '../../../src/delivery/secret-data.ts';
import {
  shapeData,
  type TemplateInput,
  transformationRefKeys,
} from '../../../src/delivery/transformation.ts';
import { CODES, FerryError } from '../../../src/errors.ts';
import { storeOf } from './helpers.ts';

function st(ns: string, name: string, spec: SecretTransformationSpec, valid?: boolean): SecretTransformation {
  return {
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'SecretTransformation',
    metadata: { namespace: ns, name, uid: `${ns}-${name}`, resourceVersion: '1' },
    spec,
    ...(valid === undefined ? {} : { status: { valid, error: valid ? '' : 'bad' } }),
  };
}

const input: TemplateInput = {
  secrets: { username: 'admin', password: 's3cr3t-value', port: 8080, big: 1234567, tags: ['a', 'b'] },
  metadata: { version: 3, custom_metadata: { team: 'x' } },
  annotations: { 'example.com/env': 'prod' },
  labels: { app: 'web' },
};

const shape = (t: Transformation | undefined, objs: SecretTransformation[] = [], globalExcludeRaw = false) =>
  shapeData({ transformations: storeOf(...objs), globalExcludeRaw }, 'app', t, input);

function ferryError(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FerryError, `expected a FerryError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

test('no transformation: only excludeRaw from the global option', () => {
  assert.deepEqual(shape(undefined), { excludeRaw: false });
  assert.deepEqual(shape(undefined, [], true), { excludeRaw: true });
  assert.deepEqual(shape({ excludeRaw: true }), { excludeRaw: true });
  assert.deepEqual(shape({ excludeRaw: false }, [], true), { excludeRaw: true });
});

test('template data uses Go field names and json.Number for Vault numbers', () => {
  const r = shape({
    templates: {
      dsn: { text: '{{ .Secrets.username }}:{{ .Secrets.port }}/{{ .Secrets.big }}' },
      meta: { text: '{{ .Metadata.version }} {{ .Metadata.custom_metadata.team }}' },
      kl: { text: '{{ index .Annotations "example.com/env" }} {{ .Labels.app }} {{ typeOf .Secrets.port }}' },
    },
  });
  assert.deepEqual(r.rendered, {
    dsn: 'admin:8080/1234567',
    kl: 'prod web json.Number',
    meta: '3 x',
  });
});

test('inline templates win over referenced templates with the same key', () => {
  const ref = st('app', 'shared', {
    templates: { url: { text: 'from-ref' }, user: { text: '{{ .Secrets.username | upper }}' } },
  });
  const r = shape({ templates: { url: { text: 'inline' } }, transformationRefs: [{ name: 'shared' }] }, [
    ref,
  ]);
  assert.deepEqual(r.rendered, { url: 'inline', user: 'ADMIN' });
});

test('templateRefs select templates, keyOverride renames, sourceTemplates provide defines', () => {
  const ref = st('lib', 'shared', {
    sourceTemplates: [{ name: 'helpers', text: '{{ define "cred" }}{{ .username }}@{{ .port }}{{ end }}' }],
    templates: {
      a: { text: '{{ template "cred" .Secrets }}' },
      b: { text: 'not selected' },
    },
  });
  const r = shape(
    {
      transformationRefs: [
        { namespace: 'lib', name: 'shared', templateRefs: [{ name: 'a', keyOverride: 'login' }] },
      ],
    },
    [ref],
  );
  assert.deepEqual(r.rendered, { login: 'admin@8080' });
});

test('the ref namespace defaults to the owner namespace', () => {
  const inApp = st('app', 'same', { templates: { k: { text: 'app' } } });
  const inOther = st('other', 'same', { templates: { k: { text: 'other' } } });
  assert.deepEqual(shape({ transformationRefs: [{ name: 'same' }] }, [inApp, inOther]).rendered, {
    k: 'app',
  });
  assert.deepEqual(
    transformationRefKeys('app', {
      transformationRefs: [{ name: 'same' }, { namespace: 'o', name: 'x' }, { name: 'same' }],
    }),
    ['app/same', 'o/x'],
  );
  assert.deepEqual(transformationRefKeys('app', undefined), []);
});

test('includes and excludes merge from refs unless ignored, then inline; templates never filtered', () => {
  const ref = st('app', 'f', { includes: ['^user'], excludes: ['^pass'], templates: { t: { text: 'x' } } });
  const merged = shape({ transformationRefs: [{ name: 'f' }], includes: ['^port$'], excludes: ['^big$'] }, [
    ref,
  ]);
  assert.deepEqual(merged.includes, ['^user', '^port$']);
  assert.deepEqual(merged.excludes, ['^pass', '^big$']);
  const ignored = shape(
    { transformationRefs: [{ name: 'f', ignoreIncludes: true, ignoreExcludes: true }], excludes: ['.*'] },
    [ref],
  );
  assert.equal(ignored.includes, undefined);
  assert.deepEqual(ignored.excludes, ['.*']);
  // With excludes ".*" every source key (and _raw) goes; the templated key stays.
  const data = makeSecretData(input.secrets, { data: input.secrets }, ignored);
  assert.deepEqual(Object.keys(data), ['t']);
  const filtered = makeSecretData(input.secrets, {}, { ...merged, excludeRaw: true });
  assert.deepEqual(Object.keys(filtered).sort(), ['port', 't', 'username']);
});

test('two refs writing the same key is an error naming the key and objects', () => {
  const a = st('app', 'a', { templates: { k: { text: '1' } } });
  const b = st('app', 'b', { templates: { other: { text: '2' } } });
  const e = ferryError(() =>
    shape(
      {
        transformationRefs: [
          { name: 'a' },
          { name: 'b', templateRefs: [{ name: 'other', keyOverride: 'k' }] },
        ],
      },
      [a, b],
    ),
  );
  assert.equal(e.code, CODES.TEMPLATE);
  assert.match(e.message, /duplicate template key "k" from SecretTransformation app\/a and app\/b/);
});

test('missing object, missing templateRef and invalid object are INVALID_REF errors', () => {
  assert.equal(ferryError(() => shape({ transformationRefs: [{ name: 'nope' }] })).code, CODES.INVALID_REF);
  const a = st('app', 'a', { templates: { k: { text: '1' } } });
  const e = ferryError(() =>
    shape({ transformationRefs: [{ name: 'a', templateRefs: [{ name: 'zz' }] }] }, [a]),
  );
  assert.equal(e.code, CODES.INVALID_REF);
  assert.match(e.message, /template "zz" not found in SecretTransformation app\/a/);
  const bad = st('app', 'bad', { templates: { k: { text: '1' } } }, false);
  assert.match(
    ferryError(() => shape({ transformationRefs: [{ name: 'bad' }] }, [bad])).message,
    /app\/bad is not valid/,
  );
});

test('template errors name the template and never carry secret values', () => {
  const parse = ferryError(() => shape({ templates: { broken: { text: '{{ .Secrets.password ' } } }));
  assert.equal(parse.code, CODES.TEMPLATE);
  assert.match(parse.message, /broken/);
  for (const text of [
    '{{ range .Secrets.password }}{{ end }}',
    '{{ fail .Secrets.password }}',
    '{{ eq .Secrets.password .Secrets.tags }}',
    '{{ urlParse (printf "http://h:%s/" .Secrets.password) }}',
  ]) {
    const e = ferryError(() => shape({ templates: { leaky: { text } } }));
    assert.equal(e.code, CODES.TEMPLATE);
    assert.match(e.message, /leaky/);
    assert.doesNotMatch(e.message, /s3cr3t/, text);
  }
});

test('a template bomb fails with the TEMPLATE_LIMIT code, the message free of secret values', () => {
  for (const text of [
    '{{ indent 400000000 .Secrets.password }}',
    '{{ .Secrets.password | repeat 100000000 }}',
    '{{ printf "%9999999v" (until 100) }}',
  ]) {
    const e = ferryError(() => shape({ templates: { bomb: { text } } }));
    assert.equal(e.code, CODES.TEMPLATE_LIMIT, e.message);
    assert.match(e.message, /template: bomb:1:\d+: .*allocation limit/);
    assert.doesNotMatch(e.message, /s3cr3t/);
  }
});

test('order: source templates parse first, keyed templates sorted by key', () => {
  // Two refs define the same block; the later source template wins, as in Go's template set.
  const a = st('app', 'a', { sourceTemplates: [{ text: '{{ define "x" }}A{{ end }}' }], templates: {} });
  const b = st('app', 'b', { sourceTemplates: [{ text: '{{ define "x" }}B{{ end }}' }], templates: {} });
  const r = shape(
    {
      templates: { out: { text: '{{ template "x" }}' } },
      transformationRefs: [{ name: 'a' }, { name: 'b' }],
    },
    [a, b],
  );
  assert.deepEqual(r.rendered, { out: 'B' });
  assert.deepEqual(Object.keys(shape({ templates: { z: { text: '1' }, a: { text: '2' } } }).rendered ?? {}), [
    'a',
    'z',
  ]);
});

test('steady-state renders reuse the compiled set (rendering stays stable)', () => {
  const t: Transformation = { templates: { k: { text: '{{ .Secrets.username }}' } } };
  const first = shape(t);
  for (let i = 0; i < 100; i++) assert.deepEqual(shape(t), first);
});

test('validateSecretTransformation reports parse and pattern errors by name', () => {
  assert.equal(
    validateSecretTransformation(
      st('app', 'ok', {
        sourceTemplates: [{ text: '{{ define "h" }}x{{ end }}' }],
        templates: { k: { text: '{{ template "h" }}' } },
        includes: ['^a'],
      }),
    ),
    undefined,
  );
  const msg = validateSecretTransformation(
    st('app', 'bad', { templates: { k: { text: '{{ nope }}' } }, excludes: ['('] }),
  );
  assert.match(msg ?? '', /template: k:1: function "nope" not defined/);
  assert.match(msg ?? '', /invalid excludes pattern "\("/);
});
