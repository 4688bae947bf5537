/**
 * `--verify`: every device of a batch that asked for it is read back after its revocation, and
 * the record keeps what the read saw, its time and its RequestId. Batches that did not ask make
 * no reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';
import { readBack } from '../../src/worker/read-back.js';
import type { RateGate } from '../../src/limiter/rate-gate.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-readback01';
const CA = 'ca0000000readback1';

describe('--verify: read back after the revocation', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;

  beforeAll(async () => {
    pipeline = await startPipeline('readback', { emulator: { latency: { medianMs: 2, p99Ms: 10 } }, env: { RATE_LIMIT_PER_SECOND: '200' } });
    ({ emulator, context } = pipeline);
  });

  afterAll(() => pipeline?.close());

  async function run(devices: { mqttInstanceId: string; caSn: string; deviceSn: string }[], action: 'delete' | 'inactivate', verify: boolean): Promise<Map<string, ResultRecord>> {
    const batchId = await context.batches.create({ name: 'read-back', source: 'csv', action, createdBy: 'test', verify });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(
      batchId,
      action,
      devices.map((device, index) => ({ kind: 'device', request: { ...device, line: index + 2 } })),
    );
    await waitFor(async () => (await context.batches.get(batchId))?.state === 'completed', 'the batch to complete', 60_000);
    const records = new Map<string, ResultRecord>();
    for await (const record of context.results.scan(batchId)) records.set(record.deviceSn, record as ResultRecord);
    return records;
  }

  const reads = () => Object.values(emulator.stats().byAction.GetDeviceCertificate ?? {}).reduce((sum, count) => sum + count, 0);

  it('records absent after a delete and inactive after an inactivate, with the read time and RequestId', async () => {
    const deleted = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 12, prefix: 'rbdel' });
    const never = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 3, prefix: 'rbnever' });
    const inactivated = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 5, prefix: 'rbinact' });
    for (const device of [...deleted, ...inactivated]) emulator.registry.addDevice(device);
    const readsBefore = reads();

    const records = await run([...deleted, ...never], 'delete', true);
    for (const device of deleted) {
      const record = records.get(device.deviceSn)!;
      expect(record).toMatchObject({ outcome: 'deleted', verification: 'absent' });
      expect(typeof record.verifyRequestId).toBe('string');
      expect(Date.parse(record.verifiedAt!)).toBeGreaterThanOrEqual(Date.parse(record.firstAttemptAt!));
      expect(record.verifyRequestId).not.toBe(record.requestId);
    }
    for (const device of never) expect(records.get(device.deviceSn)).toMatchObject({ outcome: 'not_found', verification: 'absent' });
    expect(reads() - readsBefore).toBe(15);

    const inactive = await run(inactivated, 'inactivate', true);
    for (const device of inactivated) expect(inactive.get(device.deviceSn)).toMatchObject({ outcome: 'inactivated', verification: 'inactive' });
  });

  it('makes no reads for a batch without --verify', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 6, prefix: 'rbplain' });
    for (const device of devices) emulator.registry.addDevice(device);
    const readsBefore = reads();
    const records = await run(devices, 'delete', false);
    expect(reads()).toBe(readsBefore);
    for (const device of devices) expect(records.get(device.deviceSn)?.verification).toBeUndefined();
  });
});

describe('readBack', () => {
  const gate = { acquire: () => Promise.resolve({ confirm: () => Promise.resolve() }) } as unknown as RateGate;
  const device = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'd1' };
  const answer = (status: string) => ({ getDevice: () => Promise.resolve({ requestId: 'req-1', body: { Data: { Status: status } } }) });
  const failing = (code: string, httpStatus: number) => {
    let calls = 0;
    return {
      calls: () => calls,
      getDevice: () => {
        calls += 1;
        return Promise.reject(Object.assign(new Error(code), { code, statusCode: httpStatus, data: { Code: code, RequestId: `req-${calls}` } }));
      },
    };
  };
  const options = { tries: 3, retry: { baseMs: 1, maxMs: 2 } };

  it('says registered when a deleted certificate is there again, active or inactive after an inactivate', async () => {
    expect(await readBack(answer('1'), gate, device, 'delete', options)).toMatchObject({ verification: 'registered', verifyRequestId: 'req-1' });
    expect(await readBack(answer('1'), gate, device, 'inactivate', options)).toMatchObject({ verification: 'active' });
    expect(await readBack(answer('0'), gate, device, 'inactivate', options)).toMatchObject({ verification: 'inactive' });
  });

  it('says unreadable after the reads keep failing, and absent on FindDeviceBySnError', async () => {
    const down = failing('ServiceUnavailable', 503);
    expect(await readBack(down, gate, device, 'delete', options)).toMatchObject({ verification: 'unreadable' });
    expect(down.calls()).toBe(3);
    expect(await readBack(failing('FindDeviceBySnError', 500), gate, device, 'delete', options)).toMatchObject({ verification: 'absent' });
  });
});
