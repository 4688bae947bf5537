// Reads device rows from a CSV file as a stream: header mapping, per-row validation, and recovery
// from malformed rows so that one bad line never costs the rest of a million-row file.
import { parse } from 'csv-parse';
import type { CsvError, InfoRecord, Parser } from 'csv-parse';
import { CsvInputError } from './csv-input-error.js';
import type { InputItem } from './device-request.js';
import {
  normaliseIdentifier,
  truncateForEcho,
  validateCaSn,
  validateDeviceSn,
  validateInstanceId,
} from './device-validation.js';

/** Options of {@link readDeviceCsv}. */
export interface CsvSourceOptions {
  /** MqttInstanceId for rows that have none: no such column, or an empty cell (`--instance`). */
  defaultInstanceId?: string;
  /** CaSn for rows that have none: no such column, or an empty cell (`--ca-sn`). */
  defaultCaSn?: string;
  /** A row with a cell longer than this many bytes of UTF-8 is rejected. Default 4096. */
  maxFieldBytes?: number;
  /**
   * A record longer than this (csv-parse's `max_record_size`, counted over its cells) is rejected
   * and reading goes on at the next line; it also bounds how far an unclosed quote can swallow
   * the lines after it. Default 65536.
   */
  maxRecordBytes?: number;
}

/** Defaults of {@link CsvSourceOptions}: far above any real row, small enough to bound memory. */
export const CSV_SOURCE_DEFAULTS = { maxFieldBytes: 4096, maxRecordBytes: 65_536 } as const;


type ColumnKey = 'deviceSn' | 'caSn' | 'mqttInstanceId';

const COLUMN_LABELS: Record<ColumnKey, string> = {
  deviceSn: 'DeviceSn',
  caSn: 'CaSn',
  mqttInstanceId: 'MqttInstanceId',
};

/**
 * Accepted header names, after {@link canonicalHeaderName}: so `DeviceSn`, `device_sn`,
 * `Device SN`, `deviceSN` and `device-sn` all name DeviceSn. `instance_id` is accepted for
 * MqttInstanceId because the console labels the column "Instance ID".
 */
const HEADER_ALIASES: ReadonlyMap<string, ColumnKey> = new Map([
  ['devicesn', 'deviceSn'],
  ['casn', 'caSn'],
  ['mqttinstanceid', 'mqttInstanceId'],
  ['instanceid', 'mqttInstanceId'],
]);

/** Folds a header cell to its comparable form: case, spaces, `_`, `-` and `.` do not matter. */
export function canonicalHeaderName(cell: string): string {
  return cell.trim().toLowerCase().replace(/[\s_.-]+/g, '');
}

// How much of the file is inspected for binary content before parsing begins.
const SNIFF_BYTES = 8192;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const REPLACEMENT_CHAR = '\uFFFD';
const MALFORMED_QUOTING = 'row has malformed quoting (a quote inside an unquoted cell, or text after a closing quote)';

type RawEvent =
  | { kind: 'record'; fields: string[]; line: number }
  | { kind: 'broken'; line: number; reason: string };

interface SkipState {
  error: CsvError;
  /** Physical line on which the broken record starts: the line being skipped. */
  line: number;
  /** Absolute offset from which to go on looking for the end of that line. */
  scanFrom: number;
  /** Quote bytes seen on that line so far: an odd count means a quote that never closed. */
  quotes: number;
}

/**
 * Turns bytes into records with physical line numbers, on top of csv-parse's streaming parser.
 *
 * Why not csv-parse's own error recovery: with `skip_records_with_error`, csv-parse 7 leaves
 * its buffers inconsistent after `CSV_MAX_RECORD_SIZE` (the rest of the file is lost or repeated),
 * keeps parsing in quoted mode after a bad quote, and its `lines` counts a CRLF inside a quoted
 * field as two lines. So each parser is used only until its first error: the failed record's
 * first physical line is dropped and a fresh parser starts on the next line, fed from a window of
 * the bytes received since the last good record (bounded by `max_record_size`, since a record
 * longer than that fails). Writes and flushes are synchronous, so `on_record`/`on_skip` see
 * records and errors in file order.
 */
