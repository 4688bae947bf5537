/**
 * The soak's invariants (issue 11, "Show"), checked against what the emulator knows rather than
 * what revoker says about itself: the emulator's log of every call (which device each delete
 * removed, by which request id, which answers carried a fault), the devices registered before
 * the run (the soak's own snapshot) and the devices still registered after it.
 *
 * Pure: the soak collects the inputs, `checkInvariants` judges them. Every invariant reports how
 * many records (or batches) it looked at, so that one that looked at nothing cannot pass unseen,
 * and test/reliability/soak-invariants.test.ts plants a violation of each to show it is caught.
 *
 * Times: emulator call times are its arrival clock, registration windows the soak's clock and
 * `finishedAt` the worker's: one machine, one system clock. No invariant depends on how fast
 * anything ran; a time only orders two events that are causally ordered already.
 */
import type { CallRecord } from '../../src/emulator/index.js';
import type { OutboxEntry } from '../../src/events/batch-event.js';
import { OUTCOMES, type PendingRecord, type ResultRecord } from '../../src/results/result-record.js';

/** When a batch's REGISTER of one device ran: after `startMs`, and answered before `endMs`. */
export interface RegistrationWindow {
  startMs: number;
  endMs: number;
}

/** A producer's progress report: REGISTER had answered for the first `registered` devices at `atMs`. */
export interface RegisterMark {
  registered: number;
  atMs: number;
}

/**
 * When each device (in input order) was registered, from the producer's progress reports.
 * REGISTERs run in input order, so device i was registered before the first report with
 * `registered > i`: a firm bound, which the invariants rely on. Its REGISTER was answered after the
 * last report with `registered <= i`; it may have run a little earlier (the answer on its way), so
 * the start only sorts calls into "before the batch asked" and "undecidable". A device no report
 * covers ends when the producer ended (`endedAtMs`), or never.
 */
export function registrationWindows(deviceSns: readonly string[], marks: readonly RegisterMark[], endedAtMs: number | null): Map<string, RegistrationWindow> {
  const ordered = [...marks].sort((a, b) => a.atMs - b.atMs);
  const windows = new Map<string, RegistrationWindow>();
  let before = 0;
  let after = 0;
  deviceSns.forEach((deviceSn, index) => {
    while (before + 1 < ordered.length && (ordered[before + 1]?.registered ?? 0) <= index) before += 1;
    while (after < ordered.length && (ordered[after]?.registered ?? 0) <= index) after += 1;
    windows.set(deviceSn, { startMs: ordered[before]?.atMs ?? 0, endMs: ordered[after]?.atMs ?? endedAtMs ?? Number.POSITIVE_INFINITY });
  });
  return windows;
}

/** One batch as the soak saw it. */
export interface SoakBatch {
  batchId: string;
  name: string;
  /** The batch hash after the run. */
  state: string;
  accepted: number;
  done: number;
  counts: Record<string, number>;
  finishedAt: string | null;
  /** The devices the soak asked for, each once (a producer stopped by a cancel: those it registered). */
  deviceSns: readonly string[];
  /** What its producer reported accepted (null if it failed): the batch must hold as many. */
  reportedAccepted: number | null;
  /** When each device was registered into the batch. */
  windows: ReadonlyMap<string, RegistrationWindow>;
  /** Every record of the batch (pending placeholders included, if any remain). */
  records: readonly (ResultRecord | PendingRecord)[];
  /** Its completion events (outbox, processing list and events queue together). */
  events: readonly OutboxEntry[];
  /** The state it must end in. */
  expectedState: 'completed' | 'cancelled';
  /** Pause transitions it went through (by the soak, or seen by it). */
  pauses: number;
  /**
   * When the first dead-letter redrive started (ms), or null if none ran: a redrive reopens
   * completed batches, and each reopened batch completes again (one more event, legitimately).
   */
  redriveStartedAtMs: number | null;
  /** `failed` records of the batch just before the redrives: at most this many reopenings. */
  failedBeforeRedrive: number;
}

/** What the emulator and the soak know about the devices. */
export interface SoakWorld {
  /** Every call the emulator answered (or deliberately did not), in any order. */
  calls: readonly CallRecord[];
  /** Devices registered before the first batch started. */
  registered: ReadonlySet<string>;
  /** Devices never registered. */
  never: ReadonlySet<string>;
  /** Devices still registered after the run. */
  stillRegistered: ReadonlySet<string>;
  /**
   * Devices whose job was active when a worker was SIGKILLed or Redis crashed: a call intent may
   * have been written for a call that was never sent (revoker cannot tell it from a sent call).
   */
  inFlightAtKill: ReadonlySet<string>;
  /**
   * When Redis was SIGKILLed (ms). Workers then mark their calls of the last 30 s (CallJournal) as
   * having an unknown result: a revocation that runs again after the crash takes "not registered"
   * for `gone` if it had a call in that window, by design (its trace may be in the lost second).
   */
  redisCrashesAtMs: readonly number[];
}

