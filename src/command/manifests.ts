// Reads the manifests `ferry lint` checks: a file, every .yaml/.yml/.json under a directory, or stdin;
// each document keeps its YAML tree so that findings can name a line and fixes keep comments.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Document, isNode, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import { CODES, errorMessage, FerryError } from '../errors.ts';

export interface ManifestDoc {
  file: string;
  /** The document's tree; for an item of a List (listItems), the item's nodes inside the list's. */
  doc: Document;
  lines: LineCounter;
  /** The document as plain data; undefined when it did not parse. */
  value: unknown;
  /** The first syntax error, if any. */
  error?: { message: string; line: number };
}

export interface ManifestFile {
  file: string;
  text: string;
  docs: ManifestDoc[];
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const path = join(dir, entry.name);
    // Hidden folders (.git) and node_modules hold no manifests of the user's and can be huge.
    if (entry.isDirectory()) {
      if (!entry.name.startsWith('.') && entry.name !== 'node_modules') out.push(...(await filesUnder(path)));
    } else if (entry.isFile() && MANIFEST_EXT.test(entry.name)) out.push(path);
  }
  return out;
}

export function parseManifests(file: string, text: string): ManifestFile {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const parsed = Array.isArray(docs) ? docs : [];
  return {
    file,
    text,
    docs: parsed
      .filter((doc) => doc.contents !== null || doc.errors.length > 0)
      .map((doc) => {
        const first = doc.errors[0];
        if (first) {
          return {
            file,
            doc,
            lines,
            value: undefined,
            error: { message: first.message.split('\n')[0] ?? '', line: lines.linePos(first.pos[0]).line },
          };
        }
        return { file, doc, lines, value: doc.toJS() as unknown };
      }),
  };
}

/** A List document's items (kubectl's `kind: List`, or any `…List` with `items`): each as a document of
 * its own, whose tree is the item's nodes inside the List's, so lines and fixes land in the List. */
export function listItems(d: ManifestDoc): ManifestDoc[] | undefined {
  const v = d.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { kind, items } = v as { kind?: unknown; items?: unknown };
  if (typeof kind !== 'string' || !kind.endsWith('List') || !Array.isArray(items)) return undefined;
  const seq = d.doc.get('items', true);
  if (!isSeq(seq)) return undefined;
  return items.map((value, i) => {
    const doc = new Document(undefined, d.doc.options);
    const node = seq.items[i];
    doc.contents = isNode(node) ? node : null;
    return { file: d.file, doc, lines: d.lines, value };
  });
}

/** `-` reads stdin. A directory is searched recursively for .yaml, .yml and .json files. */
export async function readManifests(
  target: string,
  readStdin: () => Promise<string>,
): Promise<ManifestFile[]> {
  if (target === '-') return [parseManifests('<stdin>', await readStdin())];
  let paths: string[];
  try {
    paths = (await stat(target)).isDirectory() ? await filesUnder(target) : [target];
  } catch (err) {
    throw new FerryError(CODES.MANIFEST, `cannot read ${target}: ${errorMessage(err)}`, { cause: err });
  }
  return Promise.all(paths.map(async (p) => parseManifests(p, await readFile(p, 'utf8'))));
}

/** `spec.a.b[0].c` → ['spec', 'a', 'b', 0, 'c']. */
export function pathSegments(field: string): (string | number)[] {
  return field
    .split(/\.|\[(\d+)\]/)
    .filter((s): s is string => s !== undefined && s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** The line of a field, or of the nearest ancestor present in the document (1-based). */
export function lineOf(d: ManifestDoc, field: string | undefined): number {
  const segs = field ? pathSegments(field) : [];
  for (let n = segs.length; n >= 0; n--) {
    const node = d.doc.getIn(segs.slice(0, n), true);
    if (isNode(node) && node.range) return d.lines.linePos(node.range[0]).line;
  }
  return d.doc.contents?.range ? d.lines.linePos(d.doc.contents.range[0]).line : 1;
}
