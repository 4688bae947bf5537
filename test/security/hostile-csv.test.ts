/**
 * Hostile CSV input (issue 7, "Bad input"): binary data, huge fields, a 10 MB line, wrong
 * encodings, formula-like serials, unbalanced quotes, odd line endings, a repeated header and
 * absurd headers. Each file is either refused as a whole with a clear message before anything is
 * produced, or its bad rows are rejected with their line numbers while the good rows go through.
 *
 * Most cases go through `readDeviceCsv` directly (fast); a few run the real CLI
 * (`revoker enqueue … --json`) as a process against the real Redis and check the exit code, the
 * one-line message, and the batch it created (or that it created none).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import { CsvInputError } from '../../src/producer/csv-input-error.js';
import { readDeviceCsv, type CsvSourceOptions } from '../../src/producer/csv-source.js';
import type { InputItem } from '../../src/producer/device-request.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { spawnTs } from '../helpers/processes.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-hostile01';
const CA = 'ca00000000hostile';
const DEFAULTS: CsvSourceOptions = { defaultInstanceId: INSTANCE, defaultCaSn: CA };
const MiB = 1024 * 1024;
const TOO_LONG = 'row is longer than 65536 bytes';
/** A quote that never closes: refused from its row to the end of the file. */
const unclosedSpan = (first: number, last: number) =>
  `lines ${first}–${last}: a quote opened on line ${first} is never closed; every line from there to the end of the file is inside it, so none of them was read as a row`;
/** A quoted cell spanning lines with text after its closing quote: refused whole. */
const malformedSpan = (first: number, last: number) =>
  `lines ${first}–${last}: row has malformed quoting (text after a closing quote); a quoted cell runs over these lines, so none of them was read as a row`;
/** A record over the 64 KiB limit spanning lines (a quoted cell): refused whole. */
const tooLongSpan = (first: number, last: number) =>
  `lines ${first}–${last}: row is longer than 65536 bytes; a quoted cell runs over these lines, so none of them was read as a row`;
const MALFORMED = 'row has malformed quoting (a quote inside an unquoted cell, or text after a closing quote)';
const HEADER_REPEAT = 'row repeats the header (were two files joined?); it names no device';

/** Deterministic bytes (xorshift32), so a failure can be replayed. */
function pseudoRandomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index += 1) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

/** Feeds bytes in file-stream-sized chunks (or smaller), each after an await. */
async function* chunked(data: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) {
    await Promise.resolve();
    yield data.subarray(offset, offset + size);
  }
}

async function collect(input: Buffer | AsyncIterable<Buffer>, options: CsvSourceOptions = DEFAULTS, chunkSize?: number): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for await (const item of readDeviceCsv(Buffer.isBuffer(input) ? chunked(input, chunkSize) : input, options)) items.push(item);
  return items;
}

/** Serials of the accepted devices and [line, reason] of the rejected rows. */
function summary(items: InputItem[]): { devices: [number, string][]; rejected: [number, string][] } {
  const devices: [number, string][] = [];
  const rejected: [number, string][] = [];
  for (const item of items) {
    if (item.kind === 'device') devices.push([item.request.line, item.request.deviceSn]);
    else rejected.push([item.row.line, item.row.reason]);
  }
  return { devices, rejected };
}

async function refusal(input: Buffer | AsyncIterable<Buffer>, options: CsvSourceOptions = DEFAULTS): Promise<CsvInputError> {
  const seen: InputItem[] = [];
  try {
    for await (const item of readDeviceCsv(Buffer.isBuffer(input) ? chunked(input) : input, options)) seen.push(item);
  } catch (error) {
    expect(seen).toEqual([]); // refused before anything was produced
    expect(error).toBeInstanceOf(CsvInputError);
    return error as CsvInputError;
  }
  throw new Error(`expected the file to be refused, got ${seen.length} items`);
}

/** `count` good serial lines `<label>000…`, each followed by a newline. */
function goodLines(label: string, count: number): string {
  return Array.from({ length: count }, (_, index) => `${label}${String(index).padStart(4, '0')}\n`).join('');
}

/** `count` good serials, for comparing with `summary(...).devices`. */
function goodSerials(label: string, count: number, firstLine: number): [number, string][] {
  return Array.from({ length: count }, (_, index): [number, string] => [firstLine + index, `${label}${String(index).padStart(4, '0')}`]);
}

