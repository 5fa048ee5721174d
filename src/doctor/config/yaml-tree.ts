// YAML (and JSON, a subset of it) read into a small tree that remembers the line of every key, so that
// the Envoy and OpenTelemetry readers can cite the exact config line.
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { configError, type ConfigLocation } from './types.js';

export type YNode =
  | { kind: 'map'; line: number; entries: Map<string, YNode> }
  | { kind: 'seq'; line: number; items: YNode[] }
  | { kind: 'scalar'; line: number; value: unknown };

export interface YamlTree {
  root: YNode;
  /** The location of a line: the file, the number and the text of that line. */
  at(line: number): ConfigLocation;
}

export function parseYamlTree(text: string, file: string): YamlTree {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0].line ?? lc.linePos(err.pos[0]).line;
    throw configError(
      file,
      line,
      `not valid YAML/JSON: ${err.message.split('\n')[0]}`,
      'Fix the syntax at that line (indentation, a missing ":" or quote).',
    );
  }
  const lineOf = (n: Node | null | undefined, fallback: number): number =>
    n?.range ? lc.linePos(n.range[0]).line : fallback;
  const convert = (n: unknown, line: number, seen: number): YNode => {
    if (seen > 64) return { kind: 'scalar', line, value: null };
    let node = n as Node | null;
    if (node && isAlias(node)) node = (node.resolve(doc) as Node | undefined) ?? null;
    if (node && isMap(node)) {
      const entries = new Map<string, YNode>();
      for (const pair of node.items) {
        const k = pair.key as Node | null;
        const key = k && isScalar(k) ? String(k.value) : String(k);
        const kl = lineOf(k, line);
        entries.set(key, convert(pair.value, kl, seen + 1));
      }
      return { kind: 'map', line, entries };
    }
    if (node && isSeq(node)) {
      return {
        kind: 'seq',
        line,
        items: node.items.map((it) => convert(it, lineOf(it as Node, line), seen + 1)),
      };
    }
    return { kind: 'scalar', line, value: node && isScalar(node) ? node.value : null };
  };
  const root = convert(doc.contents, 1, 0);
  const lines = text.split('\n');
  return { root, at: (line) => ({ file, line, text: (lines[line - 1] ?? '').trim() }) };
}

export function child(n: YNode | undefined, key: string): YNode | undefined {
  return n?.kind === 'map' ? n.entries.get(key) : undefined;
}

export function path(n: YNode | undefined, ...keys: string[]): YNode | undefined {
  let cur = n;
  for (const k of keys) cur = child(cur, k);
  return cur;
}

export function str(n: YNode | undefined): string | undefined {
  if (n?.kind !== 'scalar' || n.value === null || n.value === undefined) return undefined;
  return typeof n.value === 'string' || typeof n.value === 'number' ? String(n.value) : undefined;
}

export function bool(n: YNode | undefined): boolean | undefined {
  if (n?.kind !== 'scalar') return undefined;
  if (typeof n.value === 'boolean') return n.value;
  if (n.value === 'true') return true;
  if (n.value === 'false') return false;
  return undefined;
}

export function items(n: YNode | undefined): YNode[] {
  return n?.kind === 'seq' ? n.items : [];
}

export function entries(n: YNode | undefined): [string, YNode][] {
  return n?.kind === 'map' ? [...n.entries] : [];
}