class RecoveringCsvParser {
  private parser: Parser | undefined;
  private failure: CsvError | undefined;
  private events: RawEvent[] = [];
  /** Bytes received from absolute offset `windowStart` onwards that may still be re-parsed. */
  private window: Buffer = Buffer.alloc(0);
  private windowStart = 0;
  /** Where the current parser's input starts. */
  private base = { offset: 0, line: 1 };
  /** CRLF pairs inside fields parsed by the current parser: csv-parse counted each as 2 lines. */
  private crlfInFields = 0;
  /** Just after the last complete record (or restart point): the line the next record starts on at the earliest. */
  private lastGood = { offset: 0, line: 1 };
  private skip: SkipState | undefined;
  private ended = false;

  constructor(private readonly maxRecordBytes: number) {
    this.startParser(0, 1, true);
  }

  /** Physical line where reading would resume: used to say where an unreadable input stopped. */
  get nextLine(): number {
    return this.skip?.line ?? this.lastGood.line;
  }

  push(chunk: Buffer): RawEvent[] {
    this.window = this.window.length === 0 ? chunk : Buffer.concat([this.window, chunk]);
    if (this.skip === undefined && this.parser !== undefined) this.parser.write(chunk);
    this.recover();
    this.trimWindow();
    return this.takeEvents();
  }

  async end(): Promise<RawEvent[]> {
    this.ended = true;
    this.recover();
    while (this.parser !== undefined) {
      const parser = this.parser;
      await new Promise<void>((resolve) => parser.end(() => resolve()));
      if (this.failure === undefined) {
        this.parser = undefined;
        break;
      }
      this.recover();
    }
    this.window = Buffer.alloc(0);
    return this.takeEvents();
  }

  destroy(): void {
    this.parser?.destroy();
    this.parser = undefined;
  }

  private takeEvents(): RawEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  private startParser(offset: number, line: number, first: boolean): void {
    this.base = { offset, line };
    this.crlfInFields = 0;
    const parser: Parser = parse({
      bom: first,
      relax_column_count: true,
      skip_empty_lines: true,
      // Unquoted cells lose surrounding spaces, as a spreadsheet user expects; quoted cells keep
      // them (identifiers are trimmed again by the validators).
      trim: true,
      skip_records_with_error: true,
      // Explicit, so that a file mixing CRLF and LF lines is split on both: auto-discovery
      // would fix the delimiter from the first line.
      record_delimiter: ['\r\n', '\n', '\r'],
      max_record_size: this.maxRecordBytes,
      // `info: true` would give the same Info as this context, wrapped around the record.
      on_record: (fields: string[], context: InfoRecord) => {
        if (this.parser === parser && this.failure === undefined) this.onRecord(fields, context);
        return null; // nothing is buffered in the stream: records leave through `events`
      },
      on_skip: (error: CsvError | undefined) => {
        if (this.parser === parser && this.failure === undefined) {
          this.failure = error ?? unknownCsvError();
        }
        return undefined;
      },
    });
    parser.on('error', (error: unknown) => {
      if (this.parser === parser && this.failure === undefined) {
        this.failure = error instanceof Error ? (error as CsvError) : unknownCsvError();
      }
    });
    this.parser = parser;
  }

  private onRecord(fields: string[], context: InfoRecord): void {
    let breaks = 0;
    for (const field of fields) {
      if (!field.includes('\n') && !field.includes('\r')) continue;
      const crlf = field.split('\r\n').length - 1;
      this.crlfInFields += crlf;
      breaks += (field.match(/\r\n|\r|\n/g) ?? []).length;
    }
    // `lines` is 1-based within this parser's input and is still on the record's last line.
    const endLine = this.base.line + context.lines - 1 - this.crlfInFields;
    this.lastGood = { offset: this.base.offset + context.bytes, line: endLine + 1 };
    this.events.push({ kind: 'record', fields, line: endLine - breaks });
  }

  /** After a parse error: skip the failed record's first line and restart just after it. */
  private recover(): void {
    for (;;) {
      if (this.failure !== undefined) this.beginSkip(this.failure);
      const skip = this.skip;
      if (skip === undefined) return;
      const found = this.findLineEnd(skip);
      if (found === 'wait') return;
      this.events.push({ kind: 'broken', line: skip.line, reason: this.brokenReason(skip) });
      this.skip = undefined;
      if (found === 'eof') {
        this.lastGood = { offset: this.windowStart + this.window.length, line: skip.line + 1 };
        return;
      }
      this.lastGood = { offset: found, line: skip.line + 1 };
      this.startParser(found, skip.line + 1, false);
      const rest = this.window.subarray(found - this.windowStart);
      if (rest.length > 0) this.parser?.write(rest);
    }
  }

