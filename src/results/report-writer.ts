/**
 * Streams a batch's report (records, then rejected rows) without holding it in memory.
 */
import type { BatchStore } from '../batches/batch-store.js';
import type { ResultStore } from './result-store.js';
import { csvHeader, csvLine, ndjsonLine, recordLine, rejectedLine } from './report-format.js';

/** Report formats. */
export type ReportFormat = 'csv' | 'ndjson';

/** Yields the report's text in lines. */
export async function* reportLines(batchId: string, format: ReportFormat, results: ResultStore, batches: BatchStore): AsyncGenerator<string> {
  const render = format === 'csv' ? csvLine : ndjsonLine;
  if (format === 'csv') yield csvHeader();
  for await (const record of results.scan(batchId)) yield render(recordLine(record));
  for await (const row of batches.rejectedRows(batchId)) yield render(rejectedLine(batchId, row));
}
