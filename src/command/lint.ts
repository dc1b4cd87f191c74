// `ferry lint FILE|DIR|-`: checks manifests before they are applied (lint-rules.ts), and with
// --cluster what they refer to: the Secret a `create: false` object writes into and the workloads it
// restarts, in the cluster or among the manifests themselves. Dialect fixes are printed as corrected
// YAML; --fix writes them back.
import { writeFile } from 'node:fs/promises';
import { API_VERSION } from '../api/resources.ts';
import { type ResourceType, rolloutResource, Secrets } from '../k8s/resources.ts';
import { operatorLease } from './cluster.ts';
import type { Command, CommandContext } from './context.ts';
import {
  effectiveKind,
  expectedSecret,
  type FerryObject,
  type Fix,
  isObj,
  kindFindings,
  REFERENCE_RESOURCES,
  type RuleFinding,
  references,
  rolloutTargets,
  type Severity,
  schemaFindings,
  specFindings,
  unknownFieldFindings,
  vaultPollsPerHour,
} from './lint-rules.ts';
import { lineOf, listItems, type ManifestDoc, type ManifestFile, readManifests } from './manifests.ts';
import { type Paint, type Style, serialize } from './output.ts';

export interface Finding {
  file: string;
  line: number;
  /** `Kind/name` of the object, when the document names one. */
  object?: string;
  severity: Severity;
  rule: string;
  field?: string;
  message: string;
  /** A correction exists: printed as corrected YAML, written by --fix. */
  fixable: boolean;
}

/** The cluster as lint asks it: does this object exist? */
export interface ClusterLookup {
  defaultNamespace: string;
  /** Where the operator runs (its leader Lease), for references that default to it; unknown: not checked. */
  operatorNamespace?: string;
  exists(rt: ResourceType, namespace: string, name: string): Promise<boolean>;
}

export interface LintResult {
  findings: Finding[];
  /** What the manifests' refreshAfter values add up to: Vault requests an hour. */
  vaultPollsPerHour: number;
  /** Files whose documents have fixes, with the corrected text. */
  corrected: { file: string; text: string }[];
}

const manifestKey = (kind: string, namespace: string, name: string): string => `${kind}/${namespace}/${name}`;

/** The objects of a document: itself, or each item of a List, named `List[i]`. */
function objectsOf(d: ManifestDoc): { doc: ManifestDoc; list?: string }[] {
  return listItems(d)?.map((doc, i) => ({ doc, list: `List[${i}]` })) ?? [{ doc: d }];
}

/** Objects defined by the linted manifests themselves count as existing. */
function inventory(files: ManifestFile[], defaultNamespace: string): Set<string> {
  const out = new Set<string>();
  for (const { doc: d } of files.flatMap((f) => f.docs).flatMap(objectsOf)) {
    if (!isObj(d.value) || typeof d.value.kind !== 'string' || !isObj(d.value.metadata)) continue;
    const { name, namespace } = d.value.metadata;
    if (typeof name !== 'string') continue;
    const kind = d.value.kind === 'Rollout' ? 'argo.Rollout' : d.value.kind;
    out.add(manifestKey(kind, typeof namespace === 'string' ? namespace : defaultNamespace, name));
  }
  return out;
}

