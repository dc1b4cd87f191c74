// Turns the TypeBox schemas into apiextensions.k8s.io/v1 CustomResourceDefinitions. The apiserver
// only accepts structural schemas (OpenAPI v3.0 subset), so TypeBox output is rewritten here and
// anything that cannot be expressed makes generation fail rather than produce a CRD the server rejects.
import type { TSchema } from 'typebox';
import { stringify } from 'yaml';
import { CODES, FerryError } from '../errors.ts';
import type { KindDefinition, PrinterColumn } from './kinds.ts';

export type JsonSchema = { [key: string]: unknown };

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JsonSchema };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns?: PrinterColumn[];
    }[];
  };
}

/** Keywords that make a schema non-structural or that the apiserver rejects outright. */
export const FORBIDDEN_KEYWORDS = [
  '$ref',
  '$defs',
  'definitions',
  '$id',
  '$schema',
  'const',
  'patternProperties',
  'dependentSchemas',
  'dependentRequired',
  'unevaluatedProperties',
  'if',
  'then',
  'else',
] as const;

/** A schema the apiserver would refuse; raised at generation time, never at runtime. */
export class StructuralSchemaError extends FerryError {
  constructor(message: string) {
    super(CODES.INVALID_CONFIG, message);
  }
}

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rewrites a TypeBox (JSON Schema 2020-12) schema into a structural OpenAPI v3.0 schema:
 * strips $id/$schema, turns `const` into a one-value `enum`, a union of string consts into a string
 * enum, and `patternProperties: {"^.*$": X}` (Type.Record) into `additionalProperties: X`.
 * Throws StructuralSchemaError on $ref, `additionalProperties: false`, other patternProperties and
 * typed branches of anyOf/oneOf.
 */
export function toStructural(schema: TSchema | JsonSchema, path = '$'): JsonSchema {
  if (!isObject(schema)) throw new StructuralSchemaError(`${path}: schema is not an object`);
  const src: JsonSchema = schema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(src)) {
    const at = `${path}.${key}`;
    switch (key) {
      case '$id':
      case '$schema':
        break;
      case '$ref':
      case '$defs':
      case 'definitions':
        throw new StructuralSchemaError(`${at}: references are not allowed in a CRD schema`);
      case 'const':
        out.enum = [value];
        break;
      case 'patternProperties': {
        const entries = isObject(value) ? Object.entries(value) : [];
        const [only] = entries;
        if (entries.length !== 1 || only === undefined || only[0] !== '^.*$') {
          throw new StructuralSchemaError(`${at}: only an any-key map can be expressed`);
        }
        out.additionalProperties = toStructural(only[1] as JsonSchema, `${at}["^.*$"]`);
        break;
      }
      case 'additionalProperties':
        if (value === false) throw new StructuralSchemaError(`${at}: additionalProperties: false`);
        out.additionalProperties = value === true ? true : toStructural(value as JsonSchema, at);
        break;
      case 'properties':
        out.properties = Object.fromEntries(
          Object.entries(value as JsonSchema).map(([k, v]) => [
            k,
            toStructural(v as JsonSchema, `${at}.${k}`),
          ]),
        );
        break;
      case 'items':
        if (Array.isArray(value)) throw new StructuralSchemaError(`${at}: tuple items`);
        out.items = toStructural(value as JsonSchema, at);
        break;
      case 'anyOf':
      case 'oneOf':
      case 'allOf':
        Object.assign(out, combinator(key, value, at));
        break;
      case 'not':
        out.not = toStructural(value as JsonSchema, at);
        break;
      default:
        out[key] = value;
    }
  }
  // description first, then type: the generated YAML reads like hand-written CRDs.
  const { description, type, ...rest } = out;
  return {
    ...(description === undefined ? {} : { description }),
    ...(type === undefined ? {} : { type }),
    ...rest,
  };
}

// A union of string literals (Type.Union of Type.Literal) becomes a plain string enum; any other
// combinator must only carry value validations, because structural schemas forbid types inside.
function combinator(key: string, value: unknown, at: string): JsonSchema {
  if (!Array.isArray(value)) throw new StructuralSchemaError(`${at}: expected an array`);
  const branches = value.map((b, i) => toStructural(b as JsonSchema, `${at}[${i}]`));
  const literals = branches.every(
    (b) => b.type === 'string' && Array.isArray(b.enum) && b.enum.length === 1 && Object.keys(b).length === 2,
  );
  if (key === 'anyOf' && literals)
    return { type: 'string', enum: branches.flatMap((b) => b.enum as unknown[]) };
  for (const [i, b] of branches.entries()) {
    if ('type' in b) throw new StructuralSchemaError(`${at}[${i}]: type inside ${key}`);
  }
  return { [key]: branches };
}

/** Walks a schema and returns the JSON paths of every forbidden keyword or `additionalProperties: false`. */
export function findNonStructural(schema: unknown, path = '$'): string[] {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => findNonStructural(s, `${path}[${i}]`));
  if (!isObject(schema)) return [];
  const found: string[] = [];
  for (const [key, value] of Object.entries(schema)) {
    const at = `${path}.${key}`;
    if ((FORBIDDEN_KEYWORDS as readonly string[]).includes(key)) found.push(at);
    if (key === 'additionalProperties' && value === false) found.push(at);
    if ((key === 'anyOf' || key === 'oneOf') && Array.isArray(value)) {
      value.forEach((b, i) => {
        if (isObject(b) && 'type' in b) found.push(`${at}[${i}].type`);
      });
    }
    // `properties` and map values hold user-chosen names, not keywords.
    if (key === 'properties' && isObject(value)) {
      for (const [name, sub] of Object.entries(value)) found.push(...findNonStructural(sub, `${at}.${name}`));
    } else if (key !== 'enum' && key !== 'default') {
      found.push(...findNonStructural(value, at));
    }
  }
  return found;
}

export function buildCrd(def: KindDefinition): CustomResourceDefinition {
  const { resource, printerColumns } = def;
  const root = toStructural(def.schema);
  // metadata is validated by the apiserver itself; listing it as required is not meaningful.
  const required = ((root.required as string[] | undefined) ?? []).filter((k) => k !== 'metadata');
  if (required.length > 0) root.required = required;
  else delete root.required;
  const problems = findNonStructural(root);
  if (problems.length > 0) {
    throw new StructuralSchemaError(`${resource.kind}: non-structural schema at ${problems.join(', ')}`);
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${resource.plural}.${resource.group}` },
    spec: {
      group: resource.group,
      names: { kind: resource.kind, listKind: def.listKind, plural: resource.plural, singular: def.singular },
      scope: resource.namespaced ? 'Namespaced' : 'Cluster',
      versions: [
        {
          name: resource.version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: root },
          subresources: { status: {} },
          ...(printerColumns.length > 0 ? { additionalPrinterColumns: printerColumns } : {}),
        },
      ],
    },
  };
}

/** File name under deploy/crds, following the controller-gen convention `<group>_<plural>.yaml`. */
export function crdFileName(def: KindDefinition): string {
  return `${def.resource.group}_${def.resource.plural}.yaml`;
}

/** Deterministic YAML of one CRD, as committed under deploy/crds. */
export function crdYaml(def: KindDefinition): string {
  const header = '# Generated by src/cli/crdgen.ts from src/api/v1beta1. Do not edit; run `npm run crds`.\n';
  return `${header}---\n${stringify(buildCrd(def), { lineWidth: 0 })}`;
}
