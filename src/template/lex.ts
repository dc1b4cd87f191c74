// Port of Go's text/template/parse lexer (go1.24+): same tokens, trim markers, comment rules and
// error texts, so parse errors read like Go's. Positions are UTF-16 indexes into the source;
// they are converted to Go's byte columns only when an error is reported.

export type ItemType =
  | 'error'
  | 'bool'
  | 'char'
  | 'charConstant'
  | 'comment'
  | 'complex'
  | 'assign'
  | 'declare'
  | 'EOF'
  | 'field'
  | 'identifier'
  | 'leftDelim'
  | 'leftParen'
  | 'number'
  | 'pipe'
  | 'rawString'
  | 'rightDelim'
  | 'rightParen'
  | 'space'
  | 'string'
  | 'text'
  | 'variable'
  // keywords
  | 'block'
  | 'break'
  | 'continue'
  | 'dot'
  | 'define'
  | 'else'
  | 'end'
  | 'if'
  | 'nil'
  | 'range'
  | 'template'
  | 'with';

const KEYWORDS = new Map<string, ItemType>([
  ['.', 'dot'],
  ['block', 'block'],
  ['break', 'break'],
  ['continue', 'continue'],
  ['define', 'define'],
  ['else', 'else'],
  ['end', 'end'],
  ['if', 'if'],
  ['range', 'range'],
  ['nil', 'nil'],
  ['template', 'template'],
  ['with', 'with'],
]);
const KEYWORD_TYPES = new Set(KEYWORDS.values());

export interface Item {
  typ: ItemType;
  pos: number;
  val: string;
  line: number;
}

/** Go's item.String(), used in "unexpected X in Y" messages. */
export function itemString(i: Item): string {
  if (i.typ === 'EOF') return 'EOF';
  if (i.typ === 'error') return i.val;
  if (KEYWORD_TYPES.has(i.typ)) return `<${i.val}>`;
  if ([...i.val].length > 10) return `${goQuote([...i.val].slice(0, 10).join(''))}...`;
  return goQuote(i.val);
}

const LEFT = '{{';
const RIGHT = '}}';
const EOF_RUNE = -1;

const isSpace = (r: number): boolean => r === 0x20 || r === 0x09 || r === 0x0d || r === 0x0a;
const isAlphaNumeric = (r: number): boolean =>
  r === 0x5f || (r >= 0 && /[\p{L}\p{Nd}]/u.test(String.fromCodePoint(r)));
const SPACE_CHARS = ' \t\r\n';
const hasLeftTrimMarker = (s: string, at: number): boolean =>
  s.length - at >= 2 && s[at] === '-' && isSpace(s.charCodeAt(at + 1));
const hasRightTrimMarker = (s: string, at: number): boolean =>
  s.length - at >= 2 && isSpace(s.charCodeAt(at)) && s[at + 1] === '-';

function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (s.charCodeAt(i) === 0x0a) n++;
  return n;
}

export class Lexer {
  private readonly input: string;
  private pos = 0;
  private start = 0;
  private atEOF = false;
  private parenDepth = 0;
  private line = 1;
  private startLine = 1;
  private insideAction = false;
  private item: Item = { typ: 'EOF', pos: 0, val: 'EOF', line: 1 };
  /** Go only lexes break/continue as keywords when no function of that name exists. */
  breakOK = true;
  continueOK = true;

  constructor(input: string) {
    this.input = input;
  }

  private next(): number {
    if (this.pos >= this.input.length) {
      this.atEOF = true;
      return EOF_RUNE;
    }
    const r = this.input.codePointAt(this.pos)!;
    this.pos += r > 0xffff ? 2 : 1;
    if (r === 0x0a) this.line++;
    return r;
  }

  private peek(): number {
    if (this.pos >= this.input.length) return EOF_RUNE;
    return this.input.codePointAt(this.pos)!;
  }

