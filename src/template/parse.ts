// Port of Go's text/template/parse parser: node shapes, variable scoping, define/block handling and
// error messages follow go1.24+ so parse errors agree with VSO's.
import { type Item, type ItemType, itemString, Lexer } from './lex.ts';

export interface Tree {
  name: string;
  /** Name of the top-level template whose source holds this tree (Go's ParseName). */
  parseName: string;
  text: string;
  root: ListNode | undefined;
}

interface Base {
  pos: number;
  tree: Tree;
}
export interface ListNode extends Base {
  type: 'list';
  nodes: Node[];
}
export interface TextNode extends Base {
  type: 'text';
  text: string;
}
export interface CommentNode extends Base {
  type: 'comment';
}
export interface ActionNode extends Base {
  type: 'action';
  pipe: PipeNode;
}
export interface PipeNode extends Base {
  type: 'pipe';
  isAssign: boolean;
  decl: VariableNode[];
  cmds: CommandNode[];
}
export interface CommandNode extends Base {
  type: 'command';
  args: ArgNode[];
}
export interface IdentifierNode extends Base {
  type: 'identifier';
  ident: string;
}
export interface VariableNode extends Base {
  type: 'variable';
  ident: string[];
}
export interface DotNode extends Base {
  type: 'dot';
}
export interface NilNode extends Base {
  type: 'nil';
}
export interface FieldNode extends Base {
  type: 'field';
  ident: string[];
}
export interface ChainNode extends Base {
  type: 'chain';
  node: ArgNode;
  field: string[];
}
export interface BoolNode extends Base {
  type: 'bool';
  value: boolean;
}
export interface NumberNode extends Base {
  type: 'number';
  text: string;
  isInt: boolean;
  isUint: boolean;
  isFloat: boolean;
  int64: bigint;
  uint64: bigint;
  float64: number;
}
export interface StringNode extends Base {
  type: 'string';
  quoted: string;
  text: string;
}
export interface BranchNode extends Base {
  type: 'if' | 'range' | 'with';
  pipe: PipeNode;
  list: ListNode;
  elseList: ListNode | undefined;
}
export interface TemplateNode extends Base {
  type: 'template';
  name: string;
  pipe: PipeNode | undefined;
}
export interface BreakNode extends Base {
  type: 'break' | 'continue';
}
interface EndNode extends Base {
  type: 'end' | 'else';
}

export type ArgNode =
  | IdentifierNode
  | VariableNode
  | DotNode
  | NilNode
  | FieldNode
  | ChainNode
  | BoolNode
  | NumberNode
  | StringNode
  | PipeNode;
export type Node =
  | ListNode
  | TextNode
  | CommentNode
  | ActionNode
  | BranchNode
  | TemplateNode
  | BreakNode
  | EndNode
  | CommandNode
  | ArgNode;

/** Thrown for parse failures; `message` is Go's full text ("template: NAME:LINE: ..."). */
export class ParseFailure extends Error {
  readonly templateName: string;
  readonly line: number;
  constructor(message: string, templateName: string, line: number) {
    super(message);
    this.templateName = templateName;
    this.line = line;
  }
}

