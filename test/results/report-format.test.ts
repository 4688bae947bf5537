/** Report lines: CSV escaping (formula injection, RFC 4180), column order, NDJSON, rejected rows. */
import { describe, it, expect } from 'vitest';
import { parse } from 'csv-parse/sync';
import { REPORT_COLUMNS, csvCell, csvHeader, csvLine, ndjsonLine, recordLine, rejectedLine, type ReportLine } from '../../src/results/report-format.js';
import type { ResultRecord } from '../../src/results/result-record.js';

const RECORD: ResultRecord = {
  batchId: 'b-1',
  mqttInstanceId: 'mqtt-1',
  caSn: 'ca-1',
  deviceSn: 'a1b2c3',
  action: 'delete',
  outcome: 'deleted',
  evidence: 'answer',
  attempts: 2,
  requestId: 'REQ-1',
  errorCode: null,
  httpStatus: null,
  message: null,
  firstAttemptAt: '2024-05-01T10:00:00.000Z',
  finishedAt: '2024-05-01T10:00:01.500Z',
};

function parseCsv(text: string): string[][] {
  // No options: every record must have as many fields as the header (csv-parse checks it).
  return parse(text);
}

describe('csvCell', () => {
  it.each([
    ['=HYPERLINK("http://evil")', `"'=HYPERLINK(""http://evil"")"`],
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tcmd', "'\tcmd"],
    ['\rcmd', `"'\rcmd"`],
  ])('neutralises a formula start: %j → %j', (input, expected) => {
    expect(csvCell(input)).toBe(expected);
  });

  it.each([
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\r\nlf', '"cr\r\nlf"'],
    ['plain', 'plain'],
    ['a=b', 'a=b'],
    ['', ''],
  ])('RFC 4180 quoting: %j → %j', (input, expected) => {
    expect(csvCell(input)).toBe(expected);
  });

  it('null and undefined are empty', () => {
    expect(csvCell(null)).toBe('');
    expect(csvCell(undefined)).toBe('');
  });

  it('numbers are written as numbers, a negative one not turned into text', () => {
    expect(csvCell(500)).toBe('500');
    expect(csvCell(0)).toBe('0');
    expect(csvCell(-3)).toBe('-3');
  });
});

describe('csvLine', () => {
  it('the header is REPORT_COLUMNS in order', () => {
    expect(parseCsv(csvHeader())).toEqual([[...REPORT_COLUMNS]]);
  });

  it('puts each field in its REPORT_COLUMNS column', () => {
    // Every column gets a distinct value, so a swapped pair would show.
    const line: ReportLine = Object.fromEntries(REPORT_COLUMNS.map((column) => [column, `v-${column}`]));
    const [cells] = parseCsv(csvLine(line));
    expect(cells).toEqual(REPORT_COLUMNS.map((column) => `v-${column}`));
  });

  it('a result record round-trips through csv-parse', () => {
    const [header, cells] = parseCsv(csvHeader() + csvLine(recordLine(RECORD)));
    const row = Object.fromEntries(header!.map((name, index) => [name, cells![index]]));
    expect(row).toEqual({
      batchId: 'b-1',
      mqttInstanceId: 'mqtt-1',
      caSn: 'ca-1',
      deviceSn: 'a1b2c3',
      action: 'delete',
      outcome: 'deleted',
      evidence: 'answer',
      attempts: '2',
      requestId: 'REQ-1',
      errorCode: '',
      httpStatus: '',
      message: '',
      firstAttemptAt: '2024-05-01T10:00:00.000Z',
      finishedAt: '2024-05-01T10:00:01.500Z',
      line: '',
      reason: '',
      verification: '',
      verifiedAt: '',
      verifyRequestId: '',
    });
  });

  it('a record with a read-back keeps what the read saw, when, and its RequestId', () => {
    const verified = { ...RECORD, verification: 'absent' as const, verifiedAt: '2024-05-01T10:00:02.000Z', verifyRequestId: 'REQ-2' };
    const [header, cells] = parseCsv(csvHeader() + csvLine(recordLine(verified)));
    const row = Object.fromEntries(header!.map((name, index) => [name, cells![index]]));
    expect(row).toMatchObject({ outcome: 'deleted', requestId: 'REQ-1', verification: 'absent', verifiedAt: '2024-05-01T10:00:02.000Z', verifyRequestId: 'REQ-2' });
  });

  it('awkward values round-trip (formula ones keep their guard quote and nothing else changes)', () => {
    const awkward = [
      'comma, inside',
      'quote " inside',
      '"fully quoted"',
      'multi\nline\r\nvalue',
      '=cmd|" /C calc"!A0',
      '-2+3',
      '@user',
      '+49 30 1234',
      '\tindented',
      '\r\nstarts with CRLF',
      'ünïcödé ✓ 设备',
      '  spaces kept  ',
    ];
    const lines = awkward.map((message, index) => csvLine({ ...recordLine(RECORD), deviceSn: `d${index}`, message }));
    const rows = parseCsv(csvHeader() + lines.join(''));
    expect(rows).toHaveLength(awkward.length + 1);
    const messageIndex = REPORT_COLUMNS.indexOf('message');
    const parsed = rows.slice(1).map((row) => row[messageIndex]);
    expect(parsed).toEqual(awkward.map((value) => (/^[=+\-@\t\r]/.test(value) ? `'${value}` : value)));
    // No parsed cell would start a formula.
    for (const row of rows.slice(1)) for (const cell of row) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
  });

  it('has the evidence column right after outcome; a gone record and a record from before evidence', () => {
    expect(REPORT_COLUMNS.indexOf('evidence')).toBe(REPORT_COLUMNS.indexOf('outcome') + 1);
    const gone = parseCsv(csvLine(recordLine({ ...RECORD, outcome: 'gone', evidence: 'read' }, 42)))[0]!;
    expect(gone[REPORT_COLUMNS.indexOf('outcome')]).toBe('gone');
    expect(gone[REPORT_COLUMNS.indexOf('evidence')]).toBe('read');
    expect(gone[REPORT_COLUMNS.indexOf('line')]).toBe('42');
    const { evidence: _evidence, ...older } = RECORD;
    const old = parseCsv(csvLine(recordLine(older)))[0]!;
    expect(old[REPORT_COLUMNS.indexOf('evidence')]).toBe('');
    expect(old[REPORT_COLUMNS.indexOf('line')]).toBe('');
  });

  it('ends every line with a newline', () => {
    expect(csvLine(recordLine(RECORD)).endsWith('\n')).toBe(true);
    expect(csvHeader().endsWith('\n')).toBe(true);
  });
});