  private backup(): void {
    if (!this.atEOF && this.pos > 0) {
      const lo = this.input.charCodeAt(this.pos - 1);
      const w = lo >= 0xdc00 && lo <= 0xdfff && this.pos > 1 ? 2 : 1;
      this.pos -= w;
      if (this.input.charCodeAt(this.pos) === 0x0a) this.line--;
    }
    this.atEOF = false;
  }

  private thisItem(t: ItemType): Item {
    const i = { typ: t, pos: this.start, val: this.input.slice(this.start, this.pos), line: this.startLine };
    this.start = this.pos;
    this.startLine = this.line;
    return i;
  }

  private emit(t: ItemType): null {
    this.item = this.thisItem(t);
    return null;
  }

  private emitItem(i: Item): null {
    this.item = i;
    return null;
  }

  private ignore(): void {
    this.line += countNewlines(this.input, this.start, this.pos);
    this.start = this.pos;
    this.startLine = this.line;
  }

  private accept(valid: string): boolean {
    const r = this.next();
    if (r !== EOF_RUNE && valid.includes(String.fromCodePoint(r))) return true;
    this.backup();
    return false;
  }

  private acceptRun(valid: string): void {
    for (;;) {
      const r = this.next();
      if (r === EOF_RUNE || !valid.includes(String.fromCodePoint(r))) break;
    }
    this.backup();
  }

  private errorf(msg: string): null {
    this.item = { typ: 'error', pos: this.start, val: msg, line: this.startLine };
    this.start = 0;
    this.pos = this.input.length;
    this.insideAction = false;
    this.done = true;
    return null;
  }

  private done = false;

  nextItem(): Item {
    this.item = { typ: 'EOF', pos: this.pos, val: 'EOF', line: this.startLine };
    if (this.done) return this.item;
    let state: (() => StateFn) | null = this.insideAction ? this.lexInsideAction : this.lexText;
    while (state) state = state.call(this);
    return this.item;
  }

  private lexText(): StateFn {
    const x = this.input.indexOf(LEFT, this.pos);
    if (x >= 0) {
      if (x > this.pos) {
        this.pos = x;
        let trimLength = 0;
        const delimEnd = this.pos + LEFT.length;
        if (hasLeftTrimMarker(this.input, delimEnd)) {
          const s = this.input.slice(this.start, this.pos);
          trimLength = s.length - trimRight(s).length;
        }
        this.pos -= trimLength;
        this.line += countNewlines(this.input, this.start, this.pos);
        const i = this.thisItem('text');
        this.pos += trimLength;
        this.ignore();
        if (i.val.length > 0) return this.emitItem(i);
      }
      return this.lexLeftDelim;
    }
    this.pos = this.input.length;
    if (this.pos > this.start) {
      this.line += countNewlines(this.input, this.start, this.pos);
      return this.emit('text');
    }
    this.done = true;
    return this.emit('EOF');
  }

  private atRightDelim(): { delim: boolean; trimSpaces: boolean } {
    if (hasRightTrimMarker(this.input, this.pos) && this.input.startsWith(RIGHT, this.pos + 2)) {
      return { delim: true, trimSpaces: true };
    }
    if (this.input.startsWith(RIGHT, this.pos)) return { delim: true, trimSpaces: false };
    return { delim: false, trimSpaces: false };
  }

  private lexLeftDelim(): StateFn {
    this.pos += LEFT.length;
    const trimSpace = hasLeftTrimMarker(this.input, this.pos);
    const afterMarker = trimSpace ? 2 : 0;
    if (this.input.startsWith('/*', this.pos + afterMarker)) {
      this.pos += afterMarker;
      this.ignore();
      return this.lexComment;
    }
    const i = this.thisItem('leftDelim');
    this.insideAction = true;
    this.pos += afterMarker;
    this.ignore();
    this.parenDepth = 0;
    return this.emitItem(i);
  }

  private lexComment(): StateFn {
    this.pos += 2;
    const x = this.input.indexOf('*/', this.pos);
    if (x < 0) return this.errorf('unclosed comment');
    this.pos = x + 2;
    const { delim, trimSpaces } = this.atRightDelim();
    if (!delim) return this.errorf('comment ends before closing delimiter');
    this.line += countNewlines(this.input, this.start, this.pos);
    this.thisItem('comment');
    if (trimSpaces) this.pos += 2;
    this.pos += RIGHT.length;
    if (trimSpaces) this.pos += leftTrimLength(this.input, this.pos);
    this.ignore();
    return this.lexText;
  }