/** Go's Node.String(): re-renders a node as source, used for error context. */
export function nodeString(n: Node): string {
  switch (n.type) {
    case 'list':
      return n.nodes.map(nodeString).join('');
    case 'text':
      return n.text;
    case 'comment':
      return '{{/* */}}';
    case 'action':
      return `{{${nodeString(n.pipe)}}}`;
    case 'pipe': {
      let s = '';
      if (n.decl.length > 0) s = `${n.decl.map(nodeString).join(', ')}${n.isAssign ? ' = ' : ' := '}`;
      return s + n.cmds.map(nodeString).join(' | ');
    }
    case 'command':
      return n.args.map((a) => (a.type === 'pipe' ? `(${nodeString(a)})` : nodeString(a))).join(' ');
    case 'identifier':
      return n.ident;
    case 'variable':
      return n.ident.join('.');
    case 'dot':
      return '.';
    case 'nil':
      return 'nil';
    case 'field':
      return n.ident.map((i) => `.${i}`).join('');
    case 'chain': {
      const inner = n.node.type === 'pipe' ? `(${nodeString(n.node)})` : nodeString(n.node);
      return inner + n.field.map((f) => `.${f}`).join('');
    }
    case 'bool':
      return n.value ? 'true' : 'false';
    case 'number':
      return n.text;
    case 'string':
      return n.quoted;
    case 'if':
    case 'range':
    case 'with': {
      const e = n.elseList ? `{{else}}${nodeString(n.elseList)}` : '';
      return `{{${n.type} ${nodeString(n.pipe)}}}${nodeString(n.list)}${e}{{end}}`;
    }
    case 'template':
      return `{{template ${JSON.stringify(n.name)}${n.pipe ? ` ${nodeString(n.pipe)}` : ''}}}`;
    case 'break':
    case 'continue':
      return `{{${n.type}}}`;
    case 'end':
    case 'else':
      return `{{${n.type}}}`;
  }
}

const MAX_STACK_DEPTH = 10000;

interface ParseState {
  lex: Lexer;
  tokens: Item[];
  peekCount: number;
  hasFunction: (name: string) => boolean;
  treeSet: Map<string, Tree>;
}

/** A parser for one tree (the top-level template, or a define/block body sharing the lexer). */
class TreeParser {
  readonly tree: Tree;
  private readonly st: ParseState;
  private vars: string[] = ['$'];
  private actionLine = 0;
  private rangeDepth = 0;
  private stackDepth = 0;

  constructor(tree: Tree, st: ParseState) {
    this.tree = tree;
    this.st = st;
  }

  // --- token plumbing (Go's three-token lookahead) ---
  private next(): Item {
    const st = this.st;
    if (st.peekCount > 0) st.peekCount--;
    else st.tokens[0] = st.lex.nextItem();
    return st.tokens[st.peekCount]!;
  }
  private backup(): void {
    this.st.peekCount++;
  }
  private backup2(t1: Item): void {
    this.st.tokens[1] = t1;
    this.st.peekCount = 2;
  }
  private backup3(t2: Item, t1: Item): void {
    this.st.tokens[1] = t1;
    this.st.tokens[2] = t2;
    this.st.peekCount = 3;
  }
  private peek(): Item {
    const st = this.st;
    if (st.peekCount > 0) return st.tokens[st.peekCount - 1]!;
    st.peekCount = 1;
    st.tokens[0] = st.lex.nextItem();
    return st.tokens[0];
  }
  private nextNonSpace(): Item {
    let t: Item;
    do t = this.next();
    while (t.typ === 'space');
    return t;
  }
  private peekNonSpace(): Item {
    const t = this.nextNonSpace();
    this.backup();
    return t;
  }

  errorf(msg: string): never {
    this.tree.root = undefined;
    const line = this.st.tokens[0]?.line ?? 1;
    throw new ParseFailure(`template: ${this.tree.parseName}:${line}: ${msg}`, this.tree.parseName, line);
  }

  private expect(expected: ItemType, context: string): Item {
    const t = this.nextNonSpace();
    if (t.typ !== expected) this.unexpected(t, context);
    return t;
  }

  private unexpected(token: Item, context: string): never {
    if (token.typ === 'error') {
      let extra = '';
      if (this.actionLine !== 0 && this.actionLine !== token.line) {
        extra = ` in action started at ${this.tree.parseName}:${this.actionLine}`;
        if (token.val.endsWith(' action')) extra = extra.slice(' in action'.length);
      }
      this.errorf(`${itemString(token)}${extra}`);
    }
    this.errorf(`unexpected ${itemString(token)} in ${context}`);
  }