describe('hostile CSV files through readDeviceCsv', () => {
  it('refuses random binary data (with NUL bytes) as a whole, naming it binary', async () => {
    const data = pseudoRandomBytes(256 * 1024, 0x5eed);
    expect(data.includes(0)).toBe(true);
    const error = await refusal(data);
    expect(error.code).toBe('NOT_CSV');
    expect(error.message).toMatch(/binary/);
  });

  it('refuses binary data even when it starts with a valid header', async () => {
    const data = Buffer.concat([Buffer.from('DeviceSn\nGOOD0001\n'), pseudoRandomBytes(64 * 1024, 7)]);
    const error = await refusal(data);
    expect(error.code).toBe('NOT_CSV');
  });

  it('refuses random bytes without any NUL (not UTF-8, no header) without producing a device', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const data = Buffer.from(pseudoRandomBytes(32 * 1024, seed).filter((byte) => byte !== 0));
      const error = await refusal(data);
      expect(['NOT_CSV', 'NO_DEVICE_SN_COLUMN', 'DUPLICATE_COLUMN']).toContain(error.code);
      // A refusal message is one short line, whatever garbage the header held.
      expect(error.message).not.toMatch(/\n/);
      expect(error.message.length).toBeLessThan(400);
    }
  });

  it('rejects a row holding a 1 MB cell with its line number and accepts every other row', async () => {
    const data = Buffer.from(`DeviceSn,Note\n${goodLines('A', 3)}A0099,${'x'.repeat(MiB)}\n${goodLines('B', 3)}`);
    const { devices, rejected } = summary(await collect(data));
    expect(devices).toEqual([...goodSerials('A', 3, 2), ...goodSerials('B', 3, 6)]);
    expect(rejected).toEqual([[5, TOO_LONG]]);
  });

  it('rejects a quoted 1 MB cell the same way, and a cell over the 4096-byte field limit by name', async () => {
    const data = Buffer.from(`DeviceSn,Note\nA0000\n"${'q'.repeat(MiB)}"\nA0001,"${'n'.repeat(10_000)}"\nA0002\n`);
    const { devices, rejected } = summary(await collect(data));
    expect(devices).toEqual([
      [2, 'A0000'],
      [5, 'A0002'],
    ]);
    expect(rejected).toEqual([
      [3, TOO_LONG],
      // The Note cell fits in a record but not in a field.
      [4, 'column Note is longer than 4096 bytes (10000)'],
    ]);
  });

  it('handles a single 10 MB line with no newline: rejected after a header, refused as a header; memory stays flat', async () => {
    const rssBefore = process.memoryUsage().rss;
    // Streamed in 64 KiB chunks, as a file would be, so the test itself does not hold 10 MB.
    async function* longLine(prefix: string, suffix = ''): AsyncGenerator<Buffer> {
      yield Buffer.from(prefix);
      const chunk = Buffer.alloc(64 * 1024, 'Y');
      for (let sent = 0; sent < 10 * MiB; sent += chunk.length) {
        await Promise.resolve();
        yield chunk;
      }
      if (suffix !== '') yield Buffer.from(suffix);
    }
    const afterHeader = summary(await collect(longLine(`DeviceSn\n${goodLines('G', 2)}`)));
    expect(afterHeader).toEqual({ devices: goodSerials('G', 2, 2), rejected: [[4, TOO_LONG]] });

    // With a separator every few bytes the line is 5 million tiny cells: still one rejected row.
    async function* manyCells(): AsyncGenerator<Buffer> {
      yield Buffer.from('DeviceSn\n');
      const chunk = Buffer.from('Y,'.repeat(32 * 1024));
      for (let sent = 0; sent < 10 * MiB; sent += chunk.length) {
        await Promise.resolve();
        yield chunk;
      }
      yield Buffer.from('\nAFTER0001\n');
    }
    expect(summary(await collect(manyCells()))).toEqual({ devices: [[3, 'AFTER0001']], rejected: [[2, TOO_LONG]] });

    const asHeader = await refusal(longLine(''));
    expect(asHeader.code).toBe('NOT_CSV');
    expect(asHeader.message).toBe(`the header row (line 1) cannot be read: ${TOO_LONG}`);

    // Loose on purpose (another job shares the machine): the point is "not ~10x the line".
    const grownBytes = process.memoryUsage().rss - rssBefore;
    expect(grownBytes).toBeLessThan(300 * MiB);
  });

  it('refuses UTF-16 (with either BOM) naming the encoding, and UTF-16 without a BOM as binary', async () => {
    const text = 'DeviceSn\nA0001\nA0002\n';
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);
    for (const data of [le, be]) {
      const error = await refusal(data);
      expect(error.code).toBe('NOT_CSV');
      expect(error.message).toMatch(/UTF-16/);
      expect(error.message).toMatch(/UTF-8/); // says what to save it as
    }
    const bare = await refusal(Buffer.from(text, 'utf16le'));
    expect(bare.code).toBe('NOT_CSV');
  });

  it('rejects the one row with Latin-1 bytes (invalid UTF-8) and keeps the rest; refuses a Latin-1 header', async () => {
    const data = Buffer.concat([
      Buffer.from(`DeviceSn,Owner\nA0000,ok\nA0001,Caf`),
      Buffer.from([0xe9]), // 'é' in Latin-1: a lone continuation-less byte in UTF-8
      Buffer.from(`\nA0002,ok\nA00`),
      Buffer.from([0xe9]),
      Buffer.from(`3\nA0004,ok\n`),
    ]);
    // 1-byte chunks too: a bad byte alone in its chunk must change nothing.
    for (const chunkSize of [64 * 1024, 1]) {
      const { devices, rejected } = summary(await collect(data, DEFAULTS, chunkSize));
      expect(devices).toEqual([
        [2, 'A0000'],
        [4, 'A0002'],
        [6, 'A0004'],
      ]);
      expect(rejected).toEqual([
        [3, 'row is not valid UTF-8 (column Owner)'],
        [5, 'row is not valid UTF-8 (column DeviceSn)'],
      ]);
    }
    const badHeader = await refusal(Buffer.concat([Buffer.from('DeviceSn,Propri'), Buffer.from([0xe9]), Buffer.from('taire\nA0001,x\n')]));
    expect(badHeader.code).toBe('NOT_CSV');
    expect(badHeader.message).toMatch(/UTF-8/);
  });

  it('accepts formula-like serials as devices, unchanged (escaping them is the report\'s job)', async () => {
    const data = Buffer.from(
      [
        'DeviceSn',
        '"=HYPERLINK(""http://evil.example/x"",""click"")"',
        '+1',
        '-2',
        '@SUM(A1:A2)',
        '=1+2',
        "'=quoted",
        '"=cmd|\'/C calc\'!A0"', // contains a space: rejected as whitespace, like any serial with one
        '',
      ].join('\n'),
    );
    const { devices, rejected } = summary(await collect(data));
    expect(devices).toEqual([
      [2, '=HYPERLINK("http://evil.example/x","click")'],
      [3, '+1'],
      [4, '-2'],
      [5, '@SUM(A1:A2)'],
      [6, '=1+2'],
      [7, "'=quoted"],
    ]);
    expect(rejected).toEqual([[8, 'DeviceSn contains whitespace (U+0020) at position 9']]);
  });

  it('rejects a formula with bare quotes in an unquoted cell as malformed CSV, not as a device', async () => {
    // Unquoted, the comma inside would split the formula anyway: no spreadsheet writes it so.
    const data = Buffer.from(`DeviceSn\nA0000\n=HYPERLINK("http://evil.example/x","click")\nA0001\n`);
    expect(summary(await collect(data))).toEqual({ devices: [[2, 'A0000'], [4, 'A0001']], rejected: [[3, MALFORMED]] });
  });

  it('refuses an unbalanced quote with every line it swallows, never reading them as rows (exact counts)', async () => {
    // 50 good rows, a quote that never closes, 50 lines that are inside it: one span to the end.
    const unclosed = Buffer.from(`DeviceSn,Note\n${goodLines('P', 50)}P9999,"never closed\n${goodLines('Q', 50)}`);
    const first = summary(await collect(unclosed));
    expect(first.devices).toEqual(goodSerials('P', 50, 2));
    expect(first.rejected).toEqual([[52, unclosedSpan(52, 102)]]);

    // A stray opening quote "closed" by a quote on a later line: the lines in between are the cell.
    const stray = Buffer.from(`DeviceSn,Note\n${goodLines('R', 3)}R9999,"oops\nS0000,fine\nS0001,"quoted"x\n${goodLines('T', 3)}`);
    const second = summary(await collect(stray));
    expect(second.devices).toEqual([...goodSerials('R', 3, 2), ...goodSerials('T', 3, 8)]);
    expect(second.rejected).toEqual([[5, malformedSpan(5, 7)]]);

    // A quote in the middle of an unquoted serial opens nothing: only its own line is refused.
    const inner = Buffer.from(`DeviceSn\nU0000\nU00"01\nU0002\n`);
    expect(summary(await collect(inner))).toEqual({ devices: [[2, 'U0000'], [4, 'U0002']], rejected: [[3, MALFORMED]] });
  });

  it('never accepts the serial-looking lines of a quoted cell over 64 KiB, whatever the chunking; the rows after it keep their lines', async () => {
    // Line 5 opens a Note cell of 8,000 lines (88 KB) that each look like a device row; it closes on 8,005.
    const data = Buffer.from(`DeviceSn,Note\n${goodLines('A', 3)}A0999,"${goodLines('EVIL', 8_000).replace(/\n/g, ',x\n')}"\n${goodLines('B', 20)}`);
    const expected = { devices: [...goodSerials('A', 3, 2), ...goodSerials('B', 20, 8_006)], rejected: [[5, tooLongSpan(5, 8_005)]] };
    for (const chunkSize of [64 * 1024, 4096, 1]) {
      expect(summary(await collect(data, DEFAULTS, chunkSize)), `chunks of ${chunkSize}`).toEqual(expected);
    }
    let state = 0x9e3779b9;
    async function* random(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < data.length; ) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const size = 1 + (state % 5000);
        await Promise.resolve();
        yield data.subarray(offset, offset + size);
        offset += size;
      }
    }
    expect(summary(await collect(random()))).toEqual(expected);
  });

  it('splits CR-only line endings (old Mac exports), whatever the chunking, with or without a final CR', async () => {
    const data = Buffer.from('DeviceSn,Note\rV0000,a\rV0001,"b\rc"\r\rV0002,x\r');
    for (const chunkSize of [64 * 1024, 1, 3]) {
      expect(summary(await collect(data, DEFAULTS, chunkSize))).toEqual({
        devices: [
          [2, 'V0000'],
          [3, 'V0001'],
          [6, 'V0002'],
        ],
        rejected: [],
      });
      expect(summary(await collect(data.subarray(0, data.length - 1), DEFAULTS, chunkSize)).devices).toHaveLength(3);
    }
  });

  it('rejects a header repeated mid-file (two files joined) instead of revoking a device named "DeviceSn"', async () => {
    const data = Buffer.from(`DeviceSn,CaSn\nW0000,${CA}\nDeviceSn,CaSn\nW0001,${CA}\n device_sn , ca-sn \nW0002,${CA}\n`);
    expect(summary(await collect(data))).toEqual({
      devices: [
        [2, 'W0000'],
        [4, 'W0001'],
        [6, 'W0002'],
      ],
      rejected: [
        [3, HEADER_REPEAT],
        [5, HEADER_REPEAT],
      ],
    });
    // A row that names the column in one cell only is data like any other.
    const partial = Buffer.from(`DeviceSn,CaSn\nDeviceSn,${CA}\n`);
    expect(summary(await collect(partial)).devices).toEqual([[2, 'DeviceSn']]);
  });

  it('refuses a header of 100,000 columns past the record limit, and reads it quickly when the limit allows', async () => {
    const columns = Array.from({ length: 100_000 }, (_, index) => `c${index}`);
    const data = Buffer.from(`DeviceSn,${columns.join(',')}\n${goodLines('X', 5)}`);
    const error = await refusal(data);
    expect(error.code).toBe('NOT_CSV');
    expect(error.message).toBe(`the header row (line 1) cannot be read: ${TOO_LONG}`);

    // Raised limit: the header is read, and rows as wide as the header are read quickly too.
    const wide = Buffer.from(`${columns.join(',')},DeviceSn\n${','.repeat(100_000)}WIDE0001\n${goodLines('X', 2)}`);
    const startedAt = Date.now();
    const { devices, rejected } = summary(await collect(wide, { ...DEFAULTS, maxRecordBytes: 4 * MiB }));
    expect(devices).toEqual([[2, 'WIDE0001']]);
    // Short rows have nothing in the last column.
    expect(rejected).toEqual([
      [3, 'DeviceSn is empty'],
      [4, 'DeviceSn is empty'],
    ]);
    // Generous (a noisy machine): a quadratic pass over 100,000 columns would take minutes.
    expect(Date.now() - startedAt).toBeLessThan(20_000);

    const first = summary(await collect(Buffer.from(`DeviceSn,${columns.join(',')}\n${goodLines('X', 5)}`), { ...DEFAULTS, maxRecordBytes: 4 * MiB }));
    expect(first).toEqual({ devices: goodSerials('X', 5, 2), rejected: [] });
  });

  it('copes with a very long header name: ignored as an extra column, cut short in every message', async () => {
    const longName = 'H'.repeat(60_000);
    const data = Buffer.from(`DeviceSn,${longName}\nY0000,a\nY0001,${'z'.repeat(5_000)}\nY0002,b\n`);
    const { devices, rejected } = summary(await collect(data));
    expect(devices).toEqual([
      [2, 'Y0000'],
      [4, 'Y0002'],
    ]);
    expect(rejected).toHaveLength(1);
    const [line, reason] = rejected[0] ?? [0, ''];
    expect(line).toBe(3);
    expect(reason).toMatch(/^column H+… is longer than 4096 bytes \(5000\)$/);
    expect(reason.length).toBeLessThan(200);

    // No DeviceSn column: the refusal quotes the header, cut short.
    const refused = await refusal(Buffer.from(`${longName},Other\nY0000,a\n`));
    expect(refused.code).toBe('NO_DEVICE_SN_COLUMN');
    expect(refused.message.length).toBeLessThan(400);

    // Longer than a record may be: refused as an unreadable header.
    const tooLong = await refusal(Buffer.from(`${'H'.repeat(200_000)},DeviceSn\nY0000\n`));
    expect(tooLong.message).toBe(`the header row (line 1) cannot be read: ${TOO_LONG}`);
  });
});

