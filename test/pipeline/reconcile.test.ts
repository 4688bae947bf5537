/**
 * The reconciler (issue 11, part 5; symptoms 3, 10, 14): jobs BullMQ failed are retried; a
 * producer that died between REGISTER and addBulk, or in the middle of its input, is repaired by
 * `revoker reconcile`; and the reconciler never adds a job that exists (nothing called twice).
 */
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/batches/batch.js';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import type { InputItem } from '../../src/producer/device-request.js';
import { revocationId } from '../../src/queue/job-id.js';
import { REVOCATION_QUEUE } from '../../src/queue/keys.js';
import { Reconciler, type ReconcileReport } from '../../src/reconcile/reconciler.js';
import { createRedis } from '../../src/redis/redis-connection.js';
import { pendingPlaceholder } from '../../src/results/result-store.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { invariantViolations } from '../helpers/invariants.js';
import { enqueueDevices, quietLogger, testConfig, testEnv } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-reconcile01';
const CA = 'ca000000reconcile';

describe('reconciler', () => {
  const prefixes: string[] = [];
  let emulator: EmulatorHandle;
  let context: Context | null = null;
  let runtime: WorkerRuntime | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 2, p99Ms: 10 } });
  });
  afterEach(async () => {
    await runtime?.close();
    await context?.close();
    runtime = null;
    context = null;
  });
  afterAll(async () => {
    await emulator?.stop();
    for (const prefix of prefixes) await removePrefix(prefix);
  });

  function setup(label: string): { ctx: Context; env: Record<string, string>; config: ReturnType<typeof testConfig> } {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const extra = { RATE_LIMIT_PER_SECOND: '200' };
    const config = testConfig(prefix, emulator, extra);
    context = openContext(config, `test-${label}`);
    return { ctx: context, env: testEnv(prefix, emulator, extra), config };
  }

  function seed(label: string, count: number) {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
    for (const device of devices) emulator.registry.addDevice(device);
    return devices;
  }

  function reconcilerOf(ctx: Context): Reconciler {
    return new Reconciler({ redis: ctx.redis, keys: ctx.keys, queue: ctx.queue, batches: ctx.batches, results: ctx.results, deadLetters: ctx.deadLetters, log: quietLogger() });
  }

  async function until(ctx: Context, batchId: string, what: string, predicate: (batch: Batch) => boolean): Promise<Batch> {
    return waitFor(async () => {
      const batch = await ctx.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, 30_000, 50);
  }

  function calls(devices: { deviceSn: string }[]): number {
    const wanted = new Set(devices.map((device) => device.deviceSn));
    return emulator.calls().filter((call) => call.action === 'DeleteDeviceCertificate' && wanted.has(call.deviceSn)).length;
  }

  it('retries the jobs BullMQ failed (which left no record and blocked the device) (symptom 3)', async () => {
    const { ctx, config } = setup('failed');
    const devices = seed('failed', 20);
    const batchId = await enqueueDevices(ctx, devices);
    // Something inside revoker fails every job for good (what 10 stalls in a row did before).
    const connection = createRedis(config.redisUrl, { connectionName: 'test-failer' });
    const failer = new Worker(REVOCATION_QUEUE, () => Promise.reject(new UnrecoverableError('simulated: revoker failed the job')), { connection, prefix: config.prefix, concurrency: 20 });
    try {
      await waitFor(async () => (await ctx.queue.getFailedCount()) === 20, 'every job to be failed');
    } finally {
      await failer.close();
      connection.disconnect();
    }
    runtime = await startWorkerRuntime(config, quietLogger());
    expect((await ctx.batches.get(batchId))?.done).toBe(0);
    const report = await reconcilerOf(ctx).runOnce();
    expect(report?.retried).toHaveLength(20);
    const batch = await until(ctx, batchId, 'the batch to complete', (b) => b.state === 'completed');
    expect(batch.counts).toMatchObject({ deleted: 20, failed: 0 });
    expect(await ctx.queue.getFailedCount()).toBe(0);
    expect(await invariantViolations(ctx, batchId, emulator.calls(), new Set(devices.map((device) => device.deviceSn)))).toEqual([]);
  });

  it('`revoker reconcile BATCH` repairs a producer that died between REGISTER and addBulk (symptoms 10, 14)', async () => {
    const { ctx, env, config } = setup('deadproducer');
    runtime = await startWorkerRuntime(config, quietLogger());
    const devices = seed('deadproducer', 30);
    const batchId = await ctx.batches.create({ name: 'dead producer', source: 'csv', action: 'delete', createdBy: 'test' });
    const entries = devices.map((device) => ({ field: revocationId(device, 'delete'), instance: INSTANCE, placeholder: pendingPlaceholder({ batchId, ...device, action: 'delete' }) }));
    // REGISTER, then the producer dies: no addBulk, no MARK_ENQUEUED; its heartbeat lapses.
    expect((await ctx.results.registerRevocations(batchId, entries)).every((answer) => answer.flag === 'queue')).toBe(true);
    await ctx.redis.del(ctx.keys.producer(batchId));
    expect(await ctx.queue.getJobCountByTypes('wait', 'prioritized', 'active', 'delayed')).toBe(0);

    const cli = spawnTs('src/cli/main.ts', ['reconcile', batchId, '--json'], env);
    expect(await cli.exited).toBe(0);
    const report = JSON.parse(cli.output().split('\n').find((line) => line.startsWith('{"cutShort"')) ?? '{}') as ReconcileReport;
    expect(report.cutShort).toEqual([batchId]);
    expect(report.requeued).toHaveLength(30);
    expect(report.requeued.every((device) => device.why === 'missing' && device.batchId === batchId)).toBe(true);
    const batch = await until(ctx, batchId, 'the repaired batch to complete', (b) => b.state === 'completed');
    expect(batch.counts).toMatchObject({ deleted: 30 });
    expect(batch.inputNote).toMatch(/producer stopped before the end of its input/);
    expect(calls(devices)).toBe(30);
    expect(await invariantViolations(ctx, batchId, emulator.calls(), new Set(devices.map((device) => device.deviceSn)))).toEqual([]);

    // Run again: nothing left to repair, nothing added twice.
    const again = spawnTs('src/cli/main.ts', ['reconcile', batchId], env);
    expect(await again.exited).toBe(0);
    expect(again.output()).toMatch(/nothing to repair/);
  });

  it('a producer that died in the middle of its input: the batch is cut short and finishes with what was accepted (symptom 14)', async () => {
    const { ctx, config } = setup('midinput');
    runtime = await startWorkerRuntime(config, quietLogger());
    const devices = seed('midinput', 120);
    const batchId = await ctx.batches.create({ name: 'mid input', source: 'csv', action: 'delete', createdBy: 'test' });
    function* items(): Generator<InputItem> {
      for (const [index, device] of devices.entries()) {
        if (index === 100) throw new Error('the producer process died');
        yield { kind: 'device', request: { ...device, line: index + 2 } };
      }
    }
    await expect(new Enqueuer(ctx.queue, ctx.batches, ctx.results, { chunkSize: 50 }).enqueue(batchId, 'delete', items())).rejects.toThrow(/died/);
    await until(ctx, batchId, 'the accepted devices to be done', (b) => b.done === 100);
    expect((await ctx.batches.get(batchId))?.state).toBe('enqueuing');
    await ctx.redis.del(ctx.keys.producer(batchId));
    const report = await reconcilerOf(ctx).runOnce();
    expect(report?.cutShort).toEqual([batchId]);
    expect(report?.requeued).toEqual([]);
    const batch = await until(ctx, batchId, 'the batch to complete', (b) => b.state === 'completed');
    expect(batch).toMatchObject({ accepted: 100, done: 100, enqueued: true });
  });

  it('never adds a job that exists; puts back a lost subscription; closes a job that never reached BullMQ when nobody waits', async () => {
    const { ctx, config } = setup('noharm');
    runtime = await startWorkerRuntime(config, quietLogger());
    const devices = seed('noharm', 40);
    const paused = await ctx.batches.create({ name: 'paused', source: 'csv', action: 'delete', createdBy: 'test' });
    await ctx.batches.pause(paused, 'held by the test');
    await new Enqueuer(ctx.queue, ctx.batches, ctx.results).enqueue(paused, 'delete', devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } })));
    await waitFor(async () => (await ctx.queue.getDelayedCount()) === 40, 'every job to park');
    // A lost SADD (a Redis crash): the batch is no longer in its job's subscriber set.
    const rid = revocationId(devices[0]!, 'delete');
    await ctx.redis.srem(ctx.keys.subscribers(`${rid}-1`), paused);
    // A revocation whose job never reached BullMQ, whose batch has since finished: nobody waits.
    const stale = revocationId({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'stale-device' }, 'delete');
    await ctx.redis.hset(ctx.keys.revocation(stale), 'gen', '1', 'job', `${stale}-1`, 'openedAt', '0', 'openedBy', 'redrive');
    await ctx.redis.sadd(ctx.keys.subscribers(`${stale}-1`), 'b-finished-long-ago');
    const report = await reconcilerOf(ctx).runOnce();
    expect(report).toMatchObject({ requeued: [], retried: [], resubscribed: 1, closedRevocations: 1 });
    expect(await ctx.queue.getDelayedCount()).toBe(40);
    expect((await ctx.results.revocation(stale))?.job).toBeNull();
    expect(calls(devices)).toBe(0);
    await ctx.control.resume(paused);
    expect((await until(ctx, paused, 'the batch to complete', (b) => b.state === 'completed')).counts).toMatchObject({ deleted: 40 });
    expect(calls(devices)).toBe(40);
  });
});