/** The call journal keeps a call 30 s after it ended (CallJournal); calls last up to MQTT_API_TIMEOUT_MS, and the check waits for the reconnect. */
export const CALL_JOURNAL_WINDOW_MS = 30_000 + 10_000;

/** One invariant's verdict. */
export interface InvariantResult {
  name: string;
  /** Records (or batches) it looked at. */
  checked: number;
  violations: string[];
  /** What the checked records rest on, e.g. why each `gone` is `gone` (for the summary). */
  notes: Record<string, number>;
}

/** The invariants, in the order the summary prints them. */
export const INVARIANT_NAMES = {
  oneRecord: 'one terminal record per (batch, device), with evidence',
  counters: 'batch counters equal records',
  deleted: 'every deleted backed by an applied call (or the snapshot)',
  notFound: "no not_found for a certificate revoker's call removed",
  gone: "gone only where a call's answer was lost",
  never: 'never-registered devices never deleted/inactivated',
  cancelled: "cancelled only if no call of the batch's changed the certificate",
  oneAnswer: 'one call, one outcome in every batch it served',
  nothingLeft: 'no device a running batch asked for left registered',
  events: 'one completion event per batch transition',
} as const;

const REVOKE_ACTIONS = new Set(['DeleteDeviceCertificate', 'InactivateDeviceCertificate']);
const NOT_REGISTERED = 'FindDeviceBySnError';
/** 5xx answers that are definite (classify.ts): nothing was applied, and the client knows it. */
const DEFINITE_5XX = new Set(['MqttInstanceNotFound', 'MqttOwnerCheckError', 'FindDeviceBySnError', 'FindCaBySnError']);
/** Faults after which the client cannot know whether the call was applied. */
const UNCERTAIN_FAULTS = new Set(['timeout', 'timeout_before_apply', 'drop', 'drop_after_apply', 'nonjson']);

function isFinal(record: ResultRecord | PendingRecord): record is ResultRecord {
  return (OUTCOMES as readonly string[]).includes(record.outcome);
}

/** Calls per device (ordered by arrival) and by request id. */
class CallIndex {
  readonly byDevice = new Map<string, CallRecord[]>();
  readonly byRequestId = new Map<string, CallRecord>();

  constructor(calls: readonly CallRecord[]) {
    for (const call of calls) {
      if (call.requestId !== '') this.byRequestId.set(call.requestId, call);
      if (call.deviceSn === '') continue;
      const list = this.byDevice.get(call.deviceSn) ?? [];
      list.push(call);
      this.byDevice.set(call.deviceSn, list);
    }
    for (const list of this.byDevice.values()) list.sort((a, b) => a.atMs - b.atMs);
  }

  of(deviceSn: string): CallRecord[] {
    return this.byDevice.get(deviceSn) ?? [];
  }

  /** Revocation calls of the device that were applied (the certificate was removed or inactivated by it). */
  applied(deviceSn: string): CallRecord[] {
    return this.of(deviceSn).filter((call) => call.applied && REVOKE_ACTIONS.has(call.action));
  }
}

function result(name: string): InvariantResult {
  return { name, checked: 0, violations: [], notes: {} };
}

function note(target: InvariantResult, key: string): void {
  target.notes[key] = (target.notes[key] ?? 0) + 1;
}

