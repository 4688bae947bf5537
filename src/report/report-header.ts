/**
 * The header of a sealed report, and the tally of its lines by outcome and evidence. The writer
 * counts the lines it writes; the verifier counts the lines it reads; both use `ReportTally`, so
 * "the header's counts are the lines' counts" is checked with the same rule that made them.
 */
import type { AuditEntry } from '../audit/audit-trail.js';
import type { Batch } from '../batches/batch.js';
import { OUTCOMES } from '../results/result-record.js';
import type { BatchAudit } from './batch-audit.js';
import { REASON_CODES } from './batch-audit.js';
import { REPORT_FORMAT_ID } from './report-chain.js';

/** Evidence cell of a finished record written before evidence existed. */
export const UNRECORDED_EVIDENCE = 'unrecorded';

/** Counts of a report's lines. */
export interface TallyCounts {
  /** Every final outcome, plus `rejected` (input rows) and `pending` (not finished yet). */
  outcomes: Record<string, number>;
  /** Finished devices by evidence (rejected and pending lines have none). */
  evidence: Record<string, number>;
  /** Lines after the column row (devices and rejected rows). */
  lines: number;
}

/** Counts report lines by outcome and evidence. */
export class ReportTally {
  private readonly outcomes: Record<string, number> = Object.fromEntries([...OUTCOMES, 'rejected', 'pending'].map((outcome) => [outcome, 0]));
  private readonly evidence: Record<string, number> = {};
  private lines = 0;

  /** Counts one line from its outcome and evidence cells (as written, empty when absent). */
  add(outcome: string, evidence: string): void {
    this.lines += 1;
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    if (outcome === 'rejected' || outcome === 'pending') return;
    const key = evidence === '' ? UNRECORDED_EVIDENCE : evidence;
    this.evidence[key] = (this.evidence[key] ?? 0) + 1;
  }

  /** The counts, evidence keys sorted (so two tallies of the same lines serialise the same). */
  counts(): TallyCounts {
    const evidence = Object.fromEntries(Object.keys(this.evidence).sort().map((key) => [key, this.evidence[key] ?? 0]));
    return { outcomes: { ...this.outcomes }, evidence, lines: this.lines };
  }
}

/** True when two tallies count the same. */
export function sameCounts(a: TallyCounts, b: TallyCounts): boolean {
  const same = (x: Record<string, number>, y: Record<string, number>) => {
    const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
    for (const key of keys) if ((x[key] ?? 0) !== (y[key] ?? 0)) return false;
    return true;
  };
  return a.lines === b.lines && same(a.outcomes, b.outcomes) && same(a.evidence, b.evidence);
}

/** How the report's lines are ordered. */
export type ReportOrder =
  /** Every device by its input line; rejected rows in between at theirs. */
  | 'input line, then device'
  /** Some devices had no recorded input line: those follow, by instance, CA and serial. */
  | 'input line, then device; devices without a recorded line last, by device'
  /** Too many devices without a recorded line to sort in memory: those follow in storage order. */
  | 'input line; devices without a recorded line last, in storage order';

/** The first line of a sealed report. */
export interface ReportHeader {
  type: 'header';
  format: typeof REPORT_FORMAT_ID;
  batchId: string;
  name: string;
  /** Where the batch came from: `csv`, `webhook`, `ca_listing`. */
  source: string;
  action: string;
  priority: string;
  /** Who started it: OS user@host for the command line, `webhook:<id>` for a webhook delivery. */
  startedBy: string;
  /** How: the command as typed, or the source when no command was recorded. */
  startedVia: string;
  reason: string | null;
  /** RFC 5280 CRLReason name and value. */
  reasonCode: { name: string; value: number } | null;
  inputFile: string | null;
  inputSha256: string | null;
  linkedBatchId: string | null;
  followUpBatchIds: string[];
  startedAt: string;
  finishedAt: string | null;
  state: string;
  accepted: number;
  rejected: number;
  duplicates: number;
  /** Counted from the lines below (the verifier counts them again). */
  counts: Record<string, number>;
  evidence: Record<string, number>;
  lines: number;
  order: ReportOrder;
  verifiedAt: string | null;
  verification: Record<string, unknown> | null;
  /** The batch's audit trail (who enqueued, paused, resumed, cancelled, redrove it), oldest first. */
  auditTrail: AuditEntry[];
  generatedAt: string;
  generatedBy: string;
}

const VIA: Record<string, string> = {
  csv: 'a CSV file',
  webhook: 'a signed webhook delivery',
  ca_listing: 'a listing of every device under a CA',
};

/** Builds the header from the batch, its audit facts and the tally of the lines. */
export function buildReportHeader(
  batch: Batch,
  audit: BatchAudit,
  tally: TallyCounts,
  order: ReportOrder,
  generated: { at: Date; by: string },
  trail: AuditEntry[] = [],
): ReportHeader {
  return {
    type: 'header',
    format: REPORT_FORMAT_ID,
    batchId: batch.id,
    name: batch.name,
    source: batch.source,
    action: batch.action,
    priority: batch.priority,
    startedBy: batch.createdBy,
    startedVia: audit.command ?? VIA[batch.source] ?? batch.source,
    reason: audit.reason,
    reasonCode: audit.reasonCode === null ? null : { name: audit.reasonCode, value: REASON_CODES[audit.reasonCode] },
    inputFile: audit.inputFile,
    inputSha256: audit.inputSha256,
    linkedBatchId: audit.linkedBatchId,
    followUpBatchIds: audit.followUpBatchIds,
    startedAt: batch.createdAt,
    finishedAt: batch.finishedAt,
    state: batch.state,
    accepted: batch.accepted,
    rejected: batch.rejected,
    duplicates: batch.duplicates,
    counts: tally.outcomes,
    evidence: tally.evidence,
    lines: tally.lines,
    order,
    verifiedAt: audit.verifiedAt,
    verification: audit.verification,
    auditTrail: trail,
    generatedAt: generated.at.toISOString(),
    generatedBy: generated.by,
  };
}
