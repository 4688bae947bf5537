// Reads device rows from a CSV file as a stream: header mapping, per-row validation, and recovery
// from malformed rows, so that one bad row never costs the rest of a million-row file and no line
// inside a quoted cell ever becomes a row (csv-tokenizer.ts).
import { CsvInputError } from './csv-input-error.js';
import { CsvTokenizer, describeSpan, type CsvEvent } from './csv-tokenizer.js';
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
   * A record longer than this many bytes is rejected whole, with every line it spans (a quoted
   * cell can span many), and reading goes on after it; only this much of a record is ever held
   * in memory. Default 65536.
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
const REPLACEMENT_CHAR = '\uFFFD';

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
 * on after it (a malformed quoted cell is refused with every line it spans, see `CsvTokenizer`:
 * no line inside a cell ever becomes a row), and an input that fails mid-way ends with a rejected
 * row saying where.
 * Duplicates are not removed here.
 */
export async function* readDeviceCsv(
  input: NodeJS.ReadableStream | AsyncIterable<Buffer | string>,
  options: CsvSourceOptions = {},
): AsyncGenerator<InputItem> {
  const resolved = resolveOptions(options);
  const parser = new CsvTokenizer(resolved.maxRecordBytes);
  const source = chunksOf(input);
  let columns: ColumnMap | undefined;
  let yielded = false;

  function* items(events: CsvEvent[]): Generator<InputItem> {
    for (const event of events) {
      if (columns === undefined) {
        if (event.kind === 'broken') {
          throw new CsvInputError('NOT_CSV', `the header row (line ${event.line}) cannot be read: ${describeSpan(event, resolved.maxRecordBytes)}`);
        }
        columns = readHeader(event.fields, event.line, resolved);
        continue;
      }
      const item =
        event.kind === 'broken'
          ? { kind: 'rejected' as const, row: { line: event.line, reason: describeSpan(event, resolved.maxRecordBytes) } }
          : toItem(event.fields, event.line, columns, resolved);
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
    for (const item of items(parser.end())) {
      yielded = true;
      yield item;
    }
    if (columns === undefined) {
      throw new CsvInputError('EMPTY_FILE', 'the file is empty: there is no header row');
    }
  } finally {
    // Closes the input when the consumer stopped early (a no-op once it is exhausted).
    await source.return(undefined);
  }
}
