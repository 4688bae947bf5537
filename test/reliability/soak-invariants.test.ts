/**
 * The soak's invariant checker (scripts/bench/soak-invariants.ts) on small hand-made runs: a clean
 * run passes every invariant and each invariant looks at something; each planted violation is
 * caught by the invariant it breaks. A soak whose checker could not fail would prove nothing.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants, INVARIANT_NAMES, registrationWindows, type SoakBatch, type SoakWorld } from '../../scripts/bench/soak-invariants.js';
import type { CallRecord } from '../../src/emulator/index.js';
import type { OutboxEntry } from '../../src/events/batch-event.js';
import type { Evidence, Outcome, ResultRecord } from '../../src/results/result-record.js';

const iso = (ms: number) => new Date(ms).toISOString();

function call(deviceSn: string, atMs: number, code: string, options: Partial<CallRecord> = {}): CallRecord {
  return {
    atMs,
    action: 'DeleteDeviceCertificate',
    accessKeyId: 'k',
    sourceIp: '127.0.0.1',
    mqttInstanceId: 'i',
    caSn: 'ca',
    deviceSn,
    httpStatus: code === 'OK' ? 200 : 500,
    code,
    requestId: `req-${deviceSn}-${atMs}`,
    applied: code === 'OK',
    fault: 'none',
    ...options,
  };
}

function record(batchId: string, deviceSn: string, outcome: Outcome, evidence: Evidence, answer: CallRecord | null, finishedAtMs = 5_000): ResultRecord {
  return { batchId, mqttInstanceId: 'i', caSn: 'ca', deviceSn, action: 'delete', outcome, evidence, attempts: 1, requestId: answer?.requestId ?? null, errorCode: null, httpStatus: null, message: null, firstAttemptAt: null, finishedAt: iso(finishedAtMs) };
}

function batch(batchId: string, records: ResultRecord[], options: Partial<SoakBatch> = {}): SoakBatch {
  const counts: Record<string, number> = {};
  for (const one of records) counts[one.outcome] = (counts[one.outcome] ?? 0) + 1;
  const expectedState = options.expectedState ?? 'completed';
  const finishedAt = iso(6_000);
  const events: OutboxEntry[] = [{ batchId, seq: 1, state: expectedState, at: finishedAt }];
  return {
    batchId,
    name: batchId,
    state: expectedState,
    accepted: records.length,
    done: records.length,
    counts,
    finishedAt,
    deviceSns: records.map((one) => one.deviceSn),
    reportedAccepted: records.length,
    // Every device registered between 100 and 500 ms.
    windows: new Map(records.map((one) => [one.deviceSn, { startMs: 100, endMs: 500 }])),
    records,
    events,
    expectedState,
    pauses: 0,
    redriveStartedAtMs: null,
    failedBeforeRedrive: 0,
    ...options,
  };
}

function cleanCalls() {
  return {
    r1: call('r1', 1_000, 'OK'),
    r2lost: call('r2', 1_100, 'OK', { fault: 'timeout' }),
    r2: call('r2', 1_200, 'FindDeviceBySnError'),
    n1: call('n1', 1_300, 'FindDeviceBySnError'),
    r3: call('r3', 1_400, 'OK'),
  };
}

/** A clean run: A revoked r1 (answer), r2 (answer lost, then gone), n1 (never registered), r3; C cancelled r3 before A's call. */
function cleanRun(): { batches: SoakBatch[]; world: SoakWorld; calls: ReturnType<typeof cleanCalls> } {
  const calls = cleanCalls();
  const a = batch('A', [record('A', 'r1', 'deleted', 'answer', calls.r1), record('A', 'r2', 'gone', 'answer', calls.r2), record('A', 'n1', 'not_found', 'answer', calls.n1), record('A', 'r3', 'deleted', 'answer', calls.r3)]);
  const c = batch('C', [record('C', 'r3', 'cancelled', 'none', null, 900)], { expectedState: 'cancelled' });
  const world: SoakWorld = {
    calls: Object.values(calls),
    registered: new Set(['r1', 'r2', 'r3']),
    never: new Set(['n1']),
    stillRegistered: new Set(),
    inFlightAtKill: new Set(),
    redisCrashesAtMs: [],
  };
  return { batches: [a, c], world, calls };
}

