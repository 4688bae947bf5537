/**
 * The pipeline end to end in one process: real Redis, the emulator through the real SDK, the
 * real worker. Every kind of outcome lands in the right record, dead letter and counter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Context } from '../../src/runtime/context.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { enqueueDevices, startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-outcomes01';
const CA = 'ca00000000outcomes';

describe('revocation outcomes', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;

  beforeAll(async () => {
    pipeline = await startPipeline('outcomes', { emulator: { latency: { medianMs: 2, p99Ms: 10 } }, env: { RATE_LIMIT_PER_SECOND: '200', MAX_ATTEMPTS: '3', MQTT_API_TIMEOUT_MS: '300' } });
    ({ emulator, context } = pipeline);
  });

  afterAll(() => pipeline?.close());

  async function records(batchId: string): Promise<Map<string, ResultRecord>> {
    const out = new Map<string, ResultRecord>();
    for await (const record of context.results.scan(batchId)) out.set(record.deviceSn, record as ResultRecord);
    return out;
  }

  it('records each device with the outcome the API gave, dead-letters with history, and redrives', async () => {
    const registered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 60, prefix: 'outcomes' });
    for (const device of registered) emulator.registry.addDevice(device);
    const missing = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 5, prefix: 'missing' });
    const [flaky, timedOut, brokenParam, exhausted, lostReply, lostThenExhausted] = registered.map((device) => device.deviceSn);
    emulator.script(flaky!, [{ code: 'ServiceUnavailable', httpStatus: 503 }, { code: 'InternalError', httpStatus: 500 }]);
    // The delete happens but the answer never arrives; the retry finds nothing. Without an existence
    // snapshot nothing says whether it was there before that call: `gone`, never `deleted`.
    emulator.script(timedOut!, ['timeout']);
    emulator.script(brokenParam!, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);
    emulator.script(exhausted!, [
      { code: 'ServiceUnavailable', httpStatus: 503 },
      { code: 'ServiceUnavailable', httpStatus: 503 },
      { code: 'ServiceUnavailable', httpStatus: 503 },
    ]);
    emulator.script(lostReply!, ['drop_after_apply']);
    emulator.script(lostThenExhausted!, ['timeout', { code: 'ServiceUnavailable', httpStatus: 503 }, { code: 'ServiceUnavailable', httpStatus: 503 }]);

    const batchId = await enqueueDevices(context, [...registered, ...missing, registered[10]!]);
    const batch = await waitFor(async () => {
      const current = await context.batches.get(batchId);
      return current?.state === 'completed' ? current : null;
    }, 'the batch to complete');

    expect(batch.accepted).toBe(65);
    expect(batch.duplicates).toBe(1);
    const byDevice = await records(batchId);
    if (process.env.DEBUG_TEST) console.log(JSON.stringify([byDevice.get(timedOut!), byDevice.get(lostReply!)], null, 1));
    expect(batch.counts).toEqual({ deleted: 55, inactivated: 0, not_found: 5, gone: 2, failed: 3, cancelled: 0 });
    expect(byDevice.size).toBe(65);
    expect(byDevice.get(flaky!)).toMatchObject({ outcome: 'deleted', attempts: 3, errorCode: null });
    expect(byDevice.get(flaky!)?.evidence).toBe('answer');
    expect(byDevice.get(timedOut!)).toMatchObject({ outcome: 'gone', evidence: 'answer', errorCode: 'FindDeviceBySnError' });
    expect(byDevice.get(timedOut!)?.message).toMatch(/answer was lost/);
    expect(byDevice.get(lostReply!)).toMatchObject({ outcome: 'gone', evidence: 'answer' });
    expect(byDevice.get(brokenParam!)).toMatchObject({ outcome: 'failed', errorCode: 'ParameterFieldCheckFailed', httpStatus: 400, attempts: 1 });
    expect(byDevice.get(exhausted!)).toMatchObject({ outcome: 'failed', errorCode: 'ServiceUnavailable', attempts: 3 });
    for (const device of missing) expect(byDevice.get(device.deviceSn)).toMatchObject({ outcome: 'not_found', attempts: 1 });
    // Every `deleted` record matches a call the emulator applied; nothing registered remains but the failures.
    const applied = new Set(emulator.calls().filter((call) => call.applied).map((call) => call.deviceSn));
    for (const record of byDevice.values()) if (record.outcome === 'deleted') expect(applied.has(record.deviceSn)).toBe(true);
    expect(emulator.registry.has(INSTANCE, CA, brokenParam!)).toBe(true);

    const letters = await context.deadLetters.list(batchId);
    expect(letters.map((letter) => letter.deviceSn).sort()).toEqual([brokenParam!, exhausted!, lostThenExhausted!].sort());
    const exhaustedLetter = letters.find((letter) => letter.deviceSn === exhausted)!;
    expect(exhaustedLetter.history.map((entry) => [entry.code, entry.httpStatus])).toEqual([
      ['ServiceUnavailable', 503],
      ['ServiceUnavailable', 503],
      ['ServiceUnavailable', 503],
    ]);
    expect(exhaustedLetter.history.every((entry) => typeof entry.requestId === 'string')).toBe(true);

    // Redrive: all three go back with fresh attempts; the emulator now answers normally.
    const summary = await context.deadLetters.redrive(batchId);
    expect(summary.redriven).toBe(3);
    const after = await waitFor(async () => {
      const current = await context.batches.get(batchId);
      return current?.state === 'completed' && current.counts.failed === 0 ? current : null;
    }, 'the redriven devices to finish');
    expect(after.counts).toEqual({ deleted: 57, inactivated: 0, not_found: 5, gone: 3, failed: 0, cancelled: 0 });
    expect(await context.deadLetters.count()).toBe(0);
    expect((await records(batchId)).get(exhausted!)).toMatchObject({ outcome: 'deleted', attempts: 1 });
    // Redrive keeps the history: the lost answer before the dead letter still decides that
    // "not registered" after the redrive is `gone` (that call removed it), never `not_found`.
    expect((await records(batchId)).get(lostThenExhausted!)).toMatchObject({ outcome: 'gone', evidence: 'answer', attempts: 1 });
  });
});