  private node<T extends Node>(n: Omit<T, 'tree'>): T {
    return { ...n, tree: this.tree } as T;
  }

  parse(): void {
    this.tree.root = this.node<ListNode>({ type: 'list', pos: this.peek().pos, nodes: [] });
    while (this.peek().typ !== 'EOF') {
      if (this.peek().typ === 'leftDelim') {
        const delim = this.next();
        if (this.nextNonSpace().typ === 'define') {
          const t: Tree = {
            name: 'definition',
            parseName: this.tree.parseName,
            text: this.tree.text,
            root: undefined,
          };
          new TreeParser(t, this.st).parseDefinition();
          continue;
        }
        this.backup2(delim);
      }
      const n = this.textOrAction();
      if (n.type === 'end' || n.type === 'else') this.errorf(`unexpected ${nodeString(n)}`);
      this.tree.root.nodes.push(n);
    }
  }

  add(): void {
    const existing = this.st.treeSet.get(this.tree.name);
    if (!existing || isEmptyTree(existing.root)) {
      this.st.treeSet.set(this.tree.name, this.tree);
      return;
    }
    if (!isEmptyTree(this.tree.root)) {
      this.errorf(`template: multiple definition of template ${JSON.stringify(this.tree.name)}`);
    }
  }

  private parseDefinition(): void {
    const context = 'define clause';
    const name = this.nextNonSpace();
    if (name.typ !== 'string' && name.typ !== 'rawString') this.unexpected(name, context);
    this.tree.name = this.unquote(name.val);
    this.expect('rightDelim', context);
    const { list, next } = this.itemList();
    this.tree.root = list;
    if (next.type !== 'end') this.errorf(`unexpected ${nodeString(next)} in ${context}`);
    this.add();
  }

  private itemList(): { list: ListNode; next: Node } {
    const list = this.node<ListNode>({ type: 'list', pos: this.peekNonSpace().pos, nodes: [] });
    while (this.peekNonSpace().typ !== 'EOF') {
      const n = this.textOrAction();
      if (n.type === 'end' || n.type === 'else') return { list, next: n };
      list.nodes.push(n);
    }
    this.errorf('unexpected EOF');
  }

