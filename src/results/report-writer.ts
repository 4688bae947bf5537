/**
 * Streams a batch's report lines without holding the batch in memory.
 *
 * With the batch's `InputOrder`, lines come in input order: devices by their input line, with
 * the rejected rows at theirs; devices without a recorded line (batches enqueued by code that
 * does not record it) follow, sorted by device when there are at most `sortLimit` of them.
 * Without an `InputOrder`, lines come in storage order (records, then rejected rows), as before.
 */
import type { BatchStore } from '../batches/batch-store.js';
import type { InputOrder } from './input-order.js';
import type { PendingRecord, ResultRecord } from './result-record.js';
import type { ResultStore } from './result-store.js';
import { csvHeader, csvLine, ndjsonLine, recordLine, rejectedLine, type ReportLine } from './report-format.js';

/** Report formats. */
export type ReportFormat = 'csv' | 'ndjson';

/** Where a report's lines come from. */
export interface ReportSource {
  results: ResultStore;
  batches: BatchStore;
  /** Absent: storage order. */
  order?: InputOrder;
}

/** How the lines of one report were placed (filled in while iterating). */
export interface OrderStats {
  /** Devices placed by their recorded input line. */
  byLine: number;
  /** Devices without a recorded line, sorted by device after the others. */
  byDevice: number;
  /** Devices without a recorded line left in storage order (more than `sortLimit`). */
  byStorage: number;
}

/** Options of `orderedReportLines`. */
export interface OrderOptions {
  /** Most devices without a recorded line sorted in memory (about 1 KB each); beyond, storage order. */
  sortLimit: number;
  /** Records fetched per round trip. */
  pageSize: number;
}

/** Defaults of `OrderOptions`. */
export const ORDER_DEFAULTS: OrderOptions = {
  // 100,000 covers any webhook batch (10,000 devices per delivery) with room; ~100 MB at worst.
  sortLimit: 100_000,
  pageSize: 1_000,
};

type AnyRecord = ResultRecord | PendingRecord;

function deviceKey(record: AnyRecord): string {
  return `${record.mqttInstanceId}\u0000${record.caSn}\u0000${record.deviceSn}`;
}

/** Pulls rejected rows one at a time, so they can be merged by line. */
class RejectedRows {
  private readonly iterator: AsyncIterator<{ line: number; reason: string; deviceSn?: string }>;
  private head: { line: number; reason: string; deviceSn?: string } | null | undefined;

  constructor(batches: BatchStore, batchId: string) {
    this.iterator = batches.rejectedRows(batchId)[Symbol.asyncIterator]();
  }

  async peek(): Promise<{ line: number; reason: string; deviceSn?: string } | null> {
    if (this.head === undefined) {
      const next = await this.iterator.next();
      this.head = next.done === true ? null : next.value;
    }
    return this.head;
  }

  take(): void {
    this.head = undefined;
  }
}

/** Yields a batch's report lines (devices and rejected rows) in the order described above. */
export async function* orderedReportLines(batchId: string, source: ReportSource, stats: OrderStats = { byLine: 0, byDevice: 0, byStorage: 0 }, options: Partial<OrderOptions> = {}): AsyncGenerator<ReportLine> {
  const { sortLimit, pageSize } = { ...ORDER_DEFAULTS, ...options };
  const { results, batches, order } = source;
  if (order === undefined) {
    for await (const record of results.scan(batchId)) {
      stats.byStorage += 1;
      yield recordLine(record);
    }
    for await (const row of batches.rejectedRows(batchId)) yield rejectedLine(batchId, row);
    return;
  }

  const rejected = new RejectedRows(batches, batchId);
  for await (const page of order.pages(batchId, pageSize)) {
    const records = await Promise.all(page.map((entry) => results.get(batchId, entry.field)));
    for (const [index, entry] of page.entries()) {
      const record = records[index];
      if (record === null || record === undefined) continue;
      for (let row = await rejected.peek(); row !== null && row.line < entry.line; row = await rejected.peek()) {
        yield rejectedLine(batchId, row);
        rejected.take();
      }
      stats.byLine += 1;
      yield recordLine(record, entry.line);
    }
  }
  for (let row = await rejected.peek(); row !== null; row = await rejected.peek()) {
    yield rejectedLine(batchId, row);
    rejected.take();
  }

  // Devices without a recorded line: none when every accepted device was placed (the usual case).
  const accepted = (await batches.get(batchId))?.accepted ?? 0;
  if (stats.byLine >= accepted) return;
  const unplaced: AnyRecord[] = [];
  const seen = new Set<string>();
  let overflow = false;
  for await (const page of order.unplaced(batchId, pageSize)) {
    for (const record of page) {
      // HSCAN may return an entry twice (while the hash is resized): one line per device. Past
      // the sort limit memory wins: a finished batch's hash is not resized, so none repeat.
      if (!overflow) {
        const key = deviceKey(record);
        if (seen.has(key)) continue;
        seen.add(key);
      }
      if (!overflow && unplaced.length < sortLimit) {
        unplaced.push(record);
        continue;
      }
      if (!overflow) {
        // Too many to sort: what was collected goes first, the rest as it comes.
        overflow = true;
        for (const held of unplaced) {
          stats.byStorage += 1;
          yield recordLine(held);
        }
        unplaced.length = 0;
        seen.clear();
      }
      stats.byStorage += 1;
      yield recordLine(record);
    }
  }
  unplaced.sort((a, b) => (deviceKey(a) < deviceKey(b) ? -1 : deviceKey(a) > deviceKey(b) ? 1 : 0));
  for (const record of unplaced) {
    stats.byDevice += 1;
    yield recordLine(record);
  }
}

/**
 * Yields the plain report's text in lines (a CSV column row first): no header, no chain; what
 * the admin API serves and `revoker report --plain` writes. See `writeSealedReport` for the
 * sealed form.
 */
export async function* reportLines(batchId: string, format: ReportFormat, results: ResultStore, batches: BatchStore, order?: InputOrder): AsyncGenerator<string> {
  const render = format === 'csv' ? csvLine : ndjsonLine;
  if (format === 'csv') yield csvHeader();
  for await (const line of orderedReportLines(batchId, order === undefined ? { results, batches } : { results, batches, order })) yield render(line);
}
