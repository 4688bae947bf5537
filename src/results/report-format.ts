/**
 * Report lines: one per device and one per rejected input row, as CSV or NDJSON. Pure
 * functions; the streaming is the caller's.
 */
import { escapeControlInCell, jsonForTerminal } from '../cli/terminal-text.js';
import type { PendingRecord, ResultRecord } from './result-record.js';

/** Columns of the report, in order: the result record's fields, the input row's, then `--verify`'s read. */
export const REPORT_COLUMNS = [
  'batchId',
  'mqttInstanceId',
  'caSn',
  'deviceSn',
  'action',
  'outcome',
  'evidence',
  'attempts',
  'requestId',
  'errorCode',
  'httpStatus',
  'message',
  'firstAttemptAt',
  'finishedAt',
  'line',
  'reason',
  'verification',
  'verifiedAt',
  'verifyRequestId',
] as const;

/** One line of a report. */
export type ReportLine = Partial<Record<(typeof REPORT_COLUMNS)[number], string | number | null>>;

/** A rejected input row as a report line. */
export function rejectedLine(batchId: string, row: { line: number; reason: string; deviceSn?: string }): ReportLine {
  return { batchId, deviceSn: row.deviceSn ?? null, outcome: 'rejected', line: row.line, reason: row.reason };
}

/**
 * A record (or a pending placeholder) as a report line; `line` is the device's input line when
 * known (see `InputOrder`). A record written before `evidence` existed has an empty evidence cell.
 */
export function recordLine(record: ResultRecord | PendingRecord, line: number | null = null): ReportLine {
  return line === null ? { ...record } : { ...record, line };
}

/**
 * Escapes a CSV cell. Cells a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
 * `@`, tab or carriage return) get a leading `'`, so a hostile serial cannot execute in the
 * auditor's spreadsheet; then RFC 4180 quoting.
 */
export function csvCell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  // Control characters (a hostile serial's escape sequences) are written as visible escapes, so
  // the report is inert on a terminal and the same bytes in a file (the hash chain covers it).
  text = escapeControlInCell(text);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The CSV header line. */
export function csvHeader(): string {
  return `${REPORT_COLUMNS.join(',')}\n`;
}

/** One CSV line. */
export function csvLine(line: ReportLine): string {
  return `${REPORT_COLUMNS.map((column) => csvCell(line[column])).join(',')}\n`;
}

/** One NDJSON line (fields without a value are left out). */
export function ndjsonLine(line: ReportLine): string {
  const compact: Record<string, string | number> = {};
  for (const column of REPORT_COLUMNS) {
    const value = line[column];
    if (value !== null && value !== undefined) compact[column] = value;
  }
  return `${jsonForTerminal(compact)}\n`;
}