describe('ndjsonLine', () => {
  it('drops null fields and keeps the others with their types', () => {
    const text = ndjsonLine(recordLine(RECORD));
    expect(text.endsWith('\n')).toBe(true);
    expect(text.slice(0, -1)).not.toContain('\n');
    const object = JSON.parse(text) as Record<string, unknown>;
    expect(object).toEqual({
      batchId: 'b-1',
      mqttInstanceId: 'mqtt-1',
      caSn: 'ca-1',
      deviceSn: 'a1b2c3',
      action: 'delete',
      outcome: 'deleted',
      evidence: 'answer',
      attempts: 2,
      requestId: 'REQ-1',
      firstAttemptAt: '2024-05-01T10:00:00.000Z',
      finishedAt: '2024-05-01T10:00:01.500Z',
    });
    expect(Object.keys(object)).not.toContain('errorCode');
  });

  it('keeps 0 and empty strings (only null and undefined are left out)', () => {
    const object = JSON.parse(ndjsonLine({ attempts: 0, message: '' })) as Record<string, unknown>;
    expect(object).toEqual({ attempts: 0, message: '' });
  });

  it('escapes newlines inside values so one record stays on one line', () => {
    const text = ndjsonLine({ message: 'a\nb' });
    expect(text.split('\n')).toEqual(['{"message":"a\\nb"}', '']);
  });
});

describe('rejectedLine', () => {
  it('is outcome rejected with the line number and reason', () => {
    expect(rejectedLine('b-9', { line: 17, reason: 'DeviceSn is empty' })).toEqual({
      batchId: 'b-9',
      deviceSn: null,
      outcome: 'rejected',
      line: 17,
      reason: 'DeviceSn is empty',
    });
  });

  it('carries the DeviceSn when the row had one, and lands in the right CSV columns', () => {
    const line = rejectedLine('b-9', { line: 4, reason: 'DeviceSn longer than 128 bytes', deviceSn: '=evil' });
    const [cells] = parseCsv(csvLine(line));
    const at = (column: (typeof REPORT_COLUMNS)[number]): string | undefined => cells![REPORT_COLUMNS.indexOf(column)];
    expect(at('batchId')).toBe('b-9');
    expect(at('deviceSn')).toBe("'=evil");
    expect(at('outcome')).toBe('rejected');
    expect(at('line')).toBe('4');
    expect(at('reason')).toBe('DeviceSn longer than 128 bytes');
    expect(JSON.parse(ndjsonLine(line))).toEqual({ batchId: 'b-9', deviceSn: '=evil', outcome: 'rejected', line: 4, reason: 'DeviceSn longer than 128 bytes' });
  });
});