  private beginSkip(error: CsvError): void {
    this.failure = undefined;
    this.destroy();
    // The broken record starts at the first non-blank byte after the last good record.
    let index = this.lastGood.offset - this.windowStart;
    let line = this.lastGood.line;
    while (index < this.window.length) {
      const byte = this.window[index];
      if (byte === CR) {
        line += 1;
        if (this.window[index + 1] === LF) index += 1;
      } else if (byte === LF) {
        line += 1;
      } else if (byte !== 0x20 && byte !== 0x09) {
        break;
      }
      index += 1;
    }
    this.skip = { error, line, scanFrom: this.windowStart + index, quotes: 0 };
  }

  /** Offset just past the end of the skipped line, 'eof' when the file ends on it, 'wait' for more bytes. */
  private findLineEnd(skip: SkipState): number | 'eof' | 'wait' {
    for (let index = skip.scanFrom - this.windowStart; index < this.window.length; index += 1) {
      const byte = this.window[index];
      if (byte === LF) return this.windowStart + index + 1;
      if (byte === CR) {
        if (index + 1 < this.window.length) {
          return this.windowStart + index + (this.window[index + 1] === LF ? 2 : 1);
        }
        if (this.ended) return this.windowStart + index + 1;
        skip.scanFrom = this.windowStart + index; // decide CR vs CRLF when the next byte comes
        return 'wait';
      }
      if (byte === QUOTE) skip.quotes += 1;
    }
    if (this.ended) return 'eof';
    skip.scanFrom = this.windowStart + this.window.length;
    return 'wait';
  }

  private brokenReason(skip: SkipState): string {
    const unclosedQuote = skip.quotes % 2 === 1;
    switch (skip.error.code) {
      case 'CSV_QUOTE_NOT_CLOSED':
        return 'row has a quote that is never closed; this line was skipped and reading went on at the next line';
      case 'CSV_MAX_RECORD_SIZE':
        return unclosedQuote
          ? `row has a quote that is not closed within ${this.maxRecordBytes} bytes; this line was skipped and reading went on at the next line`
          : `row is longer than ${this.maxRecordBytes} bytes`;
      case 'CSV_INVALID_CLOSING_QUOTE':
      case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
        // An odd quote count means the cell ran into the next line, whose own quote "closed" it.
        if (unclosedQuote) return 'row has an unmatched quote; this line was skipped and reading went on at the next line';
        return MALFORMED_QUOTING;
      case 'INVALID_OPENING_QUOTE':
        return MALFORMED_QUOTING;
      default:
        return `row could not be parsed (${String(skip.error.code)})`;
    }
  }

  /** Drops the bytes no restart can need any more. */
  private trimWindow(): void {
    const keepFrom = this.skip?.scanFrom ?? this.lastGood.offset;
    if (keepFrom <= this.windowStart) return;
    this.window = this.window.subarray(Math.min(keepFrom - this.windowStart, this.window.length));
    this.windowStart = keepFrom;
  }
}

function unknownCsvError(): CsvError {
  return Object.assign(new Error('unknown CSV error'), { code: 'CSV_UNKNOWN_ERROR' }) as CsvError;
}

interface ColumnMap {
  /** Index of each known column in the records, when present. */
  index: Partial<Record<ColumnKey, number>>;
  /** Header cell text per index, for naming other columns in reasons. */
  names: string[];
}

interface ResolvedCsvSourceOptions {
  defaultInstanceId: string | undefined;
  defaultCaSn: string | undefined;
  maxFieldBytes: number;
  maxRecordBytes: number;
}

function resolveOptions(options: CsvSourceOptions): ResolvedCsvSourceOptions {
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 1) {
      throw new CsvInputError('INVALID_OPTION', `${name} must be a positive integer, got ${String(value)}`);
    }
    return value;
  };
  const identifier = (value: string | undefined, validate: (raw: string) => string | null, flag: string) => {
    if (value === undefined || normaliseIdentifier(value) === '') return undefined;
    const problem = validate(value);
    if (problem !== null) throw new CsvInputError('INVALID_OPTION', `the default given with ${flag} is invalid: ${problem}`);
    return normaliseIdentifier(value);
  };
  return {
    defaultInstanceId: identifier(options.defaultInstanceId, validateInstanceId, '--instance'),
    defaultCaSn: identifier(options.defaultCaSn, validateCaSn, '--ca-sn'),
    maxFieldBytes: positive('maxFieldBytes', options.maxFieldBytes, CSV_SOURCE_DEFAULTS.maxFieldBytes),
    maxRecordBytes: positive('maxRecordBytes', options.maxRecordBytes, CSV_SOURCE_DEFAULTS.maxRecordBytes),
  };
}

