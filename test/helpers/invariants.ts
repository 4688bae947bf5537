/**
 * The invariants every reliability scenario checks after it ran (issues: reliability, 11), per
 * batch:
 * - every accepted device has exactly one terminal record, and `done` and each outcome counter
 *   equal the records;
 * - every record says what its outcome rests on (`evidence`);
 * - every `deleted` record matches a delete the emulator applied (no existence snapshot is taken
 *   in these scenarios, so an answer that was lost can never make `deleted`);
 * - no device that revoker's call removed is recorded `not_found` (it is `deleted`, or `gone` when
 *   the answer was lost), nor `cancelled` by a cancel that came after that call;
 * - a `cancelled` record without evidence was written before any delete of the device was applied
 *   (no call of revoker's can have changed it);
 * - `gone` only where an earlier call's answer was lost: the emulator saw at least two calls —
 *   or, where workers were SIGKILLed (`workersKilled`), at least one: a worker killed between
 *   writing its call intent and sending the request leaves an intent whose call never arrived,
 *   which revoker cannot tell from one that was applied.
 */
import type { CallRecord } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';

/** Options of `invariantViolations`. */
export interface InvariantOptions {
  /** Workers were SIGKILLed during the scenario (see the module comment on `gone`). */
  workersKilled?: boolean;
}

/** Returns every violated invariant of one batch, as sentences (empty when all hold). */
export async function invariantViolations(context: Context, batchId: string, calls: CallRecord[], deviceSns: Set<string>, options: InvariantOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  const batch = await context.batches.get(batchId);
  if (batch === null) return [`batch ${batchId} not found`];
  const records = new Map<string, ResultRecord>();
  for await (const raw of context.results.scan(batchId)) {
    const record = raw as ResultRecord;
    if (records.has(record.deviceSn)) problems.push(`${record.deviceSn} has two records`);
    records.set(record.deviceSn, record);
    if ((record.outcome as string) === 'pending') problems.push(`${record.deviceSn} has no terminal record`);
    else if (record.evidence === undefined) problems.push(`${record.deviceSn} has no evidence`);
  }
  if (records.size !== batch.accepted) problems.push(`${records.size} records for ${batch.accepted} accepted devices`);
  const counted = new Map<string, number>();
  for (const record of records.values()) counted.set(record.outcome, (counted.get(record.outcome) ?? 0) + 1);
  for (const [outcome, count] of Object.entries(batch.counts)) {
    if ((counted.get(outcome) ?? 0) !== count) problems.push(`counter ${outcome}=${count} but ${counted.get(outcome) ?? 0} records`);
  }
  const terminal = [...records.values()].filter((record) => (record.outcome as string) !== 'pending').length;
  if (batch.done !== terminal) problems.push(`done=${batch.done} but ${terminal} terminal records`);

  const appliedDeletes = new Map<string, number>();
  for (const call of calls) {
    if (!call.applied || call.action !== 'DeleteDeviceCertificate' || !deviceSns.has(call.deviceSn)) continue;
    if (!appliedDeletes.has(call.deviceSn)) appliedDeletes.set(call.deviceSn, call.atMs);
  }
  // A call whose answer the client never used: an injected fault, or an answer slower than the
  // client's timeout (the emulator logs it as answered). Either way the emulator saw an earlier call.
  const callsPerDevice = new Map<string, number>();
  for (const call of calls) if (call.deviceSn !== '') callsPerDevice.set(call.deviceSn, (callsPerDevice.get(call.deviceSn) ?? 0) + 1);
  const goneNeeds = options.workersKilled === true ? 1 : 2;
  for (const record of records.values()) {
    if (record.outcome === 'deleted' && !appliedDeletes.has(record.deviceSn)) problems.push(`${record.deviceSn} recorded deleted without an applied delete`);
    if (record.outcome === 'gone' && (callsPerDevice.get(record.deviceSn) ?? 0) < goneNeeds) problems.push(`${record.deviceSn} recorded gone without a call whose answer was lost`);
    const deletedAt = appliedDeletes.get(record.deviceSn);
    if (record.outcome === 'cancelled' && record.evidence === 'none' && deletedAt !== undefined && deletedAt < Date.parse(record.finishedAt)) {
      problems.push(`${record.deviceSn} recorded cancelled although a delete was applied before`);
    }
  }
  for (const [deviceSn, atMs] of appliedDeletes) {
    const record = records.get(deviceSn);
    const outcome = record?.outcome;
    if (outcome === 'deleted' || outcome === 'gone') continue;
    // Cancelled (and left the revocation) before another batch's job deleted it: true when written.
    if (outcome === 'cancelled' && record !== undefined && Date.parse(record.finishedAt) <= atMs) continue;
    problems.push(`${deviceSn} was deleted by the API but recorded ${outcome ?? 'nowhere'}`);
  }
  return problems;
}
