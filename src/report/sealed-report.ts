/**
 * Writes a batch's sealed report: a header line (who, how, why, input hash, times, counts), in
 * CSV a column row, one line per device and rejected input row in input order, each line ending
 * with its hash-chain value, then a seal line with the final chain value and, when a signing key
 * is given, its Ed25519 signature. See `report-chain.ts` for the chain.
 *
 * The header's counts are those of the lines below it, so the lines are read once into a
 * temporary file (one JSON string per line: memory stays flat, disk holds about the report's
 * size), counted, and then written after the header with their chain values.
 */
import { jsonForTerminal } from '../cli/terminal-text.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { KeyObject } from 'node:crypto';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { Batch } from '../batches/batch.js';
import { REPORT_COLUMNS, csvCell, csvLine, ndjsonLine } from '../results/report-format.js';
import { orderedReportLines, type OrderStats, type ReportSource } from '../results/report-writer.js';
import type { BatchAuditStore } from './batch-audit.js';
import { appendChain, chainNext, CHAIN_SEED, CSV_HEADER_MARK, CSV_SEAL_MARK, REPORT_FORMAT_ID, type SealedFormat } from './report-chain.js';
import { buildReportHeader, ReportTally, type ReportHeader, type ReportOrder } from './report-header.js';
import { signReport, type ReportSignature } from './report-signature.js';

/** The last line of a sealed report (not chained: it closes the chain). */
export interface ReportSeal {
  type: 'seal';
  format: typeof REPORT_FORMAT_ID;
  /** Lines the chain covers: the header, the CSV column row, every device and rejected row. */
  lines: number;
  /** The chain value of the last chained line. */
  finalHash: string;
  /** Null when the report is not signed. */
  signature: ReportSignature | null;
  sealedAt: string;
}

/** Options of `writeSealedReport`. */
export interface SealedReportOptions {
  format: SealedFormat;
  /** Ed25519 private key; null writes an unsigned (but chained) report. */
  signingKey: KeyObject | null;
  /** Who generates the report (user@host). */
  generatedBy: string;
  now?: () => Date;
  /** Where the temporary file goes (default: the OS temp directory). */
  tmpDir?: string;
}

/** What was written. */
export interface SealedReportSummary {
  header: ReportHeader;
  seal: ReportSeal;
}

/** Audit-trail entries the header carries (a batch has a handful; this bounds a pathological one). */
const MAX_TRAIL_ENTRIES = 1_000;

async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

function orderOf(stats: OrderStats): ReportOrder {
  if (stats.byStorage > 0) return 'input line; devices without a recorded line last, in storage order';
  if (stats.byDevice > 0) return 'input line, then device; devices without a recorded line last, by device';
  return 'input line, then device';
}

/** The header line's content (before its chain value). */
export function headerContent(format: SealedFormat, header: ReportHeader): string {
  return format === 'csv' ? `${CSV_HEADER_MARK},${csvCell(jsonForTerminal(header))}` : jsonForTerminal(header);
}

/** The seal line (complete, without the newline). */
export function sealLine(format: SealedFormat, seal: ReportSeal): string {
  return format === 'csv' ? `${CSV_SEAL_MARK},${csvCell(jsonForTerminal(seal))}` : jsonForTerminal(seal);
}

/** The CSV column row's content: the report columns and `chain`. */
export function csvColumnContent(): string {
  return [...REPORT_COLUMNS, 'chain'].join(',');
}

/**
 * Writes the sealed report of `batch` to `out` (which it does not end). `source.order` gives
 * the input order; without it, lines come in storage order and the header says so.
 */
export async function writeSealedReport(
  batch: Batch,
  out: NodeJS.WritableStream,
  source: ReportSource & { audit: BatchAuditStore; trail?: Pick<AuditTrail, 'list'> },
  options: SealedReportOptions,
): Promise<SealedReportSummary> {
  const now = options.now ?? (() => new Date());
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'revoker-report-'));
  try {
    const bodyFile = join(dir, 'body.ndjson');
    const tally = new ReportTally();
    const stats: OrderStats = { byLine: 0, byDevice: 0, byStorage: 0 };
    const body = createWriteStream(bodyFile);
    const render = options.format === 'csv' ? csvLine : ndjsonLine;
    for await (const line of orderedReportLines(batch.id, source, stats)) {
      tally.add(String(line.outcome ?? ''), String(line.evidence ?? ''));
      // The rendered line without its newline; kept as a JSON string so embedded newlines survive.
      await write(body, `${JSON.stringify(render(line).slice(0, -1))}\n`);
    }
    body.end();
    await once(body, 'finish');

    const trail = source.trail !== undefined ? await source.trail.list(batch.id, MAX_TRAIL_ENTRIES) : [];
    const header = buildReportHeader(batch, await source.audit.get(batch.id), tally.counts(), orderOf(stats), { at: now(), by: options.generatedBy }, trail);
    let chain = CHAIN_SEED;
    let lines = 0;
    const emit = async (content: string): Promise<void> => {
      chain = chainNext(chain, content);
      lines += 1;
      await write(out, `${appendChain(options.format, content, chain)}\n`);
    };
    await emit(headerContent(options.format, header));
    if (options.format === 'csv') await emit(csvColumnContent());
    for await (const text of createInterface({ input: createReadStream(bodyFile), crlfDelay: Infinity })) {
      if (text !== '') await emit(JSON.parse(text) as string);
    }
    const seal: ReportSeal = {
      type: 'seal',
      format: REPORT_FORMAT_ID,
      lines,
      finalHash: chain,
      signature: options.signingKey === null ? null : signReport(options.signingKey, lines, chain),
      sealedAt: now().toISOString(),
    };
    await write(out, `${sealLine(options.format, seal)}\n`);
    return { header, seal };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
