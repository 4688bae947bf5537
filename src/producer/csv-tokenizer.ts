/**
 * Splits CSV bytes into records with their physical line numbers, streaming, and turns what cannot
 * be read into spans of lines that are refused whole (issue 11, "intake never invents a device").
 *
 * Record boundaries follow RFC 4180, quote-aware: a cell that starts with `"` (after optional
 * spaces or tabs) is quoted and runs to the next `"` that is not doubled (`""` is an escaped
 * quote); a record ends at the first line break (CRLF, LF or CR) outside quotes. So a line inside a
 * quoted cell is never a record of its own, however broken the cell is:
 *
 * - a record longer than `maxRecordBytes` (a multi-line quoted cell too) is scanned to its real end
 *   without keeping its bytes, and refused as one span "lines a–b";
 * - text after a closing quote (`"D3"x`, or a stray opening quote that a later line's quote
 *   seems to close) makes the record malformed: refused as one span, from its first line to the
 *   line break that ends it outside quotes;
 * - a quote that never closes makes everything from its record to the end of the input one span.
 *
 * A quote inside an unquoted cell (`D"2`) does not open a quoted span: RFC 4180 has no quotes in
 * unquoted cells, and no spreadsheet writes one, so it cannot be the start of a cell that holds
 * line breaks. That record is refused, and it ends at its line's break.
 *
 * Memory: one record (at most `maxRecordBytes`) plus the chunk being scanned, whatever the input.
 */

/** Why a span of lines was refused. */
export type SpanProblem =
  /** The record is longer than the record limit. */
  | 'too_long'
  /** Text after a closing quote, or a quote inside an unquoted cell. */
  | 'malformed'
  /** A quote that is never closed: the span runs to the end of the input. */
  | 'unclosed';

/** What the tokenizer yields, in input order. */
export type CsvEvent =
  /** A record: its cells (unquoted cells trimmed of spaces and tabs) and the line it starts on. */
  | { kind: 'record'; fields: string[]; line: number }
  /** Lines `line`…`lastLine` that were refused whole, and why; `quoteLine`: where a quote that never closed opened. */
  | { kind: 'broken'; line: number; lastLine: number; problem: SpanProblem; quoteLine?: number };

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const SPACE = 0x20;
const TAB = 0x09;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

// Scanner states (plain numbers: this loop runs once per input byte).
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
/** In a quoted cell, just after a `"`: a second one is an escaped quote, anything else closes it. */
const QUOTE_SEEN = 3;
/** After a closing quote: only spaces and tabs may come before the delimiter. */
const AFTER_CLOSE = 4;

// Field kinds, per field of the current record.
const PLAIN = 0;
const QUOTED_PLAIN = 1;
const QUOTED_ESCAPES = 2;

/** Streaming CSV tokenizer: `push` chunks, then `end`; each returns the events completed. */
export class CsvTokenizer {
  private head: Buffer | null = Buffer.alloc(0);
  private events: CsvEvent[] = [];
  private state = FIELD_START;
  /** Physical line of the byte being scanned. */
  private line = 1;
  private lastWasCr = false;
  private lastWasBreak = false;
  /** Line on which the current record starts. */
  private recordLine = 1;
  /** Line on which the last quoted cell opened. */
  private quoteLine = 1;
  /** Something other than spaces and tabs was seen in the current record (else it is a blank line). */
  private hasContent = false;
  private problem: 'malformed' | null = null;
  /** The record is over the limit: its bytes and cells are no longer kept. */
  private tooLong = false;
  /** Bytes of the current record scanned in earlier chunks while `tooLong`. */
  private discarded = 0;
  /** The current record's bytes so far, when it started in an earlier chunk (kept only while not too long). */
  private carry: Buffer = Buffer.alloc(0);
  private carryLength = 0;
  /** Cells of the current record: start, end and kind, offsets relative to the record's first byte. */
  private starts: number[] = [];
  private ends: number[] = [];
  private kinds: number[] = [];
  private fieldStart = 0;
  private fieldKind = PLAIN;
  private contentEnd = 0;
  /** Where the current record starts in the data being scanned. */
  private recordStart = 0;

  constructor(private readonly maxRecordBytes: number) {}

  /** Physical line where reading would resume: the current record's first line. */
  get nextLine(): number {
    return this.hasContent ? this.recordLine : this.line;
  }

  /** Scans a chunk; returns the records and spans it completed. */
  push(chunk: Buffer): CsvEvent[] {
    const data = this.withoutBom(chunk, false);
    if (data !== null && data.length > 0) this.scanChunk(data);
    return this.take();
  }