/** Checks every invariant over the batches of one run. */
export function checkInvariants(batches: readonly SoakBatch[], world: SoakWorld): InvariantResult[] {
  const calls = new CallIndex(world.calls);
  // Request ids that some record carries: an answer that reached the ledger.
  const usedRequestIds = new Set<string>();
  for (const batch of batches) for (const record of batch.records) if (isFinal(record) && record.requestId !== null) usedRequestIds.add(record.requestId);

  const oneRecord = result(INVARIANT_NAMES.oneRecord);
  const counters = result(INVARIANT_NAMES.counters);
  const deleted = result(INVARIANT_NAMES.deleted);
  const notFound = result(INVARIANT_NAMES.notFound);
  const gone = result(INVARIANT_NAMES.gone);
  const never = result(INVARIANT_NAMES.never);
  const cancelled = result(INVARIANT_NAMES.cancelled);
  const oneAnswer = result(INVARIANT_NAMES.oneAnswer);
  const nothingLeft = result(INVARIANT_NAMES.nothingLeft);
  const events = result(INVARIANT_NAMES.events);

  /** The answer a record rests on: the call with its request id, for the same device. */
  const decidingCall = (batch: SoakBatch, record: ResultRecord, target: InvariantResult, code: string, actions: ReadonlySet<string>): CallRecord | null => {
    const call = record.requestId === null ? undefined : calls.byRequestId.get(record.requestId);
    if (call === undefined || call.deviceSn !== record.deviceSn || call.code !== code || !actions.has(call.action)) {
      target.violations.push(`${batch.name}: ${record.deviceSn} ${record.outcome}/${record.evidence ?? '-'} rests on request ${record.requestId ?? 'none'}, which the emulator answered ${call === undefined ? 'never' : `${call.action} ${call.code} for ${call.deviceSn}`}`);
      return null;
    }
    return call;
  };

  /** Why a call's answer may not have reached revoker, or null if it certainly did. */
  const lostBecause = (call: CallRecord): string | null => {
    if (UNCERTAIN_FAULTS.has(call.fault)) return `fault ${call.fault}`;
    if (call.httpStatus >= 500 && !DEFINITE_5XX.has(call.code)) return `answer ${call.code} (${call.httpStatus})`;
    if ((call.code === 'OK' || call.code === NOT_REGISTERED) && !usedRequestIds.has(call.requestId)) return 'answer that no record carries (client timeout, worker killed or Redis crashed before the record)';
    return null;
  };

  const answers = new Map<string, { outcome: string; where: string }>();
  for (const batch of batches) {
    // 1. One terminal record per (batch, device), with evidence.
    oneRecord.checked += batch.deviceSns.length;
    const asked = new Set(batch.deviceSns);
    const byDevice = new Map<string, ResultRecord>();
    for (const record of batch.records) {
      if (!asked.has(record.deviceSn)) oneRecord.violations.push(`${batch.name}: a record for ${record.deviceSn}, which it never asked for`);
      if (record.batchId !== batch.batchId) oneRecord.violations.push(`${batch.name}: ${record.deviceSn}'s record names batch ${record.batchId}`);
      if (byDevice.has(record.deviceSn)) oneRecord.violations.push(`${batch.name}: ${record.deviceSn} has two records`);
      if (!isFinal(record)) {
        oneRecord.violations.push(`${batch.name}: ${record.deviceSn} has no terminal record (${record.outcome})`);
        continue;
      }
      if (record.evidence === undefined) oneRecord.violations.push(`${batch.name}: ${record.deviceSn} ${record.outcome} has no evidence`);
      byDevice.set(record.deviceSn, record);
    }
    const withRecord = new Set(batch.records.map((record) => record.deviceSn));
    for (const deviceSn of batch.deviceSns) if (!withRecord.has(deviceSn)) oneRecord.violations.push(`${batch.name}: ${deviceSn} has no record at all`);
    if (batch.accepted !== batch.deviceSns.length) oneRecord.violations.push(`${batch.name}: accepted=${batch.accepted} for ${batch.deviceSns.length} devices asked for`);
    if (batch.reportedAccepted !== batch.accepted) oneRecord.violations.push(`${batch.name}: its producer reported ${batch.reportedAccepted ?? 'nothing (it failed)'} accepted, the batch holds ${batch.accepted}`);
    if (batch.state !== batch.expectedState || batch.finishedAt === null) oneRecord.violations.push(`${batch.name}: ended ${batch.state}${batch.finishedAt === null ? ' (not finished)' : ''}, expected ${batch.expectedState}`);

    // 2. Counters equal records.
    const counted = new Map<string, number>();
    for (const record of byDevice.values()) counted.set(record.outcome, (counted.get(record.outcome) ?? 0) + 1);
    for (const outcome of new Set([...OUTCOMES, ...Object.keys(batch.counts)])) {
      counters.checked += 1;
      const counter = batch.counts[outcome] ?? 0;
      if (counter !== (counted.get(outcome) ?? 0)) counters.violations.push(`${batch.name}: counter ${outcome}=${counter} but ${counted.get(outcome) ?? 0} records`);
    }
    counters.checked += 1;
    if (batch.done !== byDevice.size) counters.violations.push(`${batch.name}: done=${batch.done} but ${byDevice.size} terminal records`);

    for (const record of byDevice.values()) {
      const d = record.deviceSn;
      const evidence = record.evidence ?? '-';
      const window = batch.windows.get(d);
      const tag = `${batch.name}: ${d} ${record.outcome}/${evidence}`;

      // 6. Never-registered devices are never deleted or inactivated.
      if (world.never.has(d)) {
        never.checked += 1;
        if (record.outcome === 'deleted' || record.outcome === 'inactivated') never.violations.push(`${tag}, but it was never registered`);
      }

      // 8. One call, one outcome: every batch a call served records the same outcome from it.
      if (evidence === 'answer' && record.requestId !== null && record.outcome !== 'failed' && record.outcome !== 'cancelled') {
        oneAnswer.checked += 1;
        const seen = answers.get(record.requestId);
        if (seen === undefined) answers.set(record.requestId, { outcome: record.outcome, where: batch.name });
        else if (seen.outcome !== record.outcome) oneAnswer.violations.push(`${tag}, but ${seen.where} recorded ${seen.outcome} from the same answer ${record.requestId}`);
      }

      switch (record.outcome) {
        case 'deleted':
        case 'inactivated': {
          // 3. Backed by an applied call (its own answer), or by the snapshot.
          deleted.checked += 1;
          const action = record.outcome === 'deleted' ? 'DeleteDeviceCertificate' : 'InactivateDeviceCertificate';
          if (evidence === 'answer') {
            const call = decidingCall(batch, record, deleted, 'OK', new Set([action]));
            if (call !== null && !call.applied) deleted.violations.push(`${tag}: its call ${call.requestId} was not applied`);
            if (call !== null) note(deleted, 'its own successful call');
          } else if (evidence === 'snapshot' || (evidence === 'read' && record.outcome === 'inactivated')) {
            if (!world.registered.has(d) || !calls.applied(d).some((call) => call.action === action)) deleted.violations.push(`${tag}, but no ${action} of a registered certificate was applied`);
            else note(deleted, `${evidence} and an applied call`);
          } else {
            deleted.violations.push(`${tag}: evidence ${evidence} cannot make ${record.outcome}`);
          }
          break;
        }
        case 'not_found': {
          // 4. No not_found for a certificate revoker's call removed.
          notFound.checked += 1;
          if (evidence === 'snapshot') {
            if (world.registered.has(d)) notFound.violations.push(`${tag}, but it was registered before the run`);
            break;
          }
          const call = evidence === 'answer' ? decidingCall(batch, record, notFound, NOT_REGISTERED, REVOKE_ACTIONS) : null;
          if (evidence !== 'answer') notFound.violations.push(`${tag}: evidence ${evidence} cannot make not_found`);
          if (call === null || window === undefined) break;
          for (const applied of calls.applied(d)) {
            if (applied.atMs >= call.atMs) continue;
            // Applied after the batch asked for the device (its REGISTER had answered) and before
            // the "not registered" answer: that call was made for this batch's revocation.
            if (applied.atMs > window.endMs) notFound.violations.push(`${tag}, but ${applied.action} ${applied.requestId} (fault ${applied.fault}) removed it after the batch asked for it and before the answer`);
            else if (applied.atMs >= window.startMs) note(notFound, 'removed while the batch was registering it (undecidable, not counted)');
            else note(notFound, 'removed by an earlier batch before this one asked');
          }
          if (calls.applied(d).length === 0) note(notFound, world.never.has(d) ? 'never registered' : 'not registered (no applied call)');
          break;
        }
        case 'gone': {
          // 5. Gone only where a call's answer was lost.
          gone.checked += 1;
          const actions = evidence === 'read' ? new Set(['GetDeviceCertificate']) : REVOKE_ACTIONS;
          if (evidence !== 'answer' && evidence !== 'read') {
            gone.violations.push(`${tag}: evidence ${evidence} cannot make gone`);
            break;
          }
          const call = decidingCall(batch, record, gone, NOT_REGISTERED, actions);
          if (call === null) break;
          const earlier = calls.of(d).filter((other) => other.requestId !== call.requestId && other.atMs <= call.atMs && REVOKE_ACTIONS.has(other.action));
          const lost = earlier.map(lostBecause).find((why) => why !== null);
          if (lost !== undefined) note(gone, lost.startsWith('fault') || lost.startsWith('answer ') ? 'an earlier call with a fault or an uncertain answer' : 'an earlier answer that never reached the ledger');
          else if (world.inFlightAtKill.has(d)) note(gone, 'its job was in flight at a worker kill or the Redis crash');
          else if (world.redisCrashesAtMs.some((crashAtMs) => call.atMs > crashAtMs && earlier.some((other) => other.atMs <= crashAtMs && other.atMs >= crashAtMs - CALL_JOURNAL_WINDOW_MS))) note(gone, 'a call in the call journal before the Redis crash, decided after it');
          else gone.violations.push(`${tag}: no earlier call's answer was lost (${earlier.length} earlier calls: ${earlier.map((other) => `${other.code}/${other.fault}`).join(', ') || 'none'}) and its job was not in flight at a kill nor called just before a Redis crash`);
          break;
        }
        case 'cancelled': {
          // 7. Cancelled only where no call made for the batch changed the certificate.
          cancelled.checked += 1;
          if (evidence === 'read') {
            const call = decidingCall(batch, record, cancelled, 'OK', new Set(['GetDeviceCertificate']));
            if (call !== null) note(cancelled, 'a read showed it registered');
          } else if (evidence === 'none') {
            const finishedAtMs = Date.parse(record.finishedAt);
            const changed = window === undefined ? [] : calls.applied(d).filter((applied) => applied.atMs > window.endMs && applied.atMs < finishedAtMs);
            for (const applied of changed) cancelled.violations.push(`${tag}, but ${applied.action} ${applied.requestId} (fault ${applied.fault}) removed it while the batch was subscribed`);
            if (changed.length === 0) note(cancelled, 'left its revocation before any applied call');
          } else {
            cancelled.violations.push(`${tag}: evidence ${evidence} cannot make cancelled`);
          }
          break;
        }
        case 'failed':
          break;
      }

      // 9. Nothing left behind: a certificate a batch that ran to the end asked for is gone,
      // unless dead-lettered; and nothing still registered is recorded as revoked.
      if (world.registered.has(d) && batch.expectedState === 'completed') {
        nothingLeft.checked += 1;
        if (world.stillRegistered.has(d) && record.outcome !== 'failed') nothingLeft.violations.push(`${tag}, but it is still registered`);
      } else if (world.stillRegistered.has(d) && ['deleted', 'not_found', 'gone'].includes(record.outcome)) {
        nothingLeft.checked += 1;
        nothingLeft.violations.push(`${tag}, but it is still registered`);
      }
    }

    // 10. One completion event per batch transition.
    events.checked += 1;
    const bySeq = new Map<number, OutboxEntry>();
    for (const event of batch.events) {
      const seen = bySeq.get(event.seq);
      if (seen !== undefined && (seen.state !== event.state || seen.at !== event.at)) events.violations.push(`${batch.name}: event #${event.seq} exists twice (${seen.state} at ${seen.at}, ${event.state} at ${event.at})`);
      bySeq.set(event.seq, event);
    }
    const ordered = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    const terminal = ordered.filter((event) => event.state === 'completed' || event.state === 'cancelled');
    const paused = ordered.filter((event) => event.state === 'paused');
    for (const event of terminal) if (event.state !== batch.expectedState) events.violations.push(`${batch.name}: a ${event.state} event (#${event.seq}), but it ended ${batch.expectedState}`);
    const redriveAt = batch.redriveStartedAtMs ?? Number.POSITIVE_INFINITY;
    const before = terminal.filter((event) => Date.parse(event.at) < redriveAt);
    const after = terminal.filter((event) => Date.parse(event.at) >= redriveAt);
    if (before.length !== 1) events.violations.push(`${batch.name}: ${before.length} ${batch.expectedState} events before any redrive (${before.map((event) => `#${event.seq} ${event.at}`).join(', ')}), expected 1`);
    if (after.length > batch.failedBeforeRedrive) events.violations.push(`${batch.name}: ${after.length} ${batch.expectedState} events after the redrive reopened at most ${batch.failedBeforeRedrive} records`);
    if (terminal.at(-1)?.at !== batch.finishedAt) events.violations.push(`${batch.name}: the last ${batch.expectedState} event is at ${terminal.at(-1)?.at ?? 'none'}, the batch finished at ${batch.finishedAt ?? 'never'}`);
    if (paused.length !== batch.pauses) events.violations.push(`${batch.name}: ${paused.length} paused events for ${batch.pauses} pauses`);
    events.notes[`${batch.name}: ${ordered.map((event) => event.state).join(' → ') || 'none'}`] = ordered.length;
  }

  // Sanity of the emulator itself: a never-registered certificate cannot have been removed.
  for (const deviceSn of world.never) if (calls.applied(deviceSn).length > 0) never.violations.push(`the emulator applied a revocation of never-registered ${deviceSn}`);

  return [oneRecord, counters, deleted, notFound, gone, never, cancelled, oneAnswer, nothingLeft, events];
}
