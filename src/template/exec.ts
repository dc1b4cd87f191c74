// Port of Go's text/template executor (exec.go) over the value model in values.ts. Error texts keep
// Go's shape ("template: NAME:LINE:COL: executing "NAME" at <NODE>: ..."); where Go would print a
// data value, Ferry's message names only its type.
import { sprint } from './fmt.ts';
import { type CallContext, FuncError, GO_PARAM_TYPE, type GoFunc, type ParamType } from './func.ts';
import { type Meter, withMeter } from './meter.ts';
import {
  type ArgNode,
  type BranchNode,
  type ChainNode,
  type CommandNode,
  type FieldNode,
  type IdentifierNode,
  type Node,
  type NumberNode,
  nodeString,
  type PipeNode,
  type TemplateNode,
  type Tree,
  type VariableNode,
} from './parse.ts';
import {
  elemType,
  GoInt,
  GoSemver,
  GoStruct,
  type GoValue,
  intValue,
  isIntKind,
  isMap,
  isUintKind,
  JsonNumber,
  kindOf,
  sortedKeys,
  truth,
  typeName,
} from './values.ts';

export interface Limits {
  maxSteps: number;
  maxOutputBytes: number;
  /** Bytes of values built by functions, summed over the render (UTF-16 units for strings, 8 per list element). */
  maxAllocBytes: number;
  /** Wall time of one render. */
  maxDurationMs: number;
}

/** Steps and reservations between two reads of the clock. */
const CLOCK_EVERY = 256;

/** Go's maxExecDepth is 100000; JS stacks are smaller, so nesting is capped lower. */
const MAX_EXEC_DEPTH = 1000;

/** An execution failure: `goMessage` is Go's text (may contain data), `message` is redacted. */
export class ExecFailure extends Error {
  readonly goMessage: string;
  readonly templateName: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  constructor(message: string, goMessage: string, templateName: string, line?: number, col?: number) {
    super(message);
    this.goMessage = goMessage;
    this.templateName = templateName;
    this.line = line;
    this.col = col;
  }
}

/** A resource limit was reached (steps, output, allocation, time); the message names the limit only. */
export class LimitExceeded extends ExecFailure {}

const BREAK = Symbol('break');
const CONTINUE = Symbol('continue');

/** Marks "no final argument" in a pipeline (Go's missingVal). */
const MISSING: unique symbol = Symbol('missing');
type Final = GoValue | typeof MISSING;

/** A message with the Go text and its redacted counterpart. */
interface Msg {
  go: string;
  safe: string;
}
const same = (s: string): Msg => ({ go: s, safe: s });

/** A message about a value: Go's text shows it (%v), Ferry's safe text only names its type. */
const about = (v: GoValue, text: (shown: string) => string): Msg => ({
  go: text(sprint([v ?? null])),
  safe: text(`<${typeName(v)} value>`),
});

export interface Env {
  trees: Map<string, Tree>;
  funcs: ReadonlyMap<string, GoFunc>;
  builtins: ReadonlySet<string>;
  limits: Limits;
  ctx: CallContext;
  /** Monotonic milliseconds for the render deadline. */
  clock: () => number;
}

interface Var {
  name: string;
  value: GoValue;
}

export function execute(env: Env, name: string, data: GoValue): string {
  const root = env.trees.get(name)?.root;
  const st = new State(env, name);
  if (!root) return st.errorf(same(`${JSON.stringify(name)} is an incomplete or empty template`));
  st.vars = [{ name: '$', value: data }];
  withMeter(st, () => st.walk(data, root));
  return st.out;
}

class State implements Meter {
  out = '';
  vars: Var[] = [];
  private node: Node | undefined;
  private outBytes = 0;
  private steps = 0;
  private allocated = 0;
  private untilClock = CLOCK_EVERY;
  private readonly deadline: number;
  private depth = 0;
  private readonly env: Env;
  private tmplName: string;

  constructor(env: Env, name: string) {
    this.env = env;
    this.tmplName = name;
    this.deadline = env.clock() + env.limits.maxDurationMs;
  }

  charge(n: number): void {
    this.steps += n;
    if (this.steps > this.env.limits.maxSteps)
      this.limit(`execution exceeded the step limit (${this.env.limits.maxSteps})`);
    this.tick();
  }

  reserve(bytes: number): void {
    if (!(this.allocated + bytes <= this.env.limits.maxAllocBytes)) this.allocationExceeded();
    this.tick();
  }

