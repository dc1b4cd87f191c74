import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Type, { type TSchema } from 'typebox';
import { parse } from 'yaml';
import { buildCrd, crdFileName, crdYaml, StructuralSchemaError, toStructural } from '../../../src/api/crd.ts';
import { ALL_KINDS } from '../../../src/api/kinds.ts';

const CRD_DIR = join(import.meta.dirname, '..', '..', '..', 'deploy', 'crds');

// Independent of crd.ts's own checker: every keyword the apiserver's structural-schema rules forbid.
const FORBIDDEN = new Set(['$ref', '$defs', 'definitions', '$id', '$schema', 'const', 'patternProperties']);

function nonStructural(node: unknown, path: string): string[] {
  if (Array.isArray(node)) return node.flatMap((n, i) => nonStructural(n, `${path}[${i}]`));
  if (typeof node !== 'object' || node === null) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (FORBIDDEN.has(k)) out.push(`${path}.${k}`);
    if (k === 'additionalProperties' && v === false) out.push(`${path}.${k}`);
    if ((k === 'anyOf' || k === 'oneOf' || k === 'allOf') && Array.isArray(v)) {
      for (const [i, b] of v.entries())
        if (typeof b === 'object' && b && 'type' in b) out.push(`${path}.${k}[${i}]`);
    }
    if (k === 'properties') {
      for (const [name, sub] of Object.entries(v as object))
        out.push(...nonStructural(sub, `${path}.${name}`));
    } else if (k !== 'enum' && k !== 'default') {
      out.push(...nonStructural(v, `${path}.${k}`));
    }
  }
  return out;
}

// Structural schemas also need a type on every node (apart from the root's metadata handling).
function untyped(node: Record<string, unknown>, path: string): string[] {
  const out = 'type' in node ? [] : [path];
  const props = (node.properties ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, sub] of Object.entries(props)) out.push(...untyped(sub, `${path}.${name}`));
  if (typeof node.items === 'object' && node.items)
    out.push(...untyped(node.items as Record<string, unknown>, `${path}[]`));
  if (typeof node.additionalProperties === 'object' && node.additionalProperties) {
    out.push(...untyped(node.additionalProperties as Record<string, unknown>, `${path}{}`));
  }
  return out;
}

const PRINTER_COLUMNS: Record<string, string[]> = {
  VaultConnection: ['Healthy', 'Ready', 'Age'],
  VaultAuth: ['Healthy', 'Ready', 'Age'],
  VaultAuthGlobal: [],
  VaultStaticSecret: ['Synced', 'Healthy', 'Ready', 'Age'],
  VaultDynamicSecret: ['Synced', 'Healthy', 'Ready', 'Age'],
  VaultPKISecret: ['Synced', 'Healthy', 'Ready', 'Age'],
  SecretTransformation: ['Healthy', 'Ready', 'Age'],
  CSISecrets: [],
  HCPAuth: [],
  HCPVaultSecretsApp: [],
};

describe('generated CRDs', () => {
  it('cover the ten kinds of secrets.hashicorp.com/v1beta1', () => {
    assert.deepEqual(ALL_KINDS.map((k) => k.resource.kind).sort(), Object.keys(PRINTER_COLUMNS).sort());
  });

  for (const def of ALL_KINDS) {
    const kind = def.resource.kind;
    describe(kind, () => {
      const crd = buildCrd(def);
      const [version] = crd.spec.versions;
      assert.ok(version);
      const schema = version.schema.openAPIV3Schema;

      it('is structural', () => {
        assert.deepEqual(nonStructural(crd, '$'), []);
        assert.deepEqual(untyped(schema, '$'), []);
      });

      it('has one served storage version, a status subresource and Namespaced scope', () => {
        assert.equal(crd.metadata.name, `${def.resource.plural}.secrets.hashicorp.com`);
        assert.equal(crd.spec.scope, 'Namespaced');
        assert.equal(crd.spec.versions.length, 1);
        assert.equal(version.name, 'v1beta1');
        assert.equal(version.served, true);
        assert.equal(version.storage, true);
        assert.deepEqual(version.subresources, { status: {} });
        assert.equal(crd.spec.names.listKind, `${kind}List`);
        assert.equal(crd.spec.names.singular, kind.toLowerCase());
      });

      it('has the upstream printer columns', () => {
        const cols = version.additionalPrinterColumns ?? [];
        assert.deepEqual(
          cols.map((c) => c.name),
          PRINTER_COLUMNS[kind],
        );
        const byName = Object.fromEntries(cols.map((c) => [c.name, c.jsonPath]));
        if (byName.Synced)
          assert.equal(byName.Synced, '.status.conditions[?(@.type == "SecretSynced")].status');
        if (byName.Healthy) assert.equal(byName.Healthy, '.status.conditions[?(@.type == "Healthy")].status');
        if (byName.Ready) assert.equal(byName.Ready, '.status.conditions[?(@.type == "Ready")].status');
        if (byName.Age) assert.equal(byName.Age, '.metadata.creationTimestamp');
      });

      it('does not require metadata or spec at the root (as upstream)', () => {
        assert.equal(schema.required, undefined);
      });

      it('is committed under deploy/crds and up to date', () => {
        const committed = readFileSync(join(CRD_DIR, crdFileName(def)), 'utf8');
        assert.equal(committed, crdYaml(def), 'stale: run `npm run crds`');
        assert.deepEqual(parse(committed.split('---\n')[1] ?? ''), JSON.parse(JSON.stringify(crd)));
      });
    });
  }
});

describe('toStructural', () => {
  it('turns const into enum and a union of string literals into a string enum', () => {
    assert.deepEqual(toStructural(Type.Literal('x')), { type: 'string', enum: ['x'] });
    assert.deepEqual(toStructural(Type.Union([Type.Literal('a'), Type.Literal('b')])), {
      type: 'string',
      enum: ['a', 'b'],
    });
  });

  it('turns a string-keyed record into additionalProperties', () => {
    assert.deepEqual(toStructural(Type.Record(Type.String(), Type.Integer())), {
      type: 'object',
      additionalProperties: { type: 'integer' },
    });
  });

  it('strips $id and $schema', () => {
    assert.deepEqual(
      toStructural(Type.String({ $id: 'X', $schema: 'https://json-schema.org/draft/2020-12/schema' })),
      {
        type: 'string',
      },
    );
  });

  it('refuses what a structural schema cannot hold', () => {
    const bad: [string, TSchema][] = [
      ['$ref', Type.Ref('Other')],
      ['additionalProperties: false', Type.Object({ a: Type.String() }, { additionalProperties: false })],
      ['pattern keys', Type.Record(Type.String({ pattern: '^x-' }), Type.String())],
      ['typed union branches', Type.Union([Type.String(), Type.Integer()])],
    ];
    for (const [what, schema] of bad) {
      assert.throws(() => toStructural(schema), StructuralSchemaError, what);
    }
  });
});