  private textOrAction(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case 'text':
        return this.node<TextNode>({ type: 'text', pos: token.pos, text: token.val });
      case 'leftDelim':
        this.actionLine = token.line;
        try {
          return this.action();
        } finally {
          this.actionLine = 0;
        }
      case 'comment':
        return this.node<CommentNode>({ type: 'comment', pos: token.pos });
      default:
        this.unexpected(token, 'input');
    }
  }

  private action(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case 'block':
        return this.blockControl();
      case 'break':
      case 'continue':
        return this.breakControl(token);
      case 'else':
        return this.elseControl();
      case 'end':
        return this.node<EndNode>({ type: 'end', pos: this.expect('rightDelim', 'end').pos });
      case 'if':
      case 'range':
      case 'with':
        return this.control(token.typ);
      case 'template':
        return this.templateControl();
    }
    this.backup();
    const t = this.peek();
    return this.node<ActionNode>({
      type: 'action',
      pos: t.pos,
      pipe: this.pipeline('command', 'rightDelim'),
    });
  }

  private breakControl(kw: Item): Node {
    const token = this.nextNonSpace();
    if (token.typ !== 'rightDelim') this.unexpected(token, `{{${kw.typ}}}`);
    if (this.rangeDepth === 0) this.errorf(`{{${kw.typ}}} outside {{range}}`);
    return this.node<BreakNode>({ type: kw.typ as 'break' | 'continue', pos: kw.pos });
  }

  private pipeline(context: string, end: ItemType): PipeNode {
    const token = this.peekNonSpace();
    const pipe = this.node<PipeNode>({ type: 'pipe', pos: token.pos, isAssign: false, decl: [], cmds: [] });
    for (;;) {
      const v = this.peekNonSpace();
      if (v.typ === 'variable') {
        this.next();
        const tokenAfterVariable = this.peek();
        const next = this.peekNonSpace();
        if (next.typ === 'assign' || next.typ === 'declare') {
          pipe.isAssign = next.typ === 'assign';
          this.nextNonSpace();
          pipe.decl.push(this.newVariable(v.pos, v.val));
          this.vars.push(v.val);
        } else if (next.typ === 'char' && next.val === ',') {
          this.nextNonSpace();
          pipe.decl.push(this.newVariable(v.pos, v.val));
          this.vars.push(v.val);
          if (context === 'range' && pipe.decl.length < 2) {
            const p = this.peekNonSpace().typ;
            if (p === 'variable' || p === 'rightDelim' || p === 'rightParen') continue;
            this.errorf('range can only initialize variables');
          }
          this.errorf(`too many declarations in ${context}`);
        } else if (tokenAfterVariable.typ === 'space') {
          this.backup3(v, tokenAfterVariable);
        } else {
          this.backup2(v);
        }
      }
      break;
    }
    for (;;) {
      const t = this.nextNonSpace();
      if (t.typ === end) {
        this.checkPipeline(pipe, context);
        return pipe;
      }
      switch (t.typ) {
        case 'bool':
        case 'charConstant':
        case 'complex':
        case 'dot':
        case 'field':
        case 'identifier':
        case 'number':
        case 'nil':
        case 'rawString':
        case 'string':
        case 'variable':
        case 'leftParen':
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(t, context);
      }
    }
  }

  private checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const t = c.args[0]!.type;
      if (t === 'bool' || t === 'dot' || t === 'nil' || t === 'number' || t === 'string') {
        this.errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  private control(context: 'if' | 'range' | 'with'): BranchNode {
    const mark = this.vars.length;
    try {
      const pipe = this.pipeline(context, 'rightDelim');
      if (context === 'range') this.rangeDepth++;
      const { list, next } = this.itemList();
      if (context === 'range') this.rangeDepth--;
      let elseList: ListNode | undefined;
      if (next.type === 'else') {
        if (
          (context === 'if' && this.peek().typ === 'if') ||
          (context === 'with' && this.peek().typ === 'with')
        ) {
          this.next();
          elseList = this.node<ListNode>({ type: 'list', pos: next.pos, nodes: [this.control(context)] });
        } else {
          const r = this.itemList();
          elseList = r.list;
          if (r.next.type !== 'end') this.errorf(`expected end; found ${nodeString(r.next)}`);
        }
      }
      return this.node<BranchNode>({ type: context, pos: pipe.pos, pipe, list, elseList });
    } finally {
      this.vars.length = mark;
    }
  }

  private elseControl(): Node {
    const peek = this.peekNonSpace();
    if (peek.typ === 'if' || peek.typ === 'with') return this.node<EndNode>({ type: 'else', pos: peek.pos });
    const t = this.expect('rightDelim', 'else');
    return this.node<EndNode>({ type: 'else', pos: t.pos });
  }

  private blockControl(): Node {
    const context = 'block clause';
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    const pipe = this.pipeline(context, 'rightDelim');
    const t: Tree = { name, parseName: this.tree.parseName, text: this.tree.text, root: undefined };
    const block = new TreeParser(t, this.st);
    const { list, next } = block.itemList();
    t.root = list;
    if (next.type !== 'end') this.errorf(`unexpected ${nodeString(next)} in ${context}`);
    block.add();
    return this.node<TemplateNode>({ type: 'template', pos: token.pos, name, pipe });
  }

  private templateControl(): Node {
    const context = 'template clause';
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    let pipe: PipeNode | undefined;
    if (this.nextNonSpace().typ !== 'rightDelim') {
      this.backup();
      pipe = this.pipeline(context, 'rightDelim');
    }
    return this.node<TemplateNode>({ type: 'template', pos: token.pos, name, pipe });
  }

  private parseTemplateName(token: Item, context: string): string {
    if (token.typ === 'string' || token.typ === 'rawString') return this.unquote(token.val);
    this.unexpected(token, context);
  }

  private command(): CommandNode {
    const cmd = this.node<CommandNode>({ type: 'command', pos: this.peekNonSpace().pos, args: [] });
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const token = this.next();
      if (token.typ === 'space') continue;
      if (token.typ === 'rightDelim' || token.typ === 'rightParen') this.backup();
      else if (token.typ !== 'pipe') this.unexpected(token, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.errorf('empty command');
    return cmd;
  }

  private operand(): ArgNode | undefined {
    let node = this.term();
    if (!node) return undefined;
    if (this.peek().typ === 'field') {
      const pos = this.peek().pos;
      const fields: string[] = [];
      while (this.peek().typ === 'field') fields.push(this.next().val.slice(1));
      switch (node.type) {
        case 'field':
          node = this.node<FieldNode>({ type: 'field', pos, ident: [...node.ident, ...fields] });
          break;
        case 'variable':
          node = this.node<VariableNode>({ type: 'variable', pos, ident: [...node.ident, ...fields] });
          break;
        case 'bool':
        case 'string':
        case 'number':
        case 'nil':
        case 'dot':
          this.errorf(`unexpected . after term ${JSON.stringify(nodeString(node))}`);
          break;
        default:
          node = this.node<ChainNode>({ type: 'chain', pos, node, field: fields });
      }
    }
    return node;
  }

  private term(): ArgNode | undefined {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case 'identifier':
        if (!this.st.hasFunction(token.val)) this.errorf(`function ${JSON.stringify(token.val)} not defined`);
        return this.node<IdentifierNode>({ type: 'identifier', pos: token.pos, ident: token.val });
      case 'dot':
        return this.node<DotNode>({ type: 'dot', pos: token.pos });
      case 'nil':
        return this.node<NilNode>({ type: 'nil', pos: token.pos });
      case 'variable':
        return this.useVar(token.pos, token.val);
      case 'field':
        return this.node<FieldNode>({ type: 'field', pos: token.pos, ident: token.val.slice(1).split('.') });
      case 'bool':
        return this.node<BoolNode>({ type: 'bool', pos: token.pos, value: token.val === 'true' });
      case 'charConstant':
      case 'complex':
      case 'number':
        return this.newNumber(token);
      case 'leftParen': {
        if (this.stackDepth >= MAX_STACK_DEPTH) this.errorf('max expression depth exceeded');
        this.stackDepth++;
        try {
          return this.pipeline('parenthesized pipeline', 'rightParen');
        } finally {
          this.stackDepth--;
        }
      }
      case 'string':
      case 'rawString':
        return this.node<StringNode>({
          type: 'string',
          pos: token.pos,
          quoted: token.val,
          text: this.unquote(token.val),
        });
    }
    this.backup();
    return undefined;
  }

  private newVariable(pos: number, name: string): VariableNode {
    return this.node<VariableNode>({ type: 'variable', pos, ident: name.split('.') });
  }

  private useVar(pos: number, name: string): VariableNode {
    const v = this.newVariable(pos, name);
    if (!this.vars.includes(v.ident[0]!)) this.errorf(`undefined variable ${JSON.stringify(v.ident[0])}`);
    return v;
  }

  private unquote(q: string): string {
    const r = unquoteGo(q);
    if (r === undefined) this.errorf('invalid syntax');
    return r;
  }

  private newNumber(token: Item): NumberNode {
    const text = token.val;
    const n = this.node<NumberNode>({
      type: 'number',
      pos: token.pos,
      text,
      isInt: false,
      isUint: false,
      isFloat: false,
      int64: 0n,
      uint64: 0n,
      float64: 0,
    });
    if (token.typ === 'charConstant') {
      const r = unquoteChar(text);
      if (r === undefined) this.errorf(`malformed character constant: ${text}`);
      n.isInt = n.isUint = n.isFloat = true;
      n.int64 = n.uint64 = BigInt(r);
      n.float64 = r;
      return n;
    }
    if (token.typ === 'complex' || text.endsWith('i'))
      this.errorf(`complex constants are not supported: ${text}`);
    const u = parseGoInt(text, false);
    if (u !== undefined) {
      n.isUint = true;
      n.uint64 = u;
    }
    const i = parseGoInt(text, true);
    if (i !== undefined) {
      n.isInt = true;
      n.int64 = i;
      if (i === 0n) {
        n.isUint = true;
        n.uint64 = 0n;
      }
    }
    if (n.isInt) {
      n.isFloat = true;
      n.float64 = Number(n.int64);
    } else if (n.isUint) {
      n.isFloat = true;
      n.float64 = Number(n.uint64);
    } else {
      const f = parseGoFloat(text);
      if (f !== undefined) {
        if (!/[.eEpP]/.test(text)) this.errorf(`integer overflow: ${JSON.stringify(text)}`);
        n.isFloat = true;
        n.float64 = f;
        if (Number.isInteger(f) && Math.abs(f) < 2 ** 63) {
          n.isInt = true;
          n.int64 = BigInt(f);
        }
        if (Number.isInteger(f) && f >= 0 && f < 2 ** 64) {
          n.isUint = true;
          n.uint64 = BigInt(f);
        }
      }
    }
    if (!n.isInt && !n.isUint && !n.isFloat) this.errorf(`illegal number syntax: ${JSON.stringify(text)}`);
    return n;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** strconv.ParseInt/ParseUint with base 0 (prefixes and Go-style underscores). */
function parseGoInt(text: string, signed: boolean): bigint | undefined {
  let s = text;
  let neg = false;
  if (s[0] === '+' || s[0] === '-') {
    if (!signed) return undefined;
    neg = s[0] === '-';
    s = s.slice(1);
  }
  let base = 10;
  let digits = s;
  if (/^0[xX]/.test(s)) [base, digits] = [16, s.slice(2)];
  else if (/^0[oO]/.test(s)) [base, digits] = [8, s.slice(2)];
  else if (/^0[bB]/.test(s)) [base, digits] = [2, s.slice(2)];
  else if (/^0\d/.test(s) || s === '0') [base, digits] = [8, s.slice(1) || '0'];
  if (!underscoreOK(s)) return undefined;
  digits = digits.replaceAll('_', '');
  const re = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^\d+$/, 16: /^[0-9a-fA-F]+$/ }[base as 2 | 8 | 10 | 16];
  if (!re.test(digits)) return undefined;
  const prefix = { 2: '0b', 8: '0o', 10: '', 16: '0x' }[base as 2 | 8 | 10 | 16];
  let v = BigInt(prefix + digits);
  if (neg) v = -v;
  if (signed ? v < INT64_MIN || v > INT64_MAX : v > UINT64_MAX) return undefined;
  return v;
}

/** Go's underscoreOK: underscores only between digits (or after a base prefix). */
function underscoreOK(s: string): boolean {
  if (!s.includes('_')) return true;
  let saw = '^';
  let i = 0;
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && /[xXbBoO]/.test(s[1]!)) {
    hex = /[xX]/.test(s[1]!);
    i = 2;
    saw = '0';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (/\d/.test(c) || (hex && /[a-fA-F]/.test(c))) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

function parseGoFloat(text: string): number | undefined {
  if (!underscoreOK(text)) return undefined;
  const s = text.replaceAll('_', '');
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  const hex = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?\d+)$/.exec(s);
  if (hex) {
    const [, sign, intPart, frac, exp] = hex;
    if (!intPart && !frac) return undefined;
    const mant = Number.parseInt(`${intPart}${frac}` || '0', 16) / 16 ** frac!.length;
    return (sign === '-' ? -1 : 1) * mant * 2 ** Number(exp);
  }
  return undefined;
}

const SIMPLE_ESC: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};

