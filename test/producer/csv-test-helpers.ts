/** Shared helpers of the CSV source suites (csv-source.test.ts, csv-spans.test.ts). */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { CsvInputError } from '../../src/producer/csv-input-error.js';
import { readDeviceCsv, type CsvSourceOptions } from '../../src/producer/csv-source.js';
import type { InputItem } from '../../src/producer/device-request.js';

/** The instance of the fixtures' rows. */
export const I = 'mqtt-cn-0pp1ldu0a01';
export const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
export const MALFORMED = 'row has malformed quoting (a quote inside an unquoted cell, or text after a closing quote)';

/** The reason of a quote that never closes, refused from its row to the end of the file. */
export function unclosedSpan(first: number, last: number, quoteLine = first): string {
  return `lines ${first}–${last}: a quote opened on line ${quoteLine} is never closed; every line from there to the end of the file is inside it, so none of them was read as a row`;
}

/** The reason of a malformed quoted cell that spans lines. */
export function malformedSpan(first: number, last: number): string {
  return `lines ${first}–${last}: row has malformed quoting (text after a closing quote); a quoted cell runs over these lines, so none of them was read as a row`;
}

/** The reason of a record over the limit that spans lines. */
export function tooLongSpan(first: number, last: number, limit = 65_536): string {
  return `lines ${first}–${last}: row is longer than ${limit} bytes; a quoted cell runs over these lines, so none of them was read as a row`;
}

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../fixtures/csv/${name}`, import.meta.url));
}

/** An async source, as a file or socket would be: each chunk arrives after an await. */
export async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) {
    await Promise.resolve();
    yield data.subarray(offset, offset + size);
  }
}

export async function collect(
  input: NodeJS.ReadableStream | AsyncIterable<Buffer | string>,
  options: CsvSourceOptions = {},
): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for await (const item of readDeviceCsv(input, options)) items.push(item);
  return items;
}

export type Row = [string, number, string, string?, string?];

/** A compact, assertion-friendly view: devices as [device, line, sn, ca, instance], rejections as [rejected, line, reason, sn?]. */
export function rows(items: InputItem[]): Row[] {
  return items.map((item): Row => {
    if (item.kind === 'device') {
      const { line, deviceSn, caSn, mqttInstanceId } = item.request;
      return ['device', line, deviceSn, caSn, mqttInstanceId];
    }
    const row: Row = ['rejected', item.row.line, item.row.reason];
    if (item.row.deviceSn !== undefined) row.push(item.row.deviceSn);
    return row;
  });
}

/**
 * Reads the same bytes whole, one byte at a time and in 7-byte chunks: chunk boundaries inside a
 * BOM, a CRLF or a multi-byte character must change nothing.
 */
export async function readEveryWay(data: Buffer, options: CsvSourceOptions = {}): Promise<Row[]> {
  const whole = rows(await collect(chunked(data, Math.max(data.length, 1)), options));
  expect(rows(await collect(chunked(data, 1), options))).toEqual(whole);
  expect(rows(await collect(chunked(data, 7), options))).toEqual(whole);
  return whole;
}

export async function refusal(input: AsyncIterable<Buffer | string>, options: CsvSourceOptions = {}): Promise<CsvInputError> {
  const seen: InputItem[] = [];
  try {
    for await (const item of readDeviceCsv(input, options)) seen.push(item);
  } catch (error) {
    expect(seen).toEqual([]); // refused before anything was produced
    expect(error).toBeInstanceOf(CsvInputError);
    return error as CsvInputError;
  }
  throw new Error(`expected a refusal, got ${seen.length} items`);
}