function failing(batches: SoakBatch[], world: SoakWorld): Record<string, string[]> {
  return Object.fromEntries(checkInvariants(batches, world).filter((one) => one.violations.length > 0).map((one) => [one.name, one.violations]));
}

describe('the soak invariants', () => {
  it('pass a clean run, each having checked something', () => {
    const { batches, world } = cleanRun();
    const results = checkInvariants(batches, world);
    expect(results.map((one) => one.name)).toEqual(Object.values(INVARIANT_NAMES));
    for (const one of results) {
      expect(one.violations, one.name).toEqual([]);
      expect(one.checked, one.name).toBeGreaterThan(0);
    }
  });

  it('catch a deleted record whose call was not applied, or that rests on another device’s answer', () => {
    const { batches, world, calls } = cleanRun();
    const a = batches[0]!;
    const notApplied = call('r1', 1_000, 'OK', { applied: false, requestId: 'req-unapplied' });
    a.records = [record('A', 'r1', 'deleted', 'answer', notApplied), ...a.records.slice(1)];
    expect(Object.keys(failing(batches, { ...world, calls: [...world.calls, notApplied] }))).toEqual([INVARIANT_NAMES.deleted]);
    a.records = [record('A', 'r1', 'deleted', 'answer', calls.r3), ...a.records.slice(1)];
    expect(Object.keys(failing(batches, world))).toContain(INVARIANT_NAMES.deleted);
  });

  it('catch a never-registered device recorded deleted', () => {
    const { batches, world, calls } = cleanRun();
    batches[0]!.records = batches[0]!.records.map((one) => (one.deviceSn === 'n1' ? record('A', 'n1', 'deleted', 'answer', calls.n1) : one));
    const failed = failing(batches, world);
    expect(failed[INVARIANT_NAMES.never]).toHaveLength(1);
  });

  it('catch not_found after revoker’s own call removed the certificate, but not after an earlier batch did', () => {
    const { batches, world, calls } = cleanRun();
    // B asked for r2 (registered by 1,050 ms); the delete applied at 1,100 was for it; "not registered" at 1,200 cannot be not_found.
    const b = batch('B', [record('B', 'r2', 'not_found', 'answer', calls.r2)], { windows: new Map([['r2', { startMs: 1_000, endMs: 1_050 }]]) });
    const failed = failing([...batches.slice(0, 1), b], world);
    expect(Object.keys(failed)).toContain(INVARIANT_NAMES.notFound);
    // Registered after that delete: a new revocation, and "not registered" is true.
    const late = batch('B', [record('B', 'r2', 'not_found', 'answer', calls.r2)], { windows: new Map([['r2', { startMs: 1_150, endMs: 1_180 }]]) });
    expect(failing([late], world)[INVARIANT_NAMES.notFound]).toBeUndefined();
  });

  it('catch gone without a lost answer, unless the job was in flight at a kill', () => {
    const { batches, world, calls } = cleanRun();
    batches[0]!.records = batches[0]!.records.map((one) => (one.deviceSn === 'n1' ? record('A', 'n1', 'gone', 'answer', calls.n1) : one));
    expect(failing(batches, world)[INVARIANT_NAMES.gone]).toHaveLength(1);
    expect(failing(batches, { ...world, inFlightAtKill: new Set(['n1']) })[INVARIANT_NAMES.gone]).toBeUndefined();
    // An earlier "not registered" answer that no record carries was lost (a timeout on a slow answer, a kill after it).
    const unused = call('n1', 1_250, 'FindDeviceBySnError');
    expect(failing(batches, { ...world, calls: [...world.calls, unused] })[INVARIANT_NAMES.gone]).toBeUndefined();
    // A refused call just before a Redis crash: the call journal marks it unknown, by design; not after the decision.
    const refused = call('n1', 1_000, 'SignatureNonceUsed', { httpStatus: 400 });
    const crashed = { ...world, calls: [...world.calls, refused] };
    expect(failing(batches, crashed)[INVARIANT_NAMES.gone]).toHaveLength(1);
    expect(failing(batches, { ...crashed, redisCrashesAtMs: [1_100] })[INVARIANT_NAMES.gone]).toBeUndefined();
    expect(failing(batches, { ...crashed, redisCrashesAtMs: [1_400] })[INVARIANT_NAMES.gone]).toHaveLength(1);
  });

  it('catch cancelled without evidence after a call made while the batch was subscribed', () => {
    const { batches, world } = cleanRun();
    batches[1]!.records = [record('C', 'r3', 'cancelled', 'none', null, 1_500)];
    expect(failing(batches, world)[INVARIANT_NAMES.cancelled]).toHaveLength(1);
  });

  it('catch counters that differ from the records, a missing or pending record, and a wrong end state', () => {
    const { batches, world } = cleanRun();
    batches[0]!.counts = { ...batches[0]!.counts, deleted: 3 };
    expect(Object.keys(failing(batches, world))).toEqual([INVARIANT_NAMES.counters]);
    const { batches: again } = cleanRun();
    again[0]!.records = again[0]!.records.slice(1);
    expect(Object.keys(failing(again, world))).toContain(INVARIANT_NAMES.oneRecord);
    const { batches: pending } = cleanRun();
    pending[0]!.records = [{ batchId: 'A', mqttInstanceId: 'i', caSn: 'ca', deviceSn: 'r1', action: 'delete', outcome: 'pending' }, ...pending[0]!.records.slice(1)];
    expect(Object.keys(failing(pending, world))).toContain(INVARIANT_NAMES.oneRecord);
    const { batches: open } = cleanRun();
    open[0]!.state = 'running';
    expect(Object.keys(failing(open, world))).toContain(INVARIANT_NAMES.oneRecord);
    // The producer said 5 accepted, the batch holds 4 (a chunk lost in a Redis crash).
    const { batches: lost } = cleanRun();
    lost[0]!.reportedAccepted = 5;
    expect(failing(lost, world)[INVARIANT_NAMES.oneRecord]).toHaveLength(1);
  });

  it('catch one answer recorded as two outcomes', () => {
    const { batches, world, calls } = cleanRun();
    const b = batch('B', [record('B', 'r2', 'not_found', 'answer', calls.r2)], { windows: new Map([['r2', { startMs: 1_150, endMs: 1_180 }]]) });
    expect(failing([...batches, b], world)[INVARIANT_NAMES.oneAnswer]).toHaveLength(1);
  });

  it('catch a device still registered after the run', () => {
    const { batches, world } = cleanRun();
    expect(failing(batches, { ...world, stillRegistered: new Set(['r1']) })[INVARIANT_NAMES.nothingLeft]).toHaveLength(1);
  });

  it('catch a second completion event, a missing one, and pauses without their event', () => {
    const { batches, world } = cleanRun();
    const a = batches[0]!;
    a.events = [...a.events, { batchId: 'A', seq: 2, state: 'completed', at: iso(6_500) }];
    expect(failing(batches, world)[INVARIANT_NAMES.events]).toBeDefined();
    a.events = [];
    expect(failing(batches, world)[INVARIANT_NAMES.events]).toBeDefined();
    const { batches: paused } = cleanRun();
    paused[0]!.pauses = 1;
    expect(failing(paused, world)[INVARIANT_NAMES.events]).toBeDefined();
    // A redrive that reopened a failed record may complete the batch once more.
    const { batches: redriven } = cleanRun();
    redriven[0]!.events = [...redriven[0]!.events, { batchId: 'A', seq: 2, state: 'completed', at: iso(8_000) }];
    redriven[0]!.finishedAt = iso(8_000);
    redriven[0]!.redriveStartedAtMs = 7_000;
    redriven[0]!.failedBeforeRedrive = 1;
    expect(failing(redriven, world)[INVARIANT_NAMES.events]).toBeUndefined();
  });

  it('date each registration from the reports of devices REGISTER answered for, not from what was read', () => {
    // Chunks of two; the reports come after each chunk's jobs were added.
    const windows = registrationWindows(['d0', 'd1', 'd2', 'd3', 'd4'], [{ registered: 0, atMs: 100 }, { registered: 2, atMs: 200 }, { registered: 4, atMs: 300 }], 400);
    expect(windows.get('d0')).toEqual({ startMs: 100, endMs: 200 });
    expect(windows.get('d1')).toEqual({ startMs: 100, endMs: 200 });
    expect(windows.get('d2')).toEqual({ startMs: 200, endMs: 300 });
    // No report covers the last one: the producer's end bounds it.
    expect(windows.get('d4')).toEqual({ startMs: 300, endMs: 400 });
  });
});
