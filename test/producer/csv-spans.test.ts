/**
 * Issue 11, part 9: intake never invents a device. After a malformed or over-long quoted cell, no
 * line inside it becomes a row: the whole span is refused with its first and last lines, and
 * reading goes on after it, whatever the line breaks and the chunking, with memory bounded.
 */
import { describe, expect, it } from 'vitest';
import { BOM, collect, I, MALFORMED, malformedSpan, readEveryWay, rows, tooLongSpan, unclosedSpan, type Row } from './csv-test-helpers.js';

/** Deterministic chunk sizes from 1 to `max` bytes (xorshift32), so a failure can be replayed. */
async function* randomlyChunked(data: Buffer, seed: number, max = 300): AsyncGenerator<Buffer> {
  let state = seed >>> 0 || 1;
  for (let offset = 0; offset < data.length; ) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    const size = 1 + (state % max);
    await Promise.resolve();
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

/** `count` valid rows `<label>NNNN,CA01,<instance>` with the given line break. */
function validRows(label: string, count: number, eol = '\n'): string {
  return Array.from({ length: count }, (_, index) => `${label}${String(index).padStart(4, '0')},CA01,${I}${eol}`).join('');
}

function expectedDevices(label: string, count: number, firstLine: number): Row[] {
  return Array.from({ length: count }, (_, index): Row => ['device', firstLine + index, `${label}${String(index).padStart(4, '0')}`, 'CA01', I]);
}

describe('readDeviceCsv: no line inside a quoted cell ever becomes a row (issue 11, part 9)', () => {
  // Line 1 header, 2-4 good, 5 opens a Note cell that holds 3,000 serial-looking lines (lines
  // 5-3005, over 64 KiB), closed on line 3005 after escaped quotes; then 50 good rows.
  function longCell(eol: string): Buffer {
    const inside = validRows('INSIDE', 3_000, eol).replace(/,CA01,/g, ',""CA01"",');
    const text = `DeviceSn,Note,CaSn,MqttInstanceId${eol}${validRows('BEFORE', 3, eol).replace(/,CA01,/g, ',,CA01,')}` +
      `CELL0005,"${inside}end of note ""quoted""",CA01,${I}${eol}${validRows('AFTER', 50, eol).replace(/,CA01,/g, ',,CA01,')}`;
    return Buffer.from(text);
  }
  const expected: Row[] = [...expectedDevices('BEFORE', 3, 2), ['rejected', 5, tooLongSpan(5, 3005)], ...expectedDevices('AFTER', 50, 3006)];

  it('refuses a quoted multi-line cell over 64 KiB as one span; none of the serial-looking lines inside is accepted; every row after it is, at its line', async () => {
    const data = longCell('\n');
    expect(data.length).toBeGreaterThan(65_536 + 20_000);
    expect(await readEveryWay(data)).toEqual(expected);
    for (const seed of [1, 7, 42, 1234, 99_999]) {
      expect(rows(await collect(randomlyChunked(data, seed))), `seed ${seed}`).toEqual(expected);
    }
  });

  it('does the same with CRLF, CR-only line breaks and a BOM, whatever the chunking', async () => {
    for (const eol of ['\r\n', '\r']) {
      const data = Buffer.concat([BOM, longCell(eol)]);
      expect(await readEveryWay(data), JSON.stringify(eol)).toEqual(expected);
      expect(rows(await collect(randomlyChunked(data, 5, 64))), JSON.stringify(eol)).toEqual(expected);
    }
  });

  it('reads a well-formed multi-line cell under the limit as one row at its first line, never its inner lines as rows', async () => {
    const data = Buffer.from(`DeviceSn,Note,CaSn,MqttInstanceId\nD2,"${validRows('X', 20)}",CA01,${I}\nD23,,CA01,${I}\n`);
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'D2', 'CA01', I],
      ['device', 23, 'D23', 'CA01', I],
    ]);
  });

  it('refuses a malformed cell that spans lines (text after its closing quote) from its first line to the end of its record', async () => {
    const data = Buffer.from(
      `DeviceSn,Note,CaSn,MqttInstanceId\nD2,,CA01,${I}\nD3,"note\n${validRows('IN', 3)}more" junk,CA01,${I}\n${validRows('OUT', 2).replace(/,CA01,/g, ',,CA01,')}`,
    );
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'D2', 'CA01', I],
      ['rejected', 3, malformedSpan(3, 7)],
      ...expectedDevices('OUT', 2, 8),
    ]);
  });

  it('takes a closing quote followed by spaces, then the delimiter, as well formed', async () => {
    const data = Buffer.from(`DeviceSn,Note,CaSn,MqttInstanceId\n  "D2"  ,"a\nb"  ,CA01,${I}\nD4,,CA01,${I}\n`);
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'D2', 'CA01', I],
      ['device', 4, 'D4', 'CA01', I],
    ]);
  });

  it('treats a quote inside an unquoted cell as that row\'s error only: it opens no quoted span', async () => {
    // RFC 4180 has no quotes in unquoted cells; as a cell that could hold line breaks it would
    // swallow good rows, so the row ends at its own line break and is refused alone.
    const data = Buffer.from(`DeviceSn,CaSn,MqttInstanceId\nD2,CA"01,${I}\nD3,CA01,${I}\nD"4,CA01,${I}\nD5,CA01,${I}"\n`);
    expect(await readEveryWay(data)).toEqual([
      ['rejected', 2, MALFORMED],
      ['device', 3, 'D3', 'CA01', I],
      ['rejected', 4, MALFORMED],
      ['rejected', 5, MALFORMED],
    ]);
  });

  it('names the line a never-closed quote opened on when its row began earlier', async () => {
    const data = Buffer.from(`DeviceSn,Note,Other,CaSn,MqttInstanceId\nD2,"a\nb","c\nD4,,,CA01,${I}\n`);
    expect(await readEveryWay(data)).toEqual([['rejected', 2, unclosedSpan(2, 4, 3)]]);
  });

  it('keeps memory flat for a quoted span of 48 MiB, and counts its lines exactly', async () => {
    const line = Buffer.from(`${'S'.repeat(60)},CA01,${I}\n`);
    const linesPerChunk = Math.floor((64 * 1024) / line.length);
    const chunk = Buffer.concat(Array.from({ length: linesPerChunk }, () => line));
    const chunks = Math.ceil((48 * 1024 * 1024) / chunk.length);
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`DeviceSn,Note,CaSn,MqttInstanceId\nD2,"`);
      for (let sent = 0; sent < chunks; sent += 1) {
        await Promise.resolve();
        yield chunk;
      }
      yield Buffer.from(`",CA01,${I}\nD${3 + chunks * linesPerChunk},,CA01,${I}\n`);
    }
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    const lastLine = 2 + chunks * linesPerChunk;
    expect(rows(await collect(source()))).toEqual([
      ['rejected', 2, tooLongSpan(2, lastLine)],
      ['device', lastLine + 1, `D${lastLine + 1}`, 'CA01', I],
    ]);
    // Loose on purpose (a shared machine): holding the span would cost more than 48 MiB.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(40 * 1024 * 1024);
  });
});