function sniff(head: Buffer): void {
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new CsvInputError('NOT_CSV', 'the file is UTF-16 text: save it as "CSV UTF-8" and try again');
  }
  if (head.includes(0)) {
    throw new CsvInputError('NOT_CSV', 'the file contains NUL bytes: it is a binary file, not CSV text');
  }
}

function readHeader(fields: string[], line: number, options: ResolvedCsvSourceOptions): ColumnMap {
  if (fields.some((field) => field.includes(REPLACEMENT_CHAR))) {
    throw new CsvInputError('NOT_CSV', `the header row (line ${line}) is not valid UTF-8: save the file as "CSV UTF-8"`);
  }
  const index: Partial<Record<ColumnKey, number>> = {};
  const names = fields.map((field) => field.trim());
  names.forEach((name, position) => {
    const key = HEADER_ALIASES.get(canonicalHeaderName(name));
    if (key === undefined) return;
    const previous = index[key];
    if (previous !== undefined) {
      throw new CsvInputError(
        'DUPLICATE_COLUMN',
        `the header names ${COLUMN_LABELS[key]} twice (${JSON.stringify(truncateForEcho(names[previous] ?? ''))} and ${JSON.stringify(truncateForEcho(name))})`,
      );
    }
    index[key] = position;
  });
  if (index.deviceSn === undefined) {
    throw new CsvInputError(
      'NO_DEVICE_SN_COLUMN',
      `the header row (line ${line}) has no DeviceSn column (accepted names: DeviceSn, device_sn, "Device SN"); found ${JSON.stringify(truncateForEcho(names.join(',')))}`,
    );
  }
  if (index.caSn === undefined && options.defaultCaSn === undefined) {
    throw new CsvInputError('MISSING_COLUMN', 'the file has no CaSn column and no default CaSn was given (--ca-sn)');
  }
  if (index.mqttInstanceId === undefined && options.defaultInstanceId === undefined) {
    throw new CsvInputError(
      'MISSING_COLUMN',
      'the file has no MqttInstanceId column and no default instance was given (--instance)',
    );
  }
  return { index, names };
}

/**
 * True when every known column of the row holds a header name for that same column, as when
 * two exports are concatenated (`cat a.csv b.csv`): without this, `DeviceSn` itself would be sent
 * as a serial number. Aliases count (`device_sn` under a `DeviceSn` header).
 */
function repeatsHeader(fields: string[], columns: ColumnMap): boolean {
  const known = Object.entries(columns.index) as [ColumnKey, number][];
  return known.every(([key, position]) => {
    const cell = fields[position];
    // Cheap guard: no header name is long, and this runs on every row.
    return cell !== undefined && cell.length <= 64 && HEADER_ALIASES.get(canonicalHeaderName(cell)) === key;
  });
}

function toItem(
  fields: string[],
  line: number,
  columns: ColumnMap,
  options: ResolvedCsvSourceOptions,
): InputItem | undefined {
  if (fields.every((field) => field.trim() === '')) return undefined; // a blank spreadsheet row
  // Header text when the column has one, else its 1-based position.
  const columnLabel = (position: number) => truncateForEcho(columns.names[position] || `${position + 1}`);
  const cell = (key: ColumnKey) => {
    const position = columns.index[key];
    return position === undefined ? '' : normaliseIdentifier(fields[position] ?? '');
  };
  const deviceSn = cell('deviceSn');
  const reject = (reason: string): InputItem => ({
    kind: 'rejected',
    row: deviceSn === '' || deviceSn.includes(REPLACEMENT_CHAR) ? { line, reason } : { line, reason, deviceSn: truncateForEcho(deviceSn) },
  });
  if (repeatsHeader(fields, columns)) {
    return reject('row repeats the header (were two files joined?); it names no device');
  }

  for (let position = 0; position < fields.length; position += 1) {
    const field = fields[position] ?? '';
    if (field.includes(REPLACEMENT_CHAR)) {
      return reject(`row is not valid UTF-8 (column ${columnLabel(position)})`);
    }
    // 3 bytes per UTF-16 unit at most: only long cells need counting.
    if (field.length * 3 > options.maxFieldBytes) {
      const bytes = Buffer.byteLength(field, 'utf8');
      if (bytes > options.maxFieldBytes) {
        return reject(`column ${columnLabel(position)} is longer than ${options.maxFieldBytes} bytes (${bytes})`);
      }
    }
  }

  const problems: string[] = [];
  const deviceProblem = validateDeviceSn(deviceSn);
  if (deviceProblem !== null) problems.push(deviceProblem);
  const caSn = cell('caSn') || options.defaultCaSn || '';
  const caProblem = caSn === '' ? 'CaSn is empty and no default CaSn was given' : validateCaSn(caSn);
  if (caProblem !== null) problems.push(caProblem);
  const mqttInstanceId = cell('mqttInstanceId') || options.defaultInstanceId || '';
  const instanceProblem =
    mqttInstanceId === '' ? 'MqttInstanceId is empty and no default instance was given' : validateInstanceId(mqttInstanceId);
  if (instanceProblem !== null) problems.push(instanceProblem);
  if (problems.length > 0) return reject(problems.join('; '));
  return { kind: 'device', request: { mqttInstanceId, caSn, deviceSn, line } };
}