  /** Charges a value a function built (after the fact: its size was bounded by `reserve`). */
  private alloc(bytes: number): void {
    this.allocated += bytes;
    if (this.allocated > this.env.limits.maxAllocBytes) this.allocationExceeded();
  }

  private allocationExceeded(): never {
    this.limit(`execution exceeded the allocation limit (${this.env.limits.maxAllocBytes} bytes)`);
  }

  private tick(): void {
    if (--this.untilClock > 0) return;
    this.untilClock = CLOCK_EVERY;
    if (this.env.clock() > this.deadline)
      this.limit(`execution exceeded the time limit (${this.env.limits.maxDurationMs} ms)`);
  }

  private limit(text: string): never {
    this.errorf(same(text), LimitExceeded);
  }

  private write(s: string): void {
    this.outBytes += Buffer.byteLength(s, 'utf8');
    if (this.outBytes > this.env.limits.maxOutputBytes)
      this.limit(`output exceeded the size limit (${this.env.limits.maxOutputBytes} bytes)`);
    this.out += s;
  }

  private at(n: Node): void {
    this.node = n;
  }

  errorf(msg: Msg, Failure: typeof ExecFailure = ExecFailure): never {
    const name = this.tmplName;
    const n = this.node;
    if (!n) {
      throw new Failure(`template: ${name}: ${msg.safe}`, `template: ${name}: ${msg.go}`, name);
    }
    const before = n.tree.text.slice(0, n.pos);
    const nl = before.lastIndexOf('\n');
    const line = 1 + (before.match(/\n/g)?.length ?? 0);
    const col = Buffer.byteLength(nl === -1 ? before : before.slice(nl + 1), 'utf8');
    const prefix = `template: ${n.tree.parseName}:${line}:${col}: executing ${JSON.stringify(name)} at <${nodeString(n)}>: `;
    throw new Failure(prefix + msg.safe, prefix + msg.go, n.tree.parseName, line, col);
  }

