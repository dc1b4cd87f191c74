// Data shaping from `destination.transformation` (vso-api.md §2.2, §5, §5.1): gathers the inline
// templates and those of referenced SecretTransformations, renders them against the secret data,
// and merges the include/exclude filters. Mirrors VSO's helpers/template.go:
// - inline templates are always rendered and win over a referenced template with the same key;
// - a ref renders its templateRefs (renamed by keyOverride) or, without any, all its templates;
// - a ref's sourceTemplates are parsed first and provide shared `define` blocks;
// - two referenced templates that would write the same key, a missing or invalid
//   SecretTransformation, or a templateRef naming no template are errors;
// - includes/excludes of refs are merged unless ignoreIncludes/ignoreExcludes, then the inline ones.
// Errors name templates and objects, never secret values (the engine redacts data in its messages).
import { createHash } from 'node:crypto';
import type { Transformation } from '../api/v1beta1/common.ts';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import { CODES, FerryError } from '../errors.ts';
import type { Store } from '../runtime/store.ts';
import {
  type CompiledTemplates,
  compileTemplates,
  JsonNumber,
  type TemplateSource,
} from '../template/index.ts';
import { numberSource } from '../vault/client.ts';
import { type DataShaping, setKey } from './secret-data.ts';

export interface TemplateInput {
  secrets: Record<string, unknown>;
  metadata: Record<string, unknown>;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

export interface ShapeOptions {
  transformations: Store<SecretTransformation>;
  globalExcludeRaw: boolean;
}

interface Gathered {
  /** Parse order: source templates first, then keyed templates sorted by key. */
  sources: TemplateSource[];
  /** Output keys; each is also the name of its template in `sources`. */
  keys: string[];
  includes: string[];
  excludes: string[];
}

/** "ns/name" of each referenced SecretTransformation (namespace defaults to the owner's). */
export function transformationRefKeys(ownerNamespace: string, t: Transformation | undefined): string[] {
  const keys = (t?.transformationRefs ?? []).map((r) => `${r.namespace || ownerNamespace}/${r.name}`);
  return [...new Set(keys)];
}

const refError = (message: string): FerryError => new FerryError(CODES.INVALID_REF, message);

function gather(store: Store<SecretTransformation>, ownerNamespace: string, t: Transformation): Gathered {
  const sourceTemplates: TemplateSource[] = [];
  const keyedSources = new Map<string, TemplateSource>();
  const refIncludes: string[] = [];
  const refExcludes: string[] = [];
  const inline = t.templates ?? {};
  for (const [key, tmpl] of Object.entries(inline)) keyedSources.set(key, { name: key, text: tmpl.text });

  // Keys written by referenced templates, with the reference that wrote them (for duplicate errors).
  const fromRefs = new Map<string, string>();
  for (const ref of t.transformationRefs ?? []) {
    const ns = ref.namespace || ownerNamespace;
    const id = `${ns}/${ref.name}`;
    const obj = store.get(ns, ref.name);
    if (!obj) throw refError(`SecretTransformation ${id} not found`);
    if (obj.status?.valid === false) throw refError(`SecretTransformation ${id} is not valid`);
    const spec = obj.spec ?? {};
    (spec.sourceTemplates ?? []).forEach((s, i) => {
      sourceTemplates.push({ name: s.name || `${id}/sourceTemplates/${i}`, text: s.text });
    });
    const templates = spec.templates ?? {};
    const selected: [string, string][] = ref.templateRefs?.length
      ? ref.templateRefs.map((tr) => {
          const tmpl = templates[tr.name];
          if (!tmpl)
            throw refError(`template ${JSON.stringify(tr.name)} not found in SecretTransformation ${id}`);
          return [tr.keyOverride || tr.name, tmpl.text];
        })
      : Object.entries(templates).map(([k, tmpl]) => [k, tmpl.text]);
    for (const [key, text] of selected) {
      if (Object.hasOwn(inline, key)) continue;
      const previous = fromRefs.get(key);
      if (previous !== undefined) {
        throw new FerryError(
          CODES.TEMPLATE,
          `duplicate template key ${JSON.stringify(key)} from SecretTransformation ${previous} and ${id}`,
        );
      }
      fromRefs.set(key, id);
      keyedSources.set(key, { name: key, text });
    }
    if (!ref.ignoreExcludes) refExcludes.push(...(spec.excludes ?? []));
    if (!ref.ignoreIncludes) refIncludes.push(...(spec.includes ?? []));
  }

  const keys = [...keyedSources.keys()].sort();
  for (const s of sourceTemplates) {
    if (keyedSources.has(s.name)) {
      throw new FerryError(
        CODES.TEMPLATE,
        `source template name ${JSON.stringify(s.name)} is also a template key`,
      );
    }
  }
  return {
    sources: [...sourceTemplates, ...keys.map((k) => keyedSources.get(k) as TemplateSource)],
    keys,
    includes: [...refIncludes, ...(t.includes ?? [])],
    excludes: [...refExcludes, ...(t.excludes ?? [])],
  };
}

// Compiled template sets by a hash of their sources (names and texts in parse order), so a
// steady-state refresh never re-parses. Bounded, least recently used first out.
const CACHE_SIZE = 256;
const compiled = new Map<string, CompiledTemplates>();

function compileCached(sources: TemplateSource[]): CompiledTemplates {
  const h = createHash('sha256');
  for (const s of sources) h.update(`${s.name.length}:${s.name}${s.text.length}:${s.text}`);
  const key = h.digest('hex');
  const hit = compiled.get(key);
  if (hit) {
    compiled.delete(key);
    compiled.set(key, hit);
    return hit;
  }
  const c = compileTemplates(sources);
  if (compiled.size >= CACHE_SIZE) compiled.delete(compiled.keys().next().value as string);
  compiled.set(key, c);
  return c;
}

/**
 * Vault's API client decodes numbers as json.Number, so templates see string-kinded numbers
 * (`{{ .Secrets.port }}` prints 8080, not 8080 as float64 would, and `1234567` stays exact).
 * Plain JS numbers are converted with their shortest text, which is what Go's encoding/json wrote
 * for a float64; values that are already JsonNumber keep their exact text.
 */
function asVaultJson(v: unknown, holder?: object, key?: string): unknown {
  if (typeof v === 'number') {
    const text = holder && key !== undefined ? numberSource(holder, key) : undefined;
    return text !== undefined ? new JsonNumber(text) : Number.isFinite(v) ? new JsonNumber(String(v)) : v;
  }
  if (Array.isArray(v)) return v.map((x, i) => asVaultJson(x, v, String(i)));
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, x] of Object.entries(v)) out[k] = asVaultJson(x, v, k);
    return out;
  }
  return v;
}

/** Renders the transformation's templates and returns the shaping for makeSecretData. */
export function shapeData(
  opts: ShapeOptions,
  ownerNamespace: string,
  t: Transformation | undefined,
  input: TemplateInput,
): DataShaping {
  const excludeRaw = opts.globalExcludeRaw || t?.excludeRaw === true;
  if (!t) return { excludeRaw };
  const g = gather(opts.transformations, ownerNamespace, t);
  const shaping: DataShaping = { excludeRaw };
  if (g.includes.length > 0) shaping.includes = g.includes;
  if (g.excludes.length > 0) shaping.excludes = g.excludes;
  if (g.keys.length === 0) return shaping;
  const set = compileCached(g.sources);
  const data = {
    Secrets: asVaultJson(input.secrets),
    Metadata: asVaultJson(input.metadata),
    Annotations: input.annotations,
    Labels: input.labels,
  };
  const rendered: Record<string, string> = {};
  for (const key of g.keys) setKey(rendered, key, set.render(key, data));
  shaping.rendered = rendered;
  return shaping;
}