/** strconv.Unquote for "..." and `...` literals; undefined on invalid syntax. */
function unquoteGo(q: string): string | undefined {
  if (q.length < 2) return undefined;
  if (q[0] === '`') return q.at(-1) === '`' ? q.slice(1, -1).replaceAll('\r', '') : undefined;
  if (q[0] !== '"' || q.at(-1) !== '"') return undefined;
  let out = '';
  const s = q.slice(1, -1);
  for (let i = 0; i < s.length; ) {
    const c = s[i]!;
    if (c === '"' || c === '\n') return undefined;
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const r = unescapeAt(s, i + 1, '"');
    if (!r) return undefined;
    out += r.s;
    i = r.next;
  }
  return out;
}

function unescapeAt(s: string, i: number, quote: string): { s: string; next: number } | undefined {
  const e = s[i];
  if (e === undefined) return undefined;
  if (SIMPLE_ESC[e] !== undefined) return { s: SIMPLE_ESC[e], next: i + 1 };
  if (e === quote) return { s: e, next: i + 1 };
  const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
  if (hexLen) {
    const h = s.slice(i + 1, i + 1 + hexLen);
    if (h.length !== hexLen || !/^[0-9a-fA-F]+$/.test(h)) return undefined;
    const v = Number.parseInt(h, 16);
    if (e !== 'x' && (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))) return undefined;
    // \xHH is a raw byte in Go; bytes >= 0x80 cannot be represented faithfully in a JS string.
    return { s: String.fromCodePoint(v), next: i + 1 + hexLen };
  }
  if (/[0-7]/.test(e)) {
    const o = s.slice(i, i + 3);
    if (!/^[0-7]{3}$/.test(o)) return undefined;
    const v = Number.parseInt(o, 8);
    if (v > 255) return undefined;
    return { s: String.fromCharCode(v), next: i + 3 };
  }
  return undefined;
}