describe('hostile CSV files through `revoker enqueue`', () => {
  const prefix = uniquePrefix('hostile-csv');
  let dir: string;
  let context: Context;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revoker-hostile-csv-'));
    context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix }), 'test-hostile-csv');
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function enqueue(name: string, data: Buffer): Promise<{ code: number | string; out: string }> {
    const file = join(dir, name);
    await writeFile(file, data);
    // --yes: no terminal here to confirm on (enqueue asks before revoking when it has one).
    const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--json', '--yes'], {
      REDIS_URL: TEST_REDIS_URL,
      REVOKER_PREFIX: prefix,
      LOG_LEVEL: 'warn',
    });
    const code = await child.exited;
    await rm(file, { force: true });
    return { code, out: child.output() };
  }

  /** A refused file: exit 2, one line naming the file, no stack trace, no batch, no job. */
  async function expectRefused(name: string, data: Buffer, message: RegExp): Promise<void> {
    const batchesBefore = (await context.batches.list(1_000)).length;
    const waitingBefore = await context.queue.getJobCountByTypes('wait', 'prioritized');
    const { code, out } = await enqueue(name, data);
    expect(code, out).toBe(2);
    const lines = out.trimEnd().split('\n');
    expect(lines, out).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^revoker: .*${name}: `));
    expect(lines[0]).toMatch(message);
    expect(out).not.toMatch(/^\s+at /m);
    expect((await context.batches.list(1_000)).length).toBe(batchesBefore);
    expect(await context.queue.getJobCountByTypes('wait', 'prioritized')).toBe(waitingBefore);
  }

  async function rejectedLines(batchId: string): Promise<[number, string][]> {
    const rows: [number, string][] = [];
    for await (const row of context.batches.rejectedRows(batchId)) rows.push([row.line, row.reason]);
    return rows.sort((a, b) => a[0] - b[0]);
  }

  it('refuses a binary file before creating anything', async () => {
    await expectRefused(`binary-${randomBytes(3).toString('hex')}.csv`, pseudoRandomBytes(200 * 1024, 42), /binary/);
  });

  it('refuses a UTF-16 file with a message naming the encoding', async () => {
    const data = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('DeviceSn\nA0001\n', 'utf16le')]);
    await expectRefused('utf16.csv', data, /UTF-16/);
  });

  it('refuses a header of 100,000 columns', async () => {
    const columns = Array.from({ length: 100_000 }, (_, index) => `c${index}`).join(',');
    await expectRefused('wide-header.csv', Buffer.from(`DeviceSn,${columns}\nA0001\n`), /header row \(line 1\) cannot be read/);
  });

  it('enqueues the good rows of a partly hostile file and records every bad one with its line', async () => {
    const data = Buffer.concat([
      Buffer.from(`DeviceSn,Note\n${goodLines('CLI', 3)}`), // lines 2-4
      Buffer.from(`CLI0100,${'x'.repeat(MiB)}\n`), // 5: 1 MB cell
      Buffer.from('CLI0101,caf'),
      Buffer.from([0xe9]), // 6: Latin-1
      Buffer.from('\nCLI0102,"never closed\n'), // 7: unbalanced quote, closed on line 9
      Buffer.from('DeviceSn,Note\n'), // 8: inside the cell
      Buffer.from('"=HYPERLINK(""http://evil.example"",""x"")",formula\n+1\n@SUM(A1)\n'), // 9: ends the cell; 10-11: valid
      Buffer.from('CLI0003\rCLI0004\r'), // 12-13: CR endings
      Buffer.from(goodLines('END', 2)), // 14-15
    ]);
    const { code, out } = await enqueue('partly-bad.csv', data);
    expect(code, out).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { batchId: string; accepted: number; rejected: number; duplicates: number };
    expect(result).toEqual({ batchId: expect.any(String) as unknown, accepted: 9, rejected: 3, duplicates: 0 });

    const batch = await context.batches.get(result.batchId);
    expect(batch).toMatchObject({ source: 'csv', accepted: 9, rejected: 3, duplicates: 0, enqueued: true });
    expect(await rejectedLines(result.batchId)).toEqual([
      [5, TOO_LONG],
      [6, 'row is not valid UTF-8 (column Note)'],
      // The quote opened on line 7 is closed by the first quote of line 9, followed by text: the
      // cell spans lines 7-9, none of which is a row (line 8 is not even seen as a header repeat).
      [7, malformedSpan(7, 9)],
    ]);
    const serials: string[] = [];
    for await (const record of context.results.scan(result.batchId)) serials.push(record.deviceSn);
    expect(serials.sort()).toEqual(['CLI0000', 'CLI0001', 'CLI0002', 'CLI0003', 'CLI0004', 'END0000', 'END0001', '+1', '@SUM(A1)'].sort());
  });

  it('enqueues none of the serial-looking lines of a quoted cell over 64 KiB, and every good row after it', async () => {
    // Line 4 opens a cell of 8,000 serial-looking lines (72 KB); it closes on line 8,004.
    const data = Buffer.from(`DeviceSn,Note\n${goodLines('CELLA', 2)}CELLA0999,"${goodLines('EVIL', 8_000)}"\n${goodLines('CELLB', 3)}`);
    const { code, out } = await enqueue('long-cell.csv', data);
    expect(code, out).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { batchId: string; accepted: number; rejected: number };
    expect(result).toMatchObject({ accepted: 5, rejected: 1 });
    expect(await rejectedLines(result.batchId)).toEqual([[4, tooLongSpan(4, 8_004)]]);
    const serials: string[] = [];
    for await (const record of context.results.scan(result.batchId)) serials.push(record.deviceSn);
    expect(serials.sort()).toEqual(['CELLA0000', 'CELLA0001', 'CELLB0000', 'CELLB0001', 'CELLB0002']);
    expect(await context.queue.getJobCountByTypes('wait', 'prioritized')).toBeGreaterThanOrEqual(5);
  });

  it('rejects a single 10 MB line cleanly and exits normally', async () => {
    const data = Buffer.concat([Buffer.from(`DeviceSn\n${goodLines('TEN', 2)}`), Buffer.alloc(10 * MiB, 'Y')]);
    const { code, out } = await enqueue('ten-mb-line.csv', data);
    expect(code, out).toBe(0);
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { batchId: string; accepted: number; rejected: number };
    expect(result).toMatchObject({ accepted: 2, rejected: 1 });
    expect(await rejectedLines(result.batchId)).toEqual([[4, TOO_LONG]]);
  });
});
