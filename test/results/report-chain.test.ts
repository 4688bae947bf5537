/**
 * The sealed report's pure pieces: the chain suffix in CSV and NDJSON, reading records back
 * (quoted newlines, CR LF, split chunks), CSV cells against csv-parse, the tally, and Ed25519
 * signatures over the final hash.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { parseCsvRecord, splitRecords } from '../../src/report/csv-records.js';
import { appendChain, CHAIN_SEED, chainNext, splitChain } from '../../src/report/report-chain.js';
import { ReportTally, sameCounts } from '../../src/report/report-header.js';
import { signReport, verifyReportSignature } from '../../src/report/report-signature.js';
import { csvCell } from '../../src/results/report-format.js';

function csvParse(text: string): string[][] {
  return parse(text);
}

function chunks(...parts: string[]): AsyncIterable<Buffer> {
  return Readable.from(parts.map((part) => Buffer.from(part, 'utf8')));
}

async function records(mode: 'csv' | 'lines', ...parts: string[]): Promise<{ text: string; line: number; crlf: boolean }[]> {
  const all = [];
  for await (const record of splitRecords(chunks(...parts), mode)) all.push(record);
  return all;
}

describe('chain values', () => {
  it('round-trip through a CSV line and an NDJSON line, byte for byte', () => {
    const hash = chainNext(CHAIN_SEED, 'x');
    const csv = appendChain('csv', 'a,"b,c",d', hash);
    expect(csv).toBe(`a,"b,c",d,${hash}`);
    expect(splitChain('csv', csv)).toEqual({ content: 'a,"b,c",d', chain: hash });
    const json = '{"deviceSn":"d1","message":"a \\"chain\\" word"}';
    const sealed = appendChain('ndjson', json, hash);
    expect(JSON.parse(sealed)).toEqual({ deviceSn: 'd1', message: 'a "chain" word', chain: hash });
    expect(splitChain('ndjson', sealed)).toEqual({ content: json, chain: hash });
  });

  it('finds no chain value where there is none or it is malformed', () => {
    expect(splitChain('csv', 'a,b,c')).toBeNull();
    expect(splitChain('csv', `a,${'A'.repeat(64)}`)).toBeNull();
    expect(splitChain('ndjson', '{"a":1}')).toBeNull();
  });

  it('depends on the previous value and on every byte of the content', () => {
    const a = chainNext(CHAIN_SEED, 'line');
    expect(chainNext(CHAIN_SEED, 'line')).toBe(a);
    expect(chainNext(CHAIN_SEED, 'linf')).not.toBe(a);
    expect(chainNext(a, 'line')).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('splitRecords', () => {
  it('keeps a quoted newline inside its CSV record and numbers physical lines', async () => {
    const text = `h1,h2\nd1,"two\nlines"\r\nd2,x\n`;
    // Split mid-record and mid-quote: chunk borders must not matter.
    expect(await records('csv', text.slice(0, 9), text.slice(9, 14), text.slice(14))).toEqual([
      { text: 'h1,h2', line: 1, crlf: false },
      { text: 'd1,"two\nlines"', line: 2, crlf: true },
      { text: 'd2,x', line: 4, crlf: false },
    ]);
  });

  it('splits NDJSON on every newline (its strings escape them) and keeps a last line without one', async () => {
    expect(await records('lines', '{"a":"say \\"hi\\""}\n{"b":1}')).toEqual([
      { text: '{"a":"say \\"hi\\""}', line: 1, crlf: false },
      { text: '{"b":1}', line: 2, crlf: false },
    ]);
  });

  it('decodes a multi-byte character split across chunks', async () => {
    const bytes = Buffer.from('é,ü\n', 'utf8');
    const all = [];
    for await (const record of splitRecords(Readable.from([bytes.subarray(0, 1), bytes.subarray(1)]), 'csv')) all.push(record.text);
    expect(all).toEqual(['é,ü']);
  });
});

describe('parseCsvRecord', () => {
  it.each([['plain'], ['a,b'], ['say "hi"'], ['two\nlines'], ['cr\r\nlf'], [''], ['x'.repeat(300)]])('reads back what csvCell wrote: %j', (value) => {
    const line = [csvCell(value), csvCell('next'), ''].join(',');
    expect(parseCsvRecord(line)).toEqual([value, 'next', '']);
    expect(parseCsvRecord(line)).toEqual(csvParse(line)[0]);
  });

  it('keeps the formula guard, as csv-parse does', () => {
    const line = `${csvCell('=1+2')},b`;
    expect(parseCsvRecord(line)).toEqual(["'=1+2", 'b']);
    expect(parseCsvRecord(line)).toEqual(csvParse(line)[0]);
  });
});

describe('ReportTally', () => {
  it('counts outcomes for every line and evidence only for finished devices', () => {
    const tally = new ReportTally();
    tally.add('deleted', 'answer');
    tally.add('deleted', 'ca_deleted');
    tally.add('gone', 'read');
    tally.add('rejected', '');
    tally.add('pending', '');
    tally.add('not_found', '');
    const counts = tally.counts();
    expect(counts.lines).toBe(6);
    expect(counts.outcomes).toMatchObject({ deleted: 2, gone: 1, rejected: 1, pending: 1, not_found: 1, failed: 0 });
    expect(counts.evidence).toEqual({ answer: 1, ca_deleted: 1, read: 1, unrecorded: 1 });
    const other = new ReportTally();
    for (const [outcome, evidence] of [['deleted', 'answer'], ['deleted', 'ca_deleted'], ['gone', 'read'], ['rejected', ''], ['pending', ''], ['not_found', '']] as const) other.add(outcome, evidence);
    expect(sameCounts(counts, other.counts())).toBe(true);
    other.add('deleted', 'answer');
    expect(sameCounts(counts, other.counts())).toBe(false);
  });
});

describe('report signatures', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');

  it('verifies with the signer key only, and only for the same line count and final hash', () => {
    const hash = chainNext(CHAIN_SEED, 'x');
    const signature = signReport(privateKey, 12, hash);
    expect(signature.keyFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(signature.publicKey).toContain('BEGIN PUBLIC KEY');
    expect(verifyReportSignature(other.publicKey, 12, hash, signature.signature)).toBe(false);
    expect(verifyReportSignature(createPublicKey(privateKey), 12, hash, signature.signature)).toBe(true);
    expect(verifyReportSignature(privateKey, 11, hash, signature.signature)).toBe(false);
    expect(verifyReportSignature(privateKey, 12, chainNext(hash, 'y'), signature.signature)).toBe(false);
    expect(verifyReportSignature(privateKey, 12, hash, 'not base64 at all')).toBe(false);
  });
});
