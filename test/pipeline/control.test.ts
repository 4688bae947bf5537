/**
 * What happens to a running batch when the account, the instance or an operator intervenes:
 * throttling below the configured rate, a limiter that lost its Redis state, instance and
 * credential errors, pause/resume/cancel. One in-process worker, the emulator, a real Redis.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT, generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Batch } from '../../src/batches/batch.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

describe('batch control and account conditions', () => {
  const prefixes: string[] = [];
  let emulator: EmulatorHandle;
  let context: Context | null = null;
  let runtime: WorkerRuntime | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 5, p99Ms: 30 } });
  });
  afterEach(async () => {
    await runtime?.close();
    await context?.close();
    runtime = null;
    context = null;
    emulator.setRatePerSecond(500);
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'active');
  });
  afterAll(async () => {
    await emulator?.stop();
    for (const prefix of prefixes) await removePrefix(prefix);
  });

  async function start(label: string, extra: Record<string, string> = {}): Promise<Context> {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const config = testConfig(prefix, emulator, extra);
    context = openContext(config, `test-${label}`);
    runtime = await startWorkerRuntime(config, quietLogger());
    return context;
  }

  function seed(count: number, label: string, instance = 'mqtt-cn-control01', ca = 'ca0000000control') {
    const devices = generateDevices({ mqttInstanceId: instance, caSn: ca, count, prefix: label });
    for (const device of devices) emulator.registry.addDevice(device);
    return devices;
  }

  async function until(ctx: Context, batchId: string, what: string, predicate: (batch: Batch) => boolean, timeoutMs = 60_000): Promise<Batch> {
    return waitFor(async () => {
      const batch = await ctx.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, timeoutMs, 100);
  }

  it('a quota below the configured rate: throughput settles near the quota and every device finishes', async () => {
    const ctx = await start('quota', { RATE_LIMIT_PER_SECOND: '300' });
    emulator.setRatePerSecond(150);
    const devices = seed(1_800, 'quota');
    emulator.resetStats();
    const startedAt = Date.now();
    const batchId = await enqueueDevices(ctx, devices);
    const batch = await until(ctx, batchId, 'the throttled batch to finish', (b) => b.state === 'completed', 90_000);
    const seconds = (Date.now() - startedAt) / 1_000;
    expect(batch.counts.deleted).toBe(1_800);
    const stats = emulator.stats();
    expect(stats.throttled).toBeGreaterThan(0);
    // Settles near the quota: well above a collapse, never above what the emulator admits.
    expect(1_800 / seconds).toBeGreaterThan(150 * 0.6);
    expect(stats.maxAdmittedInAnySecond).toBeLessThanOrEqual(150);
    // Throttled calls are retried without costing attempts: nothing failed, attempts stay 1.
    let maxAttempts = 0;
    for await (const record of ctx.results.scan(batchId)) if ('attempts' in record) maxAttempts = Math.max(maxAttempts, record.attempts);
    expect(maxAttempts).toBe(1);
    // The shared rate came down toward the quota.
    expect(runtime!.gate.ratePerSecond()).toBeLessThan(300);
  });

  it('survives the limiter losing its Redis state mid-batch (what a Redis restart does)', async () => {
    const ctx = await start('limiterloss', { RATE_LIMIT_PER_SECOND: '300' });
    const devices = seed(900, 'limiterloss');
    const batchId = await enqueueDevices(ctx, devices);
    await until(ctx, batchId, 'the batch to be under way', (b) => b.done >= 150);
    // Delete every key of the rate budgets and the adaptive rate, as a restart without persistence would.
    const keys = [...(await ctx.redis.keys(`${ctx.keys.prefix}:budget*`)), ...(await ctx.redis.keys(`${ctx.keys.prefix}:rate:*`))];
    expect(keys.length).toBeGreaterThan(0);
    await ctx.redis.del(...keys);
    const batch = await until(ctx, batchId, 'the batch to finish after the limiter lost its keys', (b) => b.state === 'completed');
    expect(batch.counts.deleted).toBe(900);
  });

  it('MqttInstanceNotFound pauses the batch without dead-lettering; resume after the fix finishes it', async () => {
    const ctx = await start('instance', { RATE_LIMIT_PER_SECOND: '300' });
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-notyetthere', caSn: 'ca0000000control', count: 300, prefix: 'instance' });
    const batchId = await enqueueDevices(ctx, devices);
    const paused = await until(ctx, batchId, 'the batch to pause', (b) => b.state === 'paused');
    expect(paused.reason).toMatch(/MqttInstanceNotFound/);
    await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    expect(await ctx.deadLetters.count()).toBe(0);
    expect(paused.counts.failed).toBe(0);
    // Fix the cause, then resume: every device is revoked.
    for (const device of devices) emulator.registry.addDevice(device);
    expect((await ctx.control.resume(batchId)).ok).toBe(true);
    const batch = await until(ctx, batchId, 'the resumed batch to finish', (b) => b.state === 'completed');
    expect(batch.counts).toMatchObject({ deleted: 300, failed: 0, not_found: 0 });
  });

  it('refused credentials pause every open batch of the account, dead-letter nothing, and resume when fixed', async () => {
    const ctx = await start('creds', { RATE_LIMIT_PER_SECOND: '300' });
    const first = seed(200, 'creds-a');
    const second = seed(200, 'creds-b');
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'inactive');
    const batchA = await enqueueDevices(ctx, first, { name: 'a' });
    const batchB = await enqueueDevices(ctx, second, { name: 'b' });
    const pausedA = await until(ctx, batchA, 'batch A to pause', (b) => b.state === 'paused');
    await until(ctx, batchB, 'batch B to pause', (b) => b.state === 'paused');
    expect(pausedA.reason).toMatch(/InvalidAccessKeyId\.Inactive/);
    await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    expect(await ctx.deadLetters.count()).toBe(0);
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'active');
    await ctx.control.resume(batchA);
    await ctx.control.resume(batchB);
    expect((await until(ctx, batchA, 'batch A to finish', (b) => b.state === 'completed')).counts.deleted).toBe(200);
    expect((await until(ctx, batchB, 'batch B to finish', (b) => b.state === 'completed')).counts.deleted).toBe(200);
  });

  it('the not_found breaker pauses a batch that looks like a wrong CA; resuming keeps it off', async () => {
    const ctx = await start('breaker', { RATE_LIMIT_PER_SECOND: '300' });
    const registered = seed(60, 'breaker-ok');
    const wrongCa = generateDevices({ mqttInstanceId: 'mqtt-cn-control01', caSn: 'ca0000000control', count: 340, prefix: 'breaker-missing' });
    const batchId = await enqueueDevices(ctx, [...registered, ...wrongCa]);
    const paused = await until(ctx, batchId, 'the breaker to pause the batch', (b) => b.state === 'paused');
    expect(paused.reason).toMatch(/^not_found breaker: \d+ of the first \d+ devices were not registered/);
    await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    const settled = (await ctx.batches.get(batchId))!;
    expect(settled.done).toBeGreaterThanOrEqual(100);
    expect(settled.done).toBeLessThan(400);
    expect(settled.counts.not_found * 2).toBeGreaterThan(settled.done);
    // The operator checked the list and resumes: the breaker does not trip again.
    expect((await ctx.control.resume(batchId)).ok).toBe(true);
    const batch = await until(ctx, batchId, 'the resumed batch to finish', (b) => b.state === 'completed');
    expect(batch.counts).toMatchObject({ deleted: 60, not_found: 340 });
  });

  it('a skewed clock (InvalidTimeStamp.Expired) pauses the batches of the account the same way, nothing dead-lettered', async () => {
    const ctx = await start('skew', { RATE_LIMIT_PER_SECOND: '300' });
    const devices = seed(150, 'skew');
    emulator.setClockOffsetMs(20 * 60_000);
    try {
      const batchId = await enqueueDevices(ctx, devices);
      const paused = await until(ctx, batchId, 'the batch to pause', (b) => b.state === 'paused');
      expect(paused.reason).toMatch(/InvalidTimeStamp\.Expired/);
      await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
      expect(await ctx.deadLetters.count()).toBe(0);
      emulator.setClockOffsetMs(0);
      await ctx.control.resume(batchId);
      expect((await until(ctx, batchId, 'the batch to finish', (b) => b.state === 'completed')).counts.deleted).toBe(150);
    } finally {
      emulator.setClockOffsetMs(0);
    }
  });

  it('pause stops calls within a second while another batch goes on; resume and cancel', async () => {
    const ctx = await start('pause', { RATE_LIMIT_PER_SECOND: '200' });
    // Large enough that the cancel, issued 100 devices after the resume, still finds devices not called.
    const pausedDevices = seed(2_000, 'pause-a');
    const otherDevices = seed(300, 'pause-b');
    const batchA = await enqueueDevices(ctx, pausedDevices, { name: 'to pause' });
    await until(ctx, batchA, 'batch A to be under way', (b) => b.done >= 100);
    expect((await ctx.control.pause(batchA, 'checking the list')).ok).toBe(true);
    const isA = new Set(pausedDevices.map((device) => device.deviceSn));
    const callsOfA = () => emulator.calls().filter((call) => isA.has(call.deviceSn)).length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const afterPause = callsOfA();
    const batchB = await enqueueDevices(ctx, otherDevices, { name: 'goes on' });
    await until(ctx, batchB, 'batch B to finish while A is paused', (b) => b.state === 'completed');
    expect(callsOfA()).toBe(afterPause);
    const paused = await ctx.batches.get(batchA);
    expect(paused).toMatchObject({ state: 'paused', reason: 'checking the list' });

    expect((await ctx.control.resume(batchA)).ok).toBe(true);
    await until(ctx, batchA, 'batch A to progress again', (b) => b.done >= (paused?.done ?? 0) + 100);
    expect((await ctx.control.cancel(batchA, 'wrong list')).ok).toBe(true);
    const cancelled = await until(ctx, batchA, 'batch A to finish cancelled', (b) => b.state === 'cancelled' && b.finishedAt !== null);
    expect(cancelled.counts.cancelled).toBeGreaterThan(0);
    expect(cancelled.counts.deleted + cancelled.counts.gone + cancelled.counts.cancelled).toBe(2_000);
    // Every device not recorded as deleted is still registered: cancelled means never called.
    for await (const record of ctx.results.scan(batchA)) {
      if (record.outcome === 'cancelled') expect(emulator.registry.has(record.mqttInstanceId, record.caSn, record.deviceSn)).toBe(true);
    }
  });
});
