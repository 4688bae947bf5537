/**
 * One device whose worker is SIGKILLed mid-call twelve times in a row (issue 11, symptom 3 and
 * "12 SIGKILLs of workers on one device"). Before the ledger, BullMQ failed the job after its
 * 10th stall: no record, no dead letter, and the job id blocked every later batch naming the
 * device. Now every kill leaves a call intent that the next run counts as an attempt whose answer
 * was lost (bounded by MAX_ATTEMPTS, not by BullMQ's stall limit), and the 13th call decides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { invariantViolations } from '../helpers/invariants.js';
import { enqueueDevices, testConfig, testEnv } from '../helpers/pipeline.js';
import { spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from '../helpers/processes.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

const KILLS = 12;

describe('a worker SIGKILLed mid-call, again and again, on one device', () => {
  const prefix = uniquePrefix('kills');
  let emulator: EmulatorHandle;
  let context: Context;
  let worker: Spawned | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 2, p99Ms: 10 } });
    // The scripted calls hang (never applied) until the worker is killed.
    emulator.setFaults({ timeoutDelayMs: 120_000 });
  });
  afterAll(async () => {
    if (worker !== null) await stopProcess(worker, 'SIGKILL');
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it(`${KILLS} kills during the call: the job is never failed by BullMQ, the 13th call revokes, the record counts every lost answer`, async () => {
    const extra = { RATE_LIMIT_PER_SECOND: '100', MAX_ATTEMPTS: '20', JOB_LOCK_MS: '1000', MQTT_API_TIMEOUT_MS: '60000' };
    const env = testEnv(prefix, emulator, extra);
    context = openContext(testConfig(prefix, emulator, extra), 'test-kills');
    const [device] = generateDevices({ mqttInstanceId: 'mqtt-cn-kills00001', caSn: 'ca00000000kills', count: 1, prefix: 'kills' });
    emulator.registry.addDevice(device!);
    emulator.script(device!.deviceSn, Array.from({ length: KILLS }, () => 'timeout_before_apply' as const));
    const callsOf = () => emulator.calls().filter((call) => call.deviceSn === device!.deviceSn).length;
    const batchId = await enqueueDevices(context, [device!]);

    for (let kill = 1; kill <= KILLS; kill += 1) {
      worker = spawnWorker(env);
      await waitForWorkerStart(worker);
      await waitFor(() => callsOf() >= kill, `call ${kill} to be in flight`, 30_000);
      worker.child.kill('SIGKILL');
      await worker.exited;
      worker = null;
      expect(await context.queue.getFailedCount()).toBe(0);
    }
    worker = spawnWorker(env);
    await waitForWorkerStart(worker);
    const batch = await waitFor(async () => {
      const current = await context.batches.get(batchId);
      return current?.state === 'completed' ? current : null;
    }, 'the batch to complete', 60_000, 100);
    expect(batch.counts).toMatchObject({ deleted: 1, failed: 0 });
    let record: ResultRecord | undefined;
    for await (const found of context.results.scan(batchId)) record = found as ResultRecord;
    // 12 calls whose answers were lost, then the one that was answered.
    expect(record).toMatchObject({ outcome: 'deleted', evidence: 'answer', attempts: KILLS + 1 });
    expect(callsOf()).toBe(KILLS + 1);
    expect(emulator.calls().filter((call) => call.deviceSn === device!.deviceSn && call.applied)).toHaveLength(1);
    expect(await context.queue.getFailedCount()).toBe(0);
    expect(await invariantViolations(context, batchId, emulator.calls(), new Set([device!.deviceSn]), { workersKilled: true })).toEqual([]);
  }, 240_000);
});