  /** Ends the input: the last record, or the span of a quote that never closed. */
  end(): CsvEvent[] {
    const data = this.withoutBom(Buffer.alloc(0), true);
    if (data !== null && data.length > 0) this.scanChunk(data);
    const rest = this.carry.subarray(0, this.carryLength);
    if (this.state === QUOTED) {
      const lastLine = this.lastWasBreak ? this.line - 1 : this.line;
      this.events.push({ kind: 'broken', line: this.recordLine, lastLine: Math.max(lastLine, this.recordLine), problem: 'unclosed', quoteLine: this.quoteLine });
      this.resetRecord(rest.length);
    } else if (this.hasContent) {
      this.finishRecord(rest, 0, rest.length, this.line);
    }
    this.carry = Buffer.alloc(0);
    this.carryLength = 0;
    return this.take();
  }

  private take(): CsvEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** Holds the first bytes until a UTF-8 BOM can be told apart, then drops it. */
  private withoutBom(chunk: Buffer, ended: boolean): Buffer | null {
    if (this.head === null) return chunk;
    const head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (head.length < BOM.length && !ended && BOM.subarray(0, head.length).equals(head)) {
      this.head = head;
      return null;
    }
    this.head = null;
    return head.subarray(0, BOM.length).equals(BOM) ? head.subarray(BOM.length) : head;
  }

  private scanChunk(chunk: Buffer): void {
    // A record begun in an earlier chunk is scanned on in its carried bytes, so that its cells
    // are contiguous; otherwise the chunk is scanned where it lies.
    const fromCarry = this.carryLength > 0;
    if (fromCarry) this.appendCarry(chunk);
    const data = fromCarry ? this.carry.subarray(0, this.carryLength) : chunk;
    this.recordStart = 0;
    this.scan(data, fromCarry ? data.length - chunk.length : 0);
    this.keepRest(data, fromCarry);
  }

  private appendCarry(chunk: Buffer): void {
    const needed = this.carryLength + chunk.length;
    if (needed > this.carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.carry.length * 2, 4096));
      this.carry.copy(grown, 0, 0, this.carryLength);
      this.carry = grown;
    }
    chunk.copy(this.carry, this.carryLength);
    this.carryLength = needed;
  }

  /** After a chunk: keep the unfinished record's bytes, or only count them once it is too long. */
  private keepRest(data: Buffer, fromCarry: boolean): void {
    const restLength = data.length - this.recordStart;
    if (!this.tooLong && this.discarded + restLength > this.maxRecordBytes) this.becomeTooLong();
    if (this.tooLong) {
      this.discarded += restLength;
      this.carryLength = 0;
      return;
    }
    if (restLength === 0) {
      this.carryLength = 0;
      return;
    }
    if (fromCarry) {
      this.carry.copy(this.carry, 0, this.recordStart, data.length);
      this.carryLength = restLength;
      return;
    }
    this.carryLength = 0;
    this.appendCarry(data.subarray(this.recordStart));
  }

  private becomeTooLong(): void {
    this.tooLong = true;
    this.starts.length = 0;
    this.ends.length = 0;
    this.kinds.length = 0;
  }

  private pushField(start: number, end: number, kind: number): void {
    if (this.tooLong) return;
    // Checked here too, not only at chunk ends: a huge chunk of tiny cells must not fill these arrays.
    if (end > this.maxRecordBytes) {
      this.becomeTooLong();
      return;
    }
    this.starts.push(start);
    this.ends.push(end);
    this.kinds.push(kind);
  }

  /** The state machine over `data[from…]`; offsets of cells are relative to `recordStart`. */
  private scan(data: Buffer, from: number): void {
    const length = data.length;
    for (let index = from; index < length; index += 1) {
      const byte = data[index] as number;
      if (byte === LF || byte === CR) {
        this.lineBreak(data, index, byte);
        continue;
      }
      this.lastWasCr = false;
      this.lastWasBreak = false;
      const at = index - this.recordStart;
      switch (this.state) {
        case FIELD_START:
          if (byte === SPACE || byte === TAB) continue;
          this.hasContent = true;
          if (byte === QUOTE) {
            this.state = QUOTED;
            this.quoteLine = this.line;
            this.fieldStart = at + 1;
            this.fieldKind = QUOTED_PLAIN;
          } else if (byte === COMMA) {
            this.pushField(this.fieldStart, at, PLAIN);
            this.fieldStart = at + 1;
          } else {
            this.state = UNQUOTED;
          }
          break;
        case UNQUOTED:
          if (byte === COMMA) {
            this.pushField(this.fieldStart, at, PLAIN);
            this.fieldStart = at + 1;
            this.state = FIELD_START;
          } else if (byte === QUOTE) {
            this.problem = 'malformed';
          }
          break;
        case QUOTED:
          if (byte === QUOTE) this.state = QUOTE_SEEN;
          break;
        case QUOTE_SEEN:
          this.afterQuote(byte, at);
          break;
        default:
          this.afterClose(byte, at);
      }
    }
  }

  private afterQuote(byte: number, at: number): void {
    if (byte === QUOTE) {
      this.fieldKind = QUOTED_ESCAPES;
      this.state = QUOTED;
      return;
    }
    this.contentEnd = at - 1;
    this.state = AFTER_CLOSE;
    this.afterClose(byte, at);
  }

  private afterClose(byte: number, at: number): void {
    if (byte === SPACE || byte === TAB) return;
    if (byte === COMMA) {
      this.pushField(this.fieldStart, this.contentEnd, this.fieldKind);
      this.fieldStart = at + 1;
      this.state = FIELD_START;
      return;
    }
    // Text after the closing quote: the rest of the cell is junk up to the next delimiter.
    this.problem = 'malformed';
    this.state = UNQUOTED;
  }

  private lineBreak(data: Buffer, index: number, byte: number): void {
    const crlf = byte === LF && this.lastWasCr;
    this.lastWasCr = byte === CR;
    this.lastWasBreak = true;
    if (crlf) {
      // The CR already counted this break (and ended the record if it was outside quotes).
      if (this.state !== QUOTED && !this.hasContent) this.recordStart = index + 1;
      return;
    }
    if (this.state === QUOTED) {
      this.line += 1;
      return;
    }
    const lastLine = this.line;
    this.line += 1;
    if (!this.hasContent) {
      // A blank line (or one of spaces): no record.
      this.resetRecord(index + 1);
      return;
    }
    this.finishRecord(data, this.recordStart, index, lastLine);
    this.resetRecord(index + 1);
  }

  /** Ends the current record at `end` (exclusive): a record event, or a refused span. */
  private finishRecord(data: Buffer, start: number, end: number, lastLine: number): void {
    if (this.state === QUOTE_SEEN) {
      this.contentEnd = end - start - 1;
      this.state = AFTER_CLOSE;
    }
    if (this.state === AFTER_CLOSE) this.pushField(this.fieldStart, this.contentEnd, this.fieldKind);
    else this.pushField(this.fieldStart, end - start, PLAIN);
    if (!this.tooLong && this.discarded + (end - start) > this.maxRecordBytes) this.becomeTooLong();
    const problem = this.tooLong ? 'too_long' : this.problem;
    if (problem !== null) {
      this.events.push({ kind: 'broken', line: this.recordLine, lastLine, problem });
      return;
    }
    const fields: string[] = new Array<string>(this.starts.length);
    for (let cell = 0; cell < this.starts.length; cell += 1) {
      fields[cell] = decodeField(data, start + (this.starts[cell] as number), start + (this.ends[cell] as number), this.kinds[cell] as number);
    }
    this.events.push({ kind: 'record', fields, line: this.recordLine });
  }

  private resetRecord(nextStart: number): void {
    this.state = FIELD_START;
    this.recordStart = nextStart;
    this.recordLine = this.line;
    this.hasContent = false;
    this.problem = null;
    this.tooLong = false;
    this.discarded = 0;
    this.starts.length = 0;
    this.ends.length = 0;
    this.kinds.length = 0;
    this.fieldStart = 0;
    this.fieldKind = PLAIN;
  }
}