  // --- variables ---
  private push(name: string, value: GoValue): void {
    this.vars.push({ name, value });
  }
  private setVar(name: string, value: GoValue): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        return;
      }
    }
    this.errorf(same(`undefined variable: ${name}`));
  }
  private varValue(name: string): GoValue {
    for (let i = this.vars.length - 1; i >= 0; i--)
      if (this.vars[i]!.name === name) return this.vars[i]!.value;
    this.errorf(same(`undefined variable: ${name}`));
  }

  walk(dot: GoValue, node: Node): void {
    this.charge(1);
    this.at(node);
    switch (node.type) {
      case 'action': {
        const val = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, val);
        return;
      }
      case 'break':
        throw BREAK;
      case 'continue':
        throw CONTINUE;
      case 'comment':
        return;
      case 'if':
      case 'with':
        this.walkIfOrWith(dot, node);
        return;
      case 'list':
        for (const n of node.nodes) this.walk(dot, n);
        return;
      case 'range':
        this.walkRange(dot, node);
        return;
      case 'template':
        this.walkTemplate(dot, node);
        return;
      case 'text':
        this.write(node.text);
        return;
      default:
        this.errorf(same(`unknown node: ${nodeString(node)}`));
    }
  }

  private walkIfOrWith(dot: GoValue, node: BranchNode): void {
    const mark = this.vars.length;
    try {
      const val = this.evalPipeline(dot, node.pipe);
      if (truth(val)) this.walk(node.type === 'with' ? val : dot, node.list);
      else if (node.elseList) this.walk(dot, node.elseList);
    } finally {
      this.vars.length = mark;
    }
  }

  private walkRange(dot: GoValue, r: BranchNode): void {
    this.at(r);
    const outer = this.vars.length;
    try {
      const val = this.evalPipeline(dot, r.pipe);
      const mark = this.vars.length;
      const decl = r.pipe.decl;
      const one = (index: GoValue, elem: GoValue): void => {
        this.charge(1);
        if (decl.length > 0) {
          if (r.pipe.isAssign) this.setVar(decl[0]!.ident[0]!, decl.length > 1 ? index : elem);
          else this.vars[this.vars.length - 1]!.value = elem;
        }
        if (decl.length > 1) {
          if (r.pipe.isAssign) this.setVar(decl[1]!.ident[0]!, elem);
          else this.vars[this.vars.length - 2]!.value = index;
        }
        try {
          this.walk(elem, r.list);
        } catch (e) {
          if (e !== CONTINUE) throw e;
        } finally {
          this.vars.length = mark;
        }
      };
      const k = kindOf(val);
      let ran = false;
      if (isIntKind(k) || isUintKind(k)) {
        if (decl.length > 1)
          this.errorf(about(val, (v) => `can't use ${v} to iterate over more than one variable`));
        const n = intValue(val);
        for (let i = 0n; i < n; i++) {
          ran = true;
          one(undefined, val instanceof GoInt ? new GoInt(val.type, i) : i);
        }
      } else if (Array.isArray(val)) {
        val.forEach((e, i) => {
          ran = true;
          one(BigInt(i), e);
        });
      } else if (isMap(val)) {
        for (const key of sortedKeys(val)) {
          ran = true;
          one(key, val[key]);
        }
      } else if (val !== undefined && val !== null) {
        this.errorf(about(val, (v) => `range can't iterate over ${v}`));
      }
      if (!ran && r.elseList) this.walk(dot, r.elseList);
    } catch (e) {
      if (e !== BREAK) throw e;
    } finally {
      this.vars.length = outer;
    }
  }

  private walkTemplate(dot: GoValue, t: TemplateNode): void {
    this.at(t);
    const tree = this.env.trees.get(t.name);
    if (!tree?.root) this.errorf(same(`template ${JSON.stringify(t.name)} not defined`));
    if (this.depth >= MAX_EXEC_DEPTH)
      this.errorf(same(`exceeded maximum template depth (${MAX_EXEC_DEPTH})`), LimitExceeded);
    const newDot = this.evalPipeline(dot, t.pipe);
    const saved = { vars: this.vars, name: this.tmplName };
    this.depth++;
    this.tmplName = t.name;
    this.vars = [{ name: '$', value: newDot }];
    try {
      this.walk(newDot, tree.root);
    } finally {
      this.depth--;
      this.vars = saved.vars;
      this.tmplName = saved.name;
    }
  }

  private evalPipeline(dot: GoValue, pipe: PipeNode | undefined): GoValue {
    if (!pipe) return undefined;
    this.at(pipe);
    let value: Final = MISSING;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, value);
      // An interface{} holding nil becomes an invalid value (Go's value.Elem()).
      if (value === null) value = undefined;
    }
    const v = value === MISSING ? undefined : value;
    for (const variable of pipe.decl) {
      if (pipe.isAssign) this.setVar(variable.ident[0]!, v);
      else this.push(variable.ident[0]!, v);
    }
    return v;
  }

  private notAFunction(args: ArgNode[], final: Final): void {
    if (args.length > 1 || final !== MISSING) {
      this.errorf(same(`can't give argument to non-function ${nodeString(args[0]!)}`));
    }
  }

  private evalCommand(dot: GoValue, cmd: CommandNode, final: Final): GoValue {
    this.charge(1);
    const first = cmd.args[0]!;
    switch (first.type) {
      case 'field':
        return this.evalFieldNode(dot, first, cmd.args, final);
      case 'chain':
        return this.evalChainNode(dot, first, cmd.args, final);
      case 'identifier':
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case 'variable':
        return this.evalVariableNode(dot, first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.type) {
      case 'bool':
        return first.value;
      case 'dot':
        return dot;
      case 'nil':
        this.errorf(same('nil is not a command'));
        break;
      case 'number':
        return this.idealConstant(first);
      case 'string':
        return first.text;
    }
    this.errorf(same(`can't evaluate command ${JSON.stringify(nodeString(first))}`));
  }

  private idealConstant(c: NumberNode): GoValue {
    this.at(c);
    const isHexInt = /^0[xX]/.test(c.text) && !/[pP]/.test(c.text);
    if (c.isFloat && !isHexInt && c.text[0] !== "'" && /[.eEpP]/.test(c.text)) return c.float64;
    if (c.isInt) return c.int64;
    if (c.isUint) this.errorf(same(`${c.text} overflows int`));
    return undefined;
  }

  private evalFieldNode(dot: GoValue, field: FieldNode, args: ArgNode[], final: Final): GoValue {
    this.at(field);
    return this.evalFieldChain(dot, dot, field, field.ident, args, final);
  }

  private evalChainNode(dot: GoValue, chain: ChainNode, args: ArgNode[], final: Final): GoValue {
    this.at(chain);
    if (chain.node.type === 'nil')
      this.errorf(same(`indirection through explicit nil in ${nodeString(chain)}`));
    const pipe = this.evalArg(dot, undefined, chain.node);
    return this.evalFieldChain(dot, pipe, chain, chain.field, args, final);
  }

  private evalVariableNode(dot: GoValue, v: VariableNode, args: ArgNode[], final: Final): GoValue {
    this.at(v);
    const value = this.varValue(v.ident[0]!);
    if (v.ident.length === 1) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(dot, value, v, v.ident.slice(1), args, final);
  }

  private evalFieldChain(
    dot: GoValue,
    receiver: GoValue,
    node: Node,
    ident: string[],
    args: ArgNode[],
    final: Final,
  ): GoValue {
    let r = receiver;
    for (let i = 0; i < ident.length - 1; i++) r = this.evalField(dot, ident[i]!, node, [], MISSING, r);
    return this.evalField(dot, ident.at(-1)!, node, args, final, r);
  }

  private evalField(
    dot: GoValue,
    fieldName: string,
    node: Node,
    args: ArgNode[],
    final: Final,
    receiver: GoValue,
  ): GoValue {
    if (receiver === undefined) return undefined;
    if (receiver === null) this.errorf(same(`nil pointer evaluating interface {}.${fieldName}`));
    const method = methodOf(receiver, fieldName);
    if (method) return this.evalCall(dot, method, false, node, fieldName, args, final);
    const hasArgs = args.length > 1 || final !== MISSING;
    if (isMap(receiver)) {
      if (hasArgs) this.errorf(same(`${fieldName} is not a method but has arguments`));
      return Object.hasOwn(receiver, fieldName) ? receiver[fieldName] : undefined;
    }
    if (receiver instanceof GoStruct) {
      const f = receiver.field(fieldName);
      if (f) {
        if (hasArgs) this.errorf(same(`${fieldName} has arguments but cannot be invoked as function`));
        return f.value;
      }
    }
    this.errorf(same(`can't evaluate field ${fieldName} in type ${typeName(receiver)}`));
  }

  private evalFunction(
    dot: GoValue,
    node: IdentifierNode,
    cmd: Node,
    args: ArgNode[],
    final: Final,
  ): GoValue {
    this.at(node);
    const f = this.env.funcs.get(node.ident);
    if (!f) this.errorf(same(`${JSON.stringify(node.ident)} is not a defined function`));
    return this.evalCall(dot, f, this.env.builtins.has(node.ident), cmd, node.ident, args, final);
  }

  private evalCall(
    dot: GoValue,
    f: GoFunc,
    isBuiltin: boolean,
    node: Node,
    name: string,
    allArgs: ArgNode[],
    final: Final,
  ): GoValue {
    const args = allArgs.slice(1);
    const numIn = args.length + (final !== MISSING ? 1 : 0);
    const nParams = f.params.length + (f.variadic ? 1 : 0);
    let numFixed = args.length;
    if (f.variadic) {
      numFixed = f.params.length;
      if (numIn < numFixed) {
        this.errorf(same(`wrong number of args for ${name}: want at least ${numFixed} got ${args.length}`));
      }
    } else if (numIn !== nParams) {
      this.errorf(same(`wrong number of args for ${name}: want ${nParams} got ${numIn}`));
    }
    if (isBuiltin && (name === 'and' || name === 'or')) {
      let v: GoValue;
      for (const a of args) {
        v = this.evalArg(dot, 'value', a);
        if (truth(v) === (name === 'or')) return v;
      }
      if (final !== MISSING) v = this.validateType(final, 'value');
      return v;
    }
    const argv: GoValue[] = [];
    let i = 0;
    for (; i < numFixed && i < args.length; i++) argv.push(this.evalArg(dot, f.params[i]!, args[i]!));
    if (f.variadic) for (; i < args.length; i++) argv.push(this.evalArg(dot, f.variadic, args[i]!));
    if (final !== MISSING) {
      let t: ParamType;
      if (f.variadic) t = numIn - 1 < numFixed ? f.params[numIn - 1]! : f.variadic;
      else t = f.params[nParams - 1]!;
      argv.push(this.validateType(final, t));
    }
    if (isBuiltin && name === 'call') {
      this.at(node);
      const fv = argv[0];
      if (fv === undefined || fv === null) this.errorf(same('error calling call: call of nil'));
      const text = (callee: string) => `error calling call: non-function ${callee} of type ${typeName(fv)}`;
      // A piped callee is a value (Go prints it), an argument callee is template text.
      this.errorf(args.length === 0 ? about(fv, text) : same(text(nodeString(args[0]!))));
    }
    this.at(node);
    try {
      const result = f.fn(argv, this.env.ctx);
      if (typeof result === 'string') this.alloc(result.length);
      else if (Array.isArray(result)) this.alloc(8 * result.length);
      return result;
    } catch (e) {
      if (e instanceof FuncError) {
        this.errorf({
          go: `error calling ${name}: ${e.message}`,
          safe: `error calling ${name}: ${e.safe ?? e.message}`,
        });
      }
      throw e;
    }
  }

  private validateType(value: GoValue, typ: ParamType | undefined): GoValue {
    if (value === undefined) {
      if (typ === undefined) return undefined;
      switch (typ) {
        case 'any':
          return null;
        case 'value':
          return undefined;
        case 'map':
          return {};
        case 'list':
          return [];
      }
      this.errorf(same(`invalid value; expected ${GO_PARAM_TYPE[typ]}`));
    }
    if (typ === undefined || typ === 'value' || typ === 'any') return value;
    if (assignable(value, typ)) return value;
    const got = value === null ? 'interface {}' : typeName(value);
    this.errorf(same(`wrong type for value; expected ${GO_PARAM_TYPE[typ]}; got ${got}`));
  }

  private evalArg(dot: GoValue, typ: ParamType | undefined, n: ArgNode): GoValue {
    this.at(n);
    switch (n.type) {
      case 'dot':
        return this.validateType(dot, typ);
      case 'nil':
        if (typ === 'any' || typ === 'value') return typ === 'any' ? null : undefined;
        if (typ === 'map' || typ === 'list') return typ === 'map' ? {} : [];
        this.errorf(same(`cannot assign nil to ${typ === undefined ? '<nil>' : GO_PARAM_TYPE[typ]}`));
        break;
      case 'field':
        return this.validateType(this.evalFieldNode(dot, n, [n], MISSING), typ);
      case 'variable':
        return this.validateType(this.evalVariableNode(dot, n, [], MISSING), typ);
      case 'pipe':
        return this.validateType(this.evalPipeline(dot, n), typ);
      case 'identifier':
        return this.validateType(this.evalFunction(dot, n, n, [n], MISSING), typ);
      case 'chain':
        return this.validateType(this.evalChainNode(dot, n, [], MISSING), typ);
    }
    switch (typ) {
      case 'bool':
        if (n.type === 'bool') return n.value;
        this.errorf(same(`expected bool; found ${nodeString(n)}`));
        break;
      case 'float64':
        if (n.type === 'number' && n.isFloat) return n.float64;
        this.errorf(same(`expected float; found ${nodeString(n)}`));
        break;
      case 'int':
      case 'int64':
        if (n.type === 'number' && n.isInt) return typ === 'int' ? n.int64 : new GoInt('int64', n.int64);
        this.errorf(same(`expected integer; found ${nodeString(n)}`));
        break;
      case 'string':
        if (n.type === 'string') return n.text;
        this.errorf(same(`expected string; found ${nodeString(n)}`));
        break;
      case 'any':
      case 'value':
      case undefined:
        return this.evalEmptyInterface(n);
    }
    this.errorf(same(`can't handle ${nodeString(n)} for arg of type ${GO_PARAM_TYPE[typ]}`));
  }

  private evalEmptyInterface(n: ArgNode): GoValue {
    switch (n.type) {
      case 'bool':
        return n.value;
      case 'number':
        return this.idealConstant(n);
      case 'string':
        return n.text;
    }
    this.errorf(same(`can't handle assignment of ${nodeString(n)} to empty interface argument`));
  }

  private printValue(n: Node, v: GoValue): void {
    this.at(n);
    this.write(v === undefined ? '<no value>' : sprint([v]));
  }
}

function assignable(v: GoValue, typ: ParamType): boolean {
  switch (typ) {
    case 'string':
      return typeof v === 'string';
    case 'int':
      return typeof v === 'bigint';
    case 'int64':
      return v instanceof GoInt && v.type === 'int64';
    case 'float64':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'map':
      return isMap(v) && elemType(v) === 'interface {}';
    case 'list':
      return Array.isArray(v) && elemType(v) === 'interface {}';
    default:
      return true;
  }
}

/** Methods reachable as fields: json.Number's and *semver.Version's accessors. */
function methodOf(v: GoValue, name: string): GoFunc | undefined {
  if (v instanceof JsonNumber && name === 'String') return { params: [], fn: () => v.text };
  if (v instanceof GoSemver) {
    const m: Record<string, () => GoValue> = {
      Major: () => new GoInt('uint64', v.major),
      Minor: () => new GoInt('uint64', v.minor),
      Patch: () => new GoInt('uint64', v.patch),
      Prerelease: () => v.pre,
      Metadata: () => v.metadata,
      Original: () => v.original,
      String: () => v.toString(),
    };
    const f = m[name];
    if (f) return { params: [], fn: f };
  }
  return undefined;
}
