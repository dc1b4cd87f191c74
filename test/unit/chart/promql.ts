// What the chart's dashboard and alerts query, for the tests that check those metrics exist: the
// unit test against src/metrics' registrars, the end-to-end test against the running processes'
// /metrics. Not a test file itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART, type Obj } from './helm.ts';

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression selects: identifiers outside strings, label matchers,
 * ranges and grouping clauses that are not functions or keywords. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()/g)]
    .map((m) => m[1] ?? '')
    .filter((w) => !PROMQL_WORDS.has(w.toLowerCase()));
}

type Panel = { targets?: { expr: string }[]; panels?: Panel[] };

/** Every query of dashboards/ferry.json: its panels' and its variables' (label_values(METRIC, L)). */
export function dashboardExprs(): string[] {
  const d = JSON.parse(readFileSync(join(CHART, 'dashboards', 'ferry.json'), 'utf8')) as {
    panels: Panel[];
    templating: { list: { definition?: string }[] };
  };
  const panels = d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  return [
    ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...d.templating.list.flatMap((v) =>
      v.definition ? [v.definition.replace(/^label_values\(([^,]+),.*\)$/, '$1')] : [],
    ),
  ];
}

export type Rule = { alert: string; expr: string; labels?: Record<string, string> };

/** The alert rules of a rendered PrometheusRule. */
export function ruleExprs(rule: Obj): Rule[] {
  return (rule as Obj & { spec: { groups: { rules: Rule[] }[] } }).spec.groups.flatMap((g) => g.rules);
}
