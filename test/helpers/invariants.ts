/**
 * The invariants every reliability scenario checks after it ran (issue: reliability):
 * every accepted device has exactly one terminal record; the batch counters equal the records;
 * every `deleted` record matches a call the emulator applied, or says it was confirmed by absence
 * after a call whose answer the client never got (the design's contract: revoker cannot know
 * whether such a call deleted it); no device the emulator deleted in this batch lacks a
 * `deleted` record.
 */
import type { CallRecord } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';

/** Returns every violated invariant, as sentences (empty when all hold). */
export async function invariantViolations(context: Context, batchId: string, calls: CallRecord[], deviceSns: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  const batch = await context.batches.get(batchId);
  if (batch === null) return [`batch ${batchId} not found`];
  const records = new Map<string, ResultRecord>();
  for await (const raw of context.results.scan(batchId)) {
    const record = raw as ResultRecord;
    if (records.has(record.deviceSn)) problems.push(`${record.deviceSn} has two records`);
    records.set(record.deviceSn, record);
    if ((record.outcome as string) === 'pending') problems.push(`${record.deviceSn} has no terminal record`);
  }
  if (records.size !== batch.accepted) problems.push(`${records.size} records for ${batch.accepted} accepted devices`);
  const counted = new Map<string, number>();
  for (const record of records.values()) counted.set(record.outcome, (counted.get(record.outcome) ?? 0) + 1);
  for (const [outcome, count] of Object.entries(batch.counts)) {
    if ((counted.get(outcome) ?? 0) !== count) problems.push(`counter ${outcome}=${count} but ${counted.get(outcome) ?? 0} records`);
  }
  const appliedDeletes = new Set(calls.filter((call) => call.applied && call.action === 'DeleteDeviceCertificate' && deviceSns.has(call.deviceSn ?? '')).map((call) => call.deviceSn));
  // A call whose answer the client never used: an injected fault, or an answer slower than the
  // client's timeout (the emulator logs it as answered). Either way the emulator saw an earlier call.
  const callsPerDevice = new Map<string, number>();
  for (const call of calls) if (call.deviceSn !== undefined && call.deviceSn !== null) callsPerDevice.set(call.deviceSn, (callsPerDevice.get(call.deviceSn) ?? 0) + 1);
  for (const record of records.values()) {
    if (record.outcome !== 'deleted' || appliedDeletes.has(record.deviceSn)) continue;
    const confirmedByAbsence = record.message?.startsWith('confirmed by absence') === true && (callsPerDevice.get(record.deviceSn) ?? 0) >= 2;
    if (!confirmedByAbsence) problems.push(`${record.deviceSn} recorded deleted without an applied delete`);
  }
  for (const deviceSn of appliedDeletes) {
    if (records.get(deviceSn ?? '')?.outcome !== 'deleted') problems.push(`${deviceSn} was deleted by the API but recorded ${records.get(deviceSn ?? '')?.outcome ?? 'nowhere'}`);
  }
  return problems;
}