function unquoteChar(text: string): number | undefined {
  const body = text.slice(1, -1);
  if (text.at(-1) !== "'" || body.length === 0) return undefined;
  if (body[0] !== '\\') {
    const cp = body.codePointAt(0)!;
    return String.fromCodePoint(cp) === body ? cp : undefined;
  }
  const r = unescapeAt(body, 1, "'");
  if (!r || r.next !== body.length) return undefined;
  return r.s.codePointAt(0);
}

function isEmptyTree(n: Node | undefined): boolean {
  if (!n) return true;
  switch (n.type) {
    case 'comment':
      return true;
    case 'list':
      return n.nodes.every(isEmptyTree);
    case 'text':
      return n.text.trim().length === 0;
    default:
      return false;
  }
}

/**
 * Parses one named source into treeSet, as Go's (*Template).New(name).Parse(text) does: the
 * top-level tree plus any define/block trees. An empty body never replaces an existing template.
 */
export function parseInto(
  name: string,
  text: string,
  treeSet: Map<string, Tree>,
  hasFunction: (name: string) => boolean,
): void {
  const lex = new Lexer(text);
  lex.breakOK = !hasFunction('break');
  lex.continueOK = !hasFunction('continue');
  // Go parses each source into a fresh tree set, then associates: a redefinition from another
  // source replaces the old template unless the new body is empty.
  const staged = new Map<string, Tree>();
  const st: ParseState = { lex, tokens: [], peekCount: 0, hasFunction, treeSet: staged };
  const tree: Tree = { name, parseName: name, text, root: undefined };
  const p = new TreeParser(tree, st);
  p.parse();
  p.add();
  for (const [k, v] of staged) {
    if (treeSet.has(k) && isEmptyTree(v.root)) continue;
    treeSet.set(k, v);
  }
}
