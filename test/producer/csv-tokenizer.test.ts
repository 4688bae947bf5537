/**
 * The CSV tokenizer on its own: random well-formed files read back exactly (cells and first
 * lines), whatever the chunking; random hostile bytes give the same events for every chunking,
 * and the refused spans and records never overlap (a line belongs to one record or span at most).
 */
import { describe, expect, it } from 'vitest';
import { CsvTokenizer, type CsvEvent } from '../../src/producer/csv-tokenizer.js';

/** xorshift32: deterministic, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)] as T;
}

/** Splits into chunks of 1…max bytes (max 0: one chunk). */
function chunksOf(data: Buffer, next: () => number, max: number): Buffer[] {
  if (max === 0) return [data];
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; ) {
    const size = 1 + Math.floor(next() * max);
    chunks.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

function tokenize(chunks: Buffer[], maxRecordBytes: number): CsvEvent[] {
  const tokenizer = new CsvTokenizer(maxRecordBytes);
  const events: CsvEvent[] = [];
  for (const chunk of chunks) events.push(...tokenizer.push(chunk));
  events.push(...tokenizer.end());
  return events;
}

const BREAKS = ['\n', '\r\n', '\r'] as const;

/** A random well-formed file and what it holds: each record's cells and first line. */
function wellFormed(seed: number): { text: string; records: { fields: string[]; line: number }[] } {
  const next = random(seed);
  const records: { fields: string[]; line: number }[] = [];
  let text = '';
  let line = 1;
  const recordCount = 1 + Math.floor(next() * 40);
  for (let index = 0; index < recordCount; index += 1) {
    const fields: string[] = [];
    const start = line;
    const fieldCount = 1 + Math.floor(next() * 4);
    const cells: string[] = [];
    for (let cell = 0; cell < fieldCount; cell += 1) {
      if (next() < 0.5) {
        // Unquoted: no delimiter, quote or line break; surrounding spaces are trimmed away.
        const value = Array.from({ length: 1 + Math.floor(next() * 8) }, () => pick(next, ['a', 'B', '7', '-', '.', '=', 'é', '中'])).join('');
        fields.push(value);
        cells.push(next() < 0.2 ? `  ${value}\t` : value);
      } else {
        let value = '';
        let raw = '';
        for (let char = Math.floor(next() * 10); char > 0; char -= 1) {
          const piece = pick(next, ['x', ' ', ',', '"', 'é', ...BREAKS, 'DEV01,CA,mqtt-cn-x']);
          value += piece;
          raw += piece === '"' ? '""' : piece;
          if (piece === '\n' || piece === '\r' || piece === '\r\n') line += 1;
        }
        fields.push(value);
        cells.push(next() < 0.2 ? ` "${raw}" ` : `"${raw}"`);
      }
    }
    // A record of one empty cell would be a blank line, which is skipped: keep it out.
    if (fields.length === 1 && fields[0] === '') {
      fields[0] = 'z';
      cells[0] = 'z';
    }
    records.push({ fields, line: start });
    text += cells.join(',');
    if (index < recordCount - 1 || next() < 0.5) {
      text += pick(next, BREAKS);
      line += 1;
    }
  }
  return { text, records };
}

describe('CsvTokenizer', () => {
  it('reads random well-formed files back exactly, cells and first lines, whatever the chunking', () => {
    for (let seed = 1; seed <= 300; seed += 1) {
      const { text, records } = wellFormed(seed);
      const data = Buffer.from(text);
      const expected = records.map((record) => ({ kind: 'record', fields: record.fields, line: record.line }));
      const next = random(seed * 7919);
      for (const max of [0, 1, 3, 17]) {
        expect(tokenize(chunksOf(data, next, max), 1 << 20), `seed ${seed}, chunks up to ${max}`).toEqual(expected);
      }
    }
  });

  it('gives the same events for every chunking of random hostile bytes, and never lets two events share a line', () => {
    const alphabet = ['"', '"', ',', '\n', '\r', '\r\n', 'a', 'b', ' ', '\t', '""', 'é'];
    for (let seed = 1; seed <= 300; seed += 1) {
      const next = random(seed);
      const text = Array.from({ length: 50 + Math.floor(next() * 600) }, () => pick(next, alphabet)).join('');
      const data = Buffer.from(text);
      const limit = 8 + Math.floor(next() * 80);
      const whole = tokenize([data], limit);
      for (const max of [1, 2, 5, 64]) {
        expect(tokenize(chunksOf(data, next, max), limit), `seed ${seed}, chunks up to ${max}`).toEqual(whole);
      }
      let after = 0;
      for (const event of whole) {
        expect(event.line, `seed ${seed}`).toBeGreaterThan(after);
        after = event.kind === 'broken' ? event.lastLine : event.line;
        if (event.kind === 'broken') expect(event.lastLine).toBeGreaterThanOrEqual(event.line);
      }
    }
  });

  it('drops a UTF-8 BOM only at the very start, even when it arrives a byte at a time', () => {
    const data = Buffer.from('\ufeffa,b\n\ufeffc\n');
    const expected = [
      { kind: 'record', fields: ['a', 'b'], line: 1 },
      { kind: 'record', fields: ['\ufeffc'], line: 2 },
    ];
    expect(tokenize([data], 100)).toEqual(expected);
    expect(tokenize(chunksOf(data, random(3), 1), 100)).toEqual(expected);
    expect(tokenize([Buffer.from([0xef, 0xbb])], 100)).toEqual([{ kind: 'record', fields: ['\ufffd'], line: 1 }]);
  });

  it('ends a record at a CR, a LF or a CRLF split over two chunks, counting each as one line', () => {
    const events = tokenize([Buffer.from('a\r'), Buffer.from('\nb\r'), Buffer.from('c\n\nd')], 100);
    expect(events).toEqual([
      { kind: 'record', fields: ['a'], line: 1 },
      { kind: 'record', fields: ['b'], line: 2 },
      { kind: 'record', fields: ['c'], line: 3 },
      { kind: 'record', fields: ['d'], line: 5 },
    ]);
  });

  it('refuses a quote that never closes from its record to the last line, with or without a final line break', () => {
    expect(tokenize([Buffer.from('ok\nx,"a\nb\nc\n')], 100)).toEqual([
      { kind: 'record', fields: ['ok'], line: 1 },
      { kind: 'broken', line: 2, lastLine: 4, problem: 'unclosed', quoteLine: 2 },
    ]);
    expect(tokenize([Buffer.from('ok\nx,"a\nb\nc')], 100).at(-1)).toEqual({ kind: 'broken', line: 2, lastLine: 4, problem: 'unclosed', quoteLine: 2 });
  });
});