async function* chunksOf(input: NodeJS.ReadableStream | AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  for await (const chunk of input as AsyncIterable<unknown>) {
    if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else if (Buffer.isBuffer(chunk)) yield chunk;
    else if (chunk instanceof Uint8Array) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else throw new TypeError(`CSV input chunks must be strings or Buffers, got ${typeof chunk}`);
  }
}

/**
 * Reads device rows from CSV text, streaming: memory stays flat whatever the size of the file.
 *
 * The first non-blank row is the header (see {@link canonicalHeaderName} for the names accepted;
 * extra columns are ignored, any order). Yields, in file order, one `device` item per valid row and
 * one `rejected` item per bad row (with its 1-based physical line and a reason); blank rows are
 * skipped. Throws {@link CsvInputError} — only before yielding anything — when the file as a whole
 * cannot be used: empty, binary, UTF-16, a header without DeviceSn, or a needed column missing with
 * no default. After the first item it never throws: a malformed row is reported and reading goes
 * on at the next line, and an input that fails mid-way ends with a rejected row saying where.
 * Duplicates are not removed here.
 */
export async function* readDeviceCsv(
  input: NodeJS.ReadableStream | AsyncIterable<Buffer | string>,
  options: CsvSourceOptions = {},
): AsyncGenerator<InputItem> {
  const resolved = resolveOptions(options);
  const parser = new RecoveringCsvParser(resolved.maxRecordBytes);
  const source = chunksOf(input);
  let columns: ColumnMap | undefined;
  let yielded = false;

  function* items(events: RawEvent[]): Generator<InputItem> {
    for (const event of events) {
      if (columns === undefined) {
        if (event.kind === 'broken') {
          throw new CsvInputError('NOT_CSV', `the header row (line ${event.line}) cannot be read: ${event.reason}`);
        }
        columns = readHeader(event.fields, event.line, resolved);
        continue;
      }
      const item = event.kind === 'broken' ? { kind: 'rejected' as const, row: { line: event.line, reason: event.reason } } : toItem(event.fields, event.line, columns, resolved);
      if (item !== undefined) yield item;
    }
  }

  try {
    let head: Buffer[] | undefined = [];
    let headBytes = 0;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await source.next();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (!yielded) {
          throw new CsvInputError('READ_FAILED', `the CSV input could not be read: ${message}`, { cause: error });
        }
        yield {
          kind: 'rejected',
          row: { line: parser.nextLine, reason: `reading stopped at this line: the input failed (${truncateForEcho(message)})` },
        };
        return;
      }
      let chunk: Buffer | undefined = next.done ? undefined : next.value;
      if (head !== undefined) {
        // Gather the first bytes to look for binary content before any of it is parsed.
        if (chunk !== undefined) {
          head.push(chunk);
          headBytes += chunk.length;
          if (headBytes < SNIFF_BYTES) continue;
        }
        chunk = Buffer.concat(head);
        head = undefined;
        sniff(chunk);
      }
      if (chunk !== undefined && chunk.length > 0) {
        for (const item of items(parser.push(chunk))) {
          yielded = true;
          yield item;
        }
      }
      if (next.done) break;
    }
    for (const item of items(await parser.end())) {
      yielded = true;
      yield item;
    }
    if (columns === undefined) {
      throw new CsvInputError('EMPTY_FILE', 'the file is empty: there is no header row');
    }
  } finally {
    parser.destroy();
    // Closes the input when the consumer stopped early (a no-op once it is exhausted).
    await source.return(undefined);
  }
}