async function clusterFindings(
  o: FerryObject,
  cluster: ClusterLookup,
  local: Set<string>,
): Promise<RuleFinding[]> {
  const namespace = o.metadata.namespace ?? cluster.defaultNamespace;
  const exists = async (kind: string, rt: ResourceType, name: string, ns = namespace): Promise<boolean> =>
    local.has(manifestKey(kind, ns, name)) || (await cluster.exists(rt, ns, name));
  const out: RuleFinding[] = [];
  const secret = expectedSecret(o);
  if (secret && !(await exists('Secret', Secrets, secret))) {
    out.push({
      severity: 'error',
      rule: 'create-false',
      field: 'spec.destination.create',
      message: `false, and Secret ${namespace}/${secret} does not exist: Ferry will wait (InexistentDestination) until it does; create it first or set create: true`,
    });
  }
  for (const r of references(o, namespace, cluster.operatorNamespace)) {
    if (!(await exists(r.kind, REFERENCE_RESOURCES[r.kind], r.name, r.namespace))) {
      out.push({
        severity: 'error',
        rule: 'reference',
        field: r.field,
        message: `${r.kind} ${r.namespace}/${r.name} does not exist${r.kind === 'Secret' ? '' : ' (in the cluster or these manifests)'}`,
      });
    }
  }
  for (const [i, t] of rolloutTargets(o).entries()) {
    const rt = rolloutResource(t.kind);
    if (rt && !(await exists(t.kind, rt, t.name))) {
      out.push({
        severity: 'error',
        rule: 'rollout-target',
        field: `spec.rolloutRestartTargets[${i}].name`,
        message: `${t.kind} ${namespace}/${t.name} does not exist: nothing would be restarted when the secret changes`,
      });
    }
  }
  return out;
}

function offlineFindings(o: FerryObject): RuleFinding[] {
  const secret = expectedSecret(o);
  if (!secret) return [];
  return [
    {
      severity: 'info',
      rule: 'create-false',
      field: 'spec.destination.create',
      message: `false: Secret ${secret} must exist before Ferry can sync (--cluster checks that it does)`,
    },
  ];
}

async function lintDoc(
  d: ManifestDoc,
  cluster: ClusterLookup | undefined,
  local: Set<string>,
  load: { perHour: number },
): Promise<RuleFinding[]> {
  if (d.error) return [{ severity: 'error', rule: 'yaml', message: d.error.message }];
  const value = d.value;
  if (!isObj(value)) return [];
  const kindChecks = kindFindings(value);
  if (kindChecks === undefined) return []; // not a Ferry object
  const kind = effectiveKind(value.kind);
  if (kind === undefined) return kindChecks;
  // Checked as the kind and version it should be, so one mistake does not hide the others.
  const asMeant = { ...value, apiVersion: API_VERSION, kind };
  const schema = schemaFindings(asMeant, kind);
  const out = [...kindChecks, ...schema, ...unknownFieldFindings(asMeant, kind)];
  if (schema.length > 0 || !isObj(value.spec)) return out;
  const o: FerryObject = {
    apiVersion: API_VERSION,
    kind,
    metadata: isObj(value.metadata) ? (value.metadata as FerryObject['metadata']) : {},
    spec: value.spec,
  };
  out.push(...specFindings(o));
  load.perHour += vaultPollsPerHour(o);
  out.push(...(cluster ? await clusterFindings(o, cluster, local) : offlineFindings(o)));
  return out;
}

function objectName(value: unknown): string | undefined {
  if (!isObj(value) || typeof value.kind !== 'string') return undefined;
  const name = isObj(value.metadata) ? value.metadata.name : undefined;
  return `${value.kind}/${typeof name === 'string' ? name : '?'}`;
}

export async function lintManifests(files: ManifestFile[], cluster?: ClusterLookup): Promise<LintResult> {
  const local = inventory(files, cluster?.defaultNamespace ?? '');
  const findings: Finding[] = [];
  const corrected: LintResult['corrected'] = [];
  const load = { perHour: 0 };
  for (const f of files) {
    let fixes = 0;
    for (const { doc: d, list } of f.docs.flatMap(objectsOf)) {
      const found = await lintDoc(d, cluster, local, load);
      const object = [list, objectName(d.value)].filter(Boolean).join(' ') || undefined;
      const placed = found.map((r) => ({ r, line: lineOf(d, r.field) })).sort((a, b) => a.line - b.line);
      for (const { r, line } of placed) {
        findings.push({
          file: f.file,
          line,
          ...(object ? { object } : {}),
          severity: r.severity,
          rule: r.rule,
          ...(r.field ? { field: r.field } : {}),
          message: r.message,
          fixable: r.fix !== undefined,
        });
      }
      // Fixes run after every finding of the document took its line from the original tree.
      for (const fix of placed.map(({ r }) => r.fix).filter((x): x is Fix => x !== undefined)) {
        fix(d.doc);
        fixes++;
      }
    }
    // A document that does not parse cannot be written back, so neither can its file.
    if (fixes > 0 && !f.docs.some((d) => d.error))
      corrected.push({ file: f.file, text: f.docs.map((d) => d.doc.toString()).join('') });
  }
  return { findings, vaultPollsPerHour: Math.round(load.perHour), corrected };
}