  private lexRightDelim(): StateFn {
    const { trimSpaces } = this.atRightDelim();
    if (trimSpaces) {
      this.pos += 2;
      this.ignore();
    }
    this.pos += RIGHT.length;
    const i = this.thisItem('rightDelim');
    if (trimSpaces) {
      this.pos += leftTrimLength(this.input, this.pos);
      this.ignore();
    }
    this.insideAction = false;
    return this.emitItem(i);
  }

  private lexInsideAction(): StateFn {
    if (this.atRightDelim().delim) {
      if (this.parenDepth === 0) return this.lexRightDelim;
      return this.errorf('unclosed left paren');
    }
    const r = this.next();
    if (r === EOF_RUNE) return this.errorf('unclosed action');
    if (isSpace(r)) {
      this.backup();
      return this.lexSpace;
    }
    switch (r) {
      case 0x3d: // =
        return this.emit('assign');
      case 0x3a: // :
        if (this.next() !== 0x3d) return this.errorf('expected :=');
        return this.emit('declare');
      case 0x7c: // |
        return this.emit('pipe');
      case 0x22: // "
        return this.lexQuote;
      case 0x60: // `
        return this.lexRawQuote;
      case 0x24: // $
        return this.lexVariable;
      case 0x27: // '
        return this.lexChar;
      case 0x28: // (
        this.parenDepth++;
        return this.emit('leftParen');
      case 0x29: // )
        this.parenDepth--;
        if (this.parenDepth < 0) return this.errorf('unexpected right paren');
        return this.emit('rightParen');
    }
    if (r === 0x2e) {
      const c = this.input.charCodeAt(this.pos);
      if (this.pos >= this.input.length || c < 0x30 || c > 0x39) return this.lexField;
    }
    if (r === 0x2e || r === 0x2b || r === 0x2d || (r >= 0x30 && r <= 0x39)) {
      this.backup();
      return this.lexNumber;
    }
    if (isAlphaNumeric(r)) {
      this.backup();
      return this.lexIdentifier;
    }
    if (r <= 0x7e && r >= 0x20) return this.emit('char');
    return this.errorf(`unrecognized character in action: ${formatRuneU(r)}`);
  }

  private lexSpace(): StateFn {
    let numSpaces = 0;
    while (isSpace(this.peek())) {
      this.next();
      numSpaces++;
    }
    if (hasRightTrimMarker(this.input, this.pos - 1) && this.input.startsWith(RIGHT, this.pos - 1 + 2)) {
      this.backup();
      if (numSpaces === 1) return this.lexRightDelim;
    }
    return this.emit('space');
  }

  private lexIdentifier(): StateFn {
    for (;;) {
      const r = this.next();
      if (isAlphaNumeric(r)) continue;
      this.backup();
      const word = this.input.slice(this.start, this.pos);
      if (!this.atTerminator()) return this.errorf(`bad character ${formatRuneU(r)}`);
      const kw = KEYWORDS.get(word);
      if (kw && kw !== 'dot') {
        if ((kw === 'break' && !this.breakOK) || (kw === 'continue' && !this.continueOK)) {
          return this.emit('identifier');
        }
        return this.emit(kw);
      }
      if (word[0] === '.') return this.emit('field');
      if (word === 'true' || word === 'false') return this.emit('bool');
      return this.emit('identifier');
    }
  }

  private lexField(): StateFn {
    return this.lexFieldOrVariable('field');
  }

  private lexVariable(): StateFn {
    if (this.atTerminator()) return this.emit('variable');
    return this.lexFieldOrVariable('variable');
  }