/** A cell's text: unquoted cells lose surrounding spaces and tabs, quoted ones their `""` escapes. */
function decodeField(data: Buffer, start: number, end: number, kind: number): string {
  if (kind !== PLAIN) {
    const text = data.toString('utf8', start, end);
    return kind === QUOTED_ESCAPES ? text.replaceAll('""', '"') : text;
  }
  let from = start;
  let to = end;
  while (from < to && (data[from] === SPACE || data[from] === TAB)) from += 1;
  while (to > from && (data[to - 1] === SPACE || data[to - 1] === TAB)) to -= 1;
  return from === to ? '' : data.toString('utf8', from, to);
}

/**
 * The reason a refused span gets in the batch's report. One line: "row …" as before; more than one:
 * "lines a–b: …", saying that none of them was read as a row.
 */
export function describeSpan(event: Extract<CsvEvent, { kind: 'broken' }>, maxRecordBytes: number): string {
  const lines = `lines ${event.line}–${event.lastLine}`;
  const multi = event.lastLine > event.line;
  switch (event.problem) {
    case 'unclosed':
      return multi
        ? `${lines}: a quote opened on line ${event.quoteLine ?? event.line} is never closed; every line from there to the end of the file is inside it, so none of them was read as a row`
        : 'row has a quote that is never closed (the file ends inside it)';
    case 'too_long':
      return multi
        ? `${lines}: row is longer than ${maxRecordBytes} bytes; a quoted cell runs over these lines, so none of them was read as a row`
        : `row is longer than ${maxRecordBytes} bytes`;
    default:
      return multi
        ? `${lines}: row has malformed quoting (text after a closing quote); a quoted cell runs over these lines, so none of them was read as a row`
        : 'row has malformed quoting (a quote inside an unquoted cell, or text after a closing quote)';
  }
}