const SEVERITY_STYLE: Record<Severity, Style> = { error: 'red', warning: 'yellow', info: 'dim' };

export function renderFindings(r: LintResult, paint: Paint, fixed: boolean): string {
  const lines = r.findings.map((f) => {
    const where = [f.object, f.field].filter(Boolean).join(' ');
    return `${f.file}:${f.line}: ${paint(SEVERITY_STYLE[f.severity], f.severity)}: ${where ? `${paint('bold', where)}: ` : ''}${f.message} [${f.rule}]`;
  });
  const count = (s: Severity): number => r.findings.filter((f) => f.severity === s).length;
  const files = new Set(r.findings.filter((f) => f.severity !== 'info').map((f) => f.file)).size;
  const load =
    r.vaultPollsPerHour > 0
      ? `; their refreshAfter values poll Vault ${r.vaultPollsPerHour} times an hour`
      : '';
  lines.push(
    count('error') + count('warning') === 0
      ? `${paint('green', 'no findings')}${load}`
      : `${count('error')} error(s), ${count('warning')} warning(s) in ${files} file(s)${load}`,
  );
  for (const c of r.corrected) {
    lines.push(
      '',
      paint('bold', fixed ? `# ${c.file}: fixed` : `# ${c.file}, corrected (ferry lint --fix writes it):`),
    );
    if (!fixed || c.file === '<stdin>') lines.push(c.text.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

export const lintCommand: Command = {
  name: 'lint',
  summary: 'check manifests before they are applied',
  synopsis: 'FILE|DIR|- [--cluster] [--fix]',
  description: `Checks secrets.hashicorp.com manifests (a file, every .yaml/.yml/.json under a directory, or
stdin): the CRD schema with the field path, fields the apiserver would silently drop (naming the
real field for names from tutorials), refreshAfter values that load Vault, CSISecrets open to every
namespace, and create: false. With --cluster it also checks, in the cluster or among the manifests,
that the Secret of a create: false object and the rolloutRestartTargets exist. Other documents are
ignored. Exit code 1 when there is an error or a warning.`,
  options: { cluster: { type: 'boolean' }, fix: { type: 'boolean' } },
  optionHelp: {
    cluster: 'also check the objects the manifests refer to',
    fix: 'write the corrections back to the files (stdin: print them)',
  },
  positionals: { min: 1, max: 1 },
  async run(ctx: CommandContext): Promise<number> {
    const [target = '-'] = ctx.positionals;
    const files = await readManifests(target, ctx.io.readStdin);
    let cluster: ClusterLookup | undefined;
    if (ctx.values.cluster === true) {
      const kube = ctx.kube();
      const operatorNamespace = (await operatorLease(kube))?.metadata.namespace;
      cluster = {
        defaultNamespace: ctx.defaultNamespace(),
        ...(operatorNamespace ? { operatorNamespace } : {}),
        exists: async (rt, namespace, name) => (await kube.getIfExists(rt, name, namespace)) !== undefined,
      };
    }
    const result = await lintManifests(files, cluster);
    const fix = ctx.values.fix === true;
    if (fix) {
      for (const c of result.corrected) if (c.file !== '<stdin>') await writeFile(c.file, c.text);
    }
    const out = ctx.global.output;
    ctx.io.stdout.write(out === 'table' ? renderFindings(result, ctx.paint, fix) : serialize(result, out));
    return result.findings.some((f) => f.severity !== 'info') ? 1 : 0;
  },
};