  private lexFieldOrVariable(typ: 'field' | 'variable'): StateFn {
    if (this.atTerminator()) return this.emit(typ === 'variable' ? 'variable' : 'dot');
    let r: number;
    for (;;) {
      r = this.next();
      if (!isAlphaNumeric(r)) {
        this.backup();
        break;
      }
    }
    if (!this.atTerminator()) return this.errorf(`bad character ${formatRuneU(r)}`);
    return this.emit(typ);
  }

  private atTerminator(): boolean {
    const r = this.peek();
    if (isSpace(r)) return true;
    switch (r) {
      case EOF_RUNE:
      case 0x2e:
      case 0x2c:
      case 0x7c:
      case 0x3a:
      case 0x29:
      case 0x28:
        return true;
    }
    return this.input.startsWith(RIGHT, this.pos);
  }

  private lexChar(): StateFn {
    return this.lexQuoted(0x27, 'charConstant', 'unterminated character constant');
  }

  private lexNumber(): StateFn {
    if (!this.scanNumber())
      return this.errorf(`bad number syntax: ${goQuote(this.input.slice(this.start, this.pos))}`);
    const sign = this.peek();
    if (sign === 0x2b || sign === 0x2d) {
      if (!this.scanNumber() || this.input[this.pos - 1] !== 'i') {
        return this.errorf(`bad number syntax: ${goQuote(this.input.slice(this.start, this.pos))}`);
      }
      return this.emit('complex');
    }
    return this.emit('number');
  }

  private scanNumber(): boolean {
    this.accept('+-');
    let digits = '0123456789_';
    if (this.accept('0')) {
      if (this.accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (this.accept('oO')) digits = '01234567_';
      else if (this.accept('bB')) digits = '01_';
    }
    this.acceptRun(digits);
    if (this.accept('.')) this.acceptRun(digits);
    if (digits.length === 11 && this.accept('eE')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    if (digits.length === 23 && this.accept('pP')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    this.accept('i');
    if (isAlphaNumeric(this.peek())) {
      this.next();
      return false;
    }
    return true;
  }

  private lexQuote(): StateFn {
    return this.lexQuoted(0x22, 'string', 'unterminated quoted string');
  }

  /** The rest of a '…' or "…" literal: a backslash escapes the next rune; newline or EOF is an error. */
  private lexQuoted(quote: number, typ: 'charConstant' | 'string', unterminated: string): StateFn {
    for (;;) {
      let r = this.next();
      if (r === 0x5c) {
        r = this.next();
        if (r !== EOF_RUNE && r !== 0x0a) continue;
      }
      if (r === EOF_RUNE || r === 0x0a) return this.errorf(unterminated);
      if (r === quote) break;
    }
    return this.emit(typ);
  }

  private lexRawQuote(): StateFn {
    for (;;) {
      const r = this.next();
      if (r === EOF_RUNE) return this.errorf('unterminated raw quoted string');
      if (r === 0x60) break;
    }
    return this.emit('rawString');
  }
}

type StateFn = (() => StateFn) | null;

function trimRight(s: string): string {
  let end = s.length;
  while (end > 0 && SPACE_CHARS.includes(s[end - 1]!)) end--;
  return s.slice(0, end);
}

function leftTrimLength(s: string, from: number): number {
  let i = from;
  while (i < s.length && SPACE_CHARS.includes(s[i]!)) i++;
  return i - from;
}

/** Go's %#U: U+0023 '#'. */
function formatRuneU(r: number): string {
  const hex = r.toString(16).toUpperCase().padStart(4, '0');
  const printable = r >= 0x20 && r !== 0x7f && !(r >= 0x80 && r < 0xa0);
  return printable ? `U+${hex} '${String.fromCodePoint(r)}'` : `U+${hex}`;
}

/** Go's strconv.Quote (%q for strings). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else if (!isPrintRune(c)) {
      out += c > 0xffff ? `\\U${c.toString(16).padStart(8, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

/** Approximates Go's unicode.IsPrint (letters, marks, numbers, punctuation, symbols, U+0020). */
export function isPrintRune(c: number): boolean {
  if (c === 0x20) return true;
  return /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(String.fromCodePoint(c));
}
