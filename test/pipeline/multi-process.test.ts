/**
 * Worker processes as production runs them: several processes share the account-wide rate,
 * a SIGKILLed worker's devices are finished by another, and SIGTERM stops cleanly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { invariantViolations } from '../helpers/invariants.js';
import { enqueueDevices, testConfig, testEnv } from '../helpers/pipeline.js';
import { spawnEmulator, spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from '../helpers/processes.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-multiproc01';
/** The API's per-source-IP limit (the spawned emulator blocks above it). */
const IP_LIMIT = 300;
const CA = 'ca000000multiproc';

describe('worker processes', () => {
  const prefixes: string[] = [];
  let emulator: EmulatorHandle;
  let workers: Spawned[] = [];
  let context: Context | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 15, p99Ms: 60 } });
  });

  afterEach(async () => {
    await Promise.all(workers.map((worker) => stopProcess(worker, 'SIGKILL')));
    workers = [];
    await context?.close();
    context = null;
  });

  afterAll(async () => {
    await emulator?.stop();
    for (const prefix of prefixes) await removePrefix(prefix);
  });

  function setup(label: string, extra: Record<string, string>): { env: Record<string, string>; context: Context } {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const env = testEnv(prefix, emulator, extra);
    context = openContext(testConfig(prefix, emulator, extra), `test-${label}`);
    return { env, context };
  }

  async function startWorkers(count: number, env: Record<string, string>): Promise<Spawned[]> {
    const started = Array.from({ length: count }, () => spawnWorker(env));
    workers.push(...started);
    await Promise.all(started.map((worker) => waitForWorkerStart(worker)));
    return started;
  }

  async function recordsOf(ctx: Context, batchId: string): Promise<ResultRecord[]> {
    const out: ResultRecord[] = [];
    for await (const record of ctx.results.scan(batchId)) out.push(record as ResultRecord);
    return out;
  }

  function seed(count: number, label: string) {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
    for (const device of devices) emulator.registry.addDevice(device);
    return devices;
  }

  it('2,000 devices through 2 processes sharing one egress: one record each, never above the egress budget', async () => {
    // The API runs elsewhere: an emulator process of its own, so that what it counts per second is
    // not distorted by this test process's event loop (in-process, it stamped bursts that a
    // separate process did not see).
    const api = await spawnEmulator(['--latency-median-ms', '15', '--latency-p99-ms', '60']);
    try {
      // The account budget (400) is above the egress budget (250): the egress binds.
      const rate = 250;
      const prefix = uniquePrefix('twoproc');
      prefixes.push(prefix);
      const extra = { RATE_LIMIT_PER_SECOND: '400', EGRESS_RATE_LIMIT_PER_SECOND: String(rate), MQTT_API_ENDPOINT: api.endpoint };
      const env = testEnv(prefix, emulator, extra);
      const ctx = openContext(testConfig(prefix, emulator, extra), 'test-twoproc');
      context = ctx;
      await startWorkers(2, env);
      const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 2_000, prefix: 'twoproc' });
      await api.control('/_emulator/devices', { devices });
      await api.control('/_emulator/reset', {});
      const batchId = await enqueueDevices(ctx, devices);
      const batch = await waitFor(async () => {
        const current = await ctx.batches.get(batchId);
        return current?.state === 'completed' ? current : null;
      }, 'the batch to complete', 60_000, 200);
      expect(batch.counts.deleted).toBe(2_000);
      const records = await recordsOf(ctx, batchId);
      expect(records).toHaveLength(2_000);
      expect(new Set(records.map((record) => record.deviceSn)).size).toBe(2_000);
      expect(records.every((record) => record.outcome === 'deleted')).toBe(true);
      const stats = await api.control<{ throttled: number; maxCallsInAnySecond: number; byAction: Record<string, Record<string, number>> }>('/_emulator/stats');
      expect(stats.throttled).toBe(0);
      // The slots hold the egress budget exactly on Redis' clock; what the API counts also carries
      // the spread of the calls' delivery, so the check is against the API's own per-IP limit
      // (blocked above 300/s), which the emulator enforces: it must never come close.
      expect(stats.maxCallsInAnySecond).toBeLessThanOrEqual(IP_LIMIT);
      expect(stats.maxCallsInAnySecond).toBeLessThanOrEqual(rate * 1.05);
      // Each device deleted by exactly one successful call, and none left registered.
      expect(stats.byAction.DeleteDeviceCertificate).toEqual({ OK: 2_000 });
      const left = await api.control<{ total: number }>(`/_emulator/devices?mqttInstanceId=${INSTANCE}&caSn=${CA}`);
      expect(left.total).toBe(0);
    } finally {
      await stopProcess(api.spawned);
    }
  });

  it('a SIGKILLed worker: the others finish its devices, none lacks a record, none has two, no never-registered device is reported deleted', async () => {
    const { env, context: ctx } = setup('sigkill', { RATE_LIMIT_PER_SECOND: '300', JOB_LOCK_MS: '2000' });
    const [victim] = await startWorkers(2, env);
    const devices = seed(900, 'sigkill');
    // Never registered, interleaved with the registered ones so some are in flight at the kill.
    const unregistered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 300, prefix: 'sigkill-never' });
    const mixed = devices.flatMap((device, index) => (index % 3 === 0 ? [device, unregistered[index / 3]!] : [device]));
    const batchId = await enqueueDevices(ctx, mixed);
    await waitFor(async () => ((await ctx.batches.get(batchId))?.done ?? 0) >= 200, 'the batch to be under way', 30_000);
    victim!.child.kill('SIGKILL');
    expect(await victim!.exited).toBe('SIGKILL');
    const batch = await waitFor(async () => {
      const current = await ctx.batches.get(batchId);
      return current?.state === 'completed' ? current : null;
    }, 'the survivor to finish the batch', 60_000, 200);
    const records = await recordsOf(ctx, batchId);
    expect(records).toHaveLength(1_200);
    expect(new Set(records.map((record) => record.deviceSn)).size).toBe(1_200);
    // Calls in flight when the worker died may have been applied: `deleted` when a later call
    // was answered with success, `gone` when the later call found nothing. Never-registered
    // devices are `not_found`, or `gone` where their call was cut: never `deleted`.
    expect(batch.counts).toMatchObject({ failed: 0, cancelled: 0 });
    expect(batch.counts.deleted + batch.counts.gone + batch.counts.not_found).toBe(1_200);
    expect(batch.done).toBe(1_200);
    const never = new Set(unregistered.map((device) => device.deviceSn));
    for (const record of records) if (never.has(record.deviceSn)) expect(['not_found', 'gone'], record.deviceSn).toContain(record.outcome);
    expect(await invariantViolations(ctx, batchId, emulator.calls(), new Set(mixed.map((device) => device.deviceSn)), { workersKilled: true })).toEqual([]);
    for (const device of devices) expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(false);
  });

  it('SIGTERM stops taking jobs, finishes in-flight calls, exits 0 and leaves no job active', async () => {
    const { env, context: ctx } = setup('sigterm', { RATE_LIMIT_PER_SECOND: '200', JOB_LOCK_MS: '10000' });
    const [worker] = await startWorkers(1, env);
    const devices = seed(600, 'sigterm');
    const batchId = await enqueueDevices(ctx, devices);
    await waitFor(async () => ((await ctx.batches.get(batchId))?.done ?? 0) >= 100, 'the batch to be under way', 30_000);
    const stoppedAt = Date.now();
    expect(await stopProcess(worker!, 'SIGTERM')).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    expect(await ctx.queue.getActiveCount()).toBe(0);
    const midway = await ctx.batches.get(batchId);
    expect(midway?.done).toBeLessThan(600);

    await startWorkers(1, env);
    const batch = await waitFor(async () => {
      const current = await ctx.batches.get(batchId);
      return current?.state === 'completed' ? current : null;
    }, 'a new worker to finish the batch', 60_000, 200);
    expect(batch.counts).toMatchObject({ deleted: 600, not_found: 0, failed: 0 });
    const records = await recordsOf(ctx, batchId);
    expect(records).toHaveLength(600);
    // Nothing done twice: one applied delete per device, and no record with an error code.
    const applied = emulator.calls().filter((call) => call.applied && devices.some((device) => device.deviceSn === call.deviceSn));
    expect(applied).toHaveLength(600);
    expect(records.filter((record) => record.errorCode !== null)).toHaveLength(0);
  });
});
