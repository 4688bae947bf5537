/**
 * A chunk a producer registered (REGISTER answered, jobs added) and then lost in a Redis crash with
 * AOF `everysec`: what a host crash loses is the last second of acknowledged writes, and a chunk of
 * 500 devices takes a fraction of that. Its pending records go with it, so the reconciler (which
 * repairs pending records without a job) could never find them: the producer has to. It keeps its
 * recent chunks and, seeing Redis come back as a new instance, sends them again with their request
 * ids: chunk 1 survived and answers from the request cache (nothing written twice), chunk 2 is
 * registered afresh and its jobs added again.
 *
 * Deterministic: the input waits between chunks; the AOF is marked once chunk 1 is in, chunk 2 is
 * registered, then Redis is SIGKILLed with its AOF cut back to the mark (chunk 2 gone) and started
 * again before chunk 3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { InputItem } from '../../src/producer/device-request.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { OwnRedis } from '../helpers/own-redis.js';
import { quietLogger, testConfig } from '../helpers/pipeline.js';
import { uniquePrefix, waitFor } from '../helpers/redis.js';

const CHUNK = 500;

/** A gate an async input waits at until the test opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('a chunk registered just before a Redis crash (AOF everysec)', () => {
  let redis: OwnRedis;
  let emulator: EmulatorHandle;
  let context: Context | null = null;

  beforeAll(async () => {
    redis = await OwnRedis.start({ label: 'register-crash' });
    emulator = await startEmulator();
  });
  afterAll(async () => {
    await context?.close();
    await emulator?.stop();
    await redis?.remove();
  });

  it('is not lost: every device the producer reports accepted is in the batch', async () => {
    const prefix = uniquePrefix('regcrash');
    context = openContext(testConfig(prefix, emulator, { REDIS_URL: redis.url }), 'test-register-crash');
    context.redis.on('error', () => undefined);
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-regcrash1', caSn: 'ca000000regcrash', count: 3 * CHUNK, prefix: 'regcrash' });
    const [afterFirst, afterSecond] = [gate(), gate()];
    async function* input(): AsyncGenerator<InputItem> {
      for (const [index, device] of devices.entries()) {
        if (index === CHUNK) await afterFirst.wait;
        if (index === 2 * CHUNK) await afterSecond.wait;
        yield { kind: 'device', request: { ...device, line: index + 2 } };
      }
    }
    let chunksIn = 0;
    const batchId = await context.batches.create({ name: 'test', source: 'csv', action: 'delete', createdBy: 'test' });
    const enqueuing = new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, 'delete', input(), () => (chunksIn += 1));

    await waitFor(() => chunksIn >= 1, 'chunk 1 registered and its jobs added', 15_000);
    const mark = await redis.markAof();
    afterFirst.open();
    await waitFor(() => chunksIn >= 2, 'chunk 2 registered and its jobs added', 15_000);
    expect((await context.batches.get(batchId))?.accepted).toBe(2 * CHUNK);
    // The host crashes: what chunk 2 wrote had not reached the disk.
    await redis.kill();
    expect(await redis.cutAof(mark)).toBeGreaterThan(0);
    await redis.run();
    afterSecond.open();
    const summary = await enqueuing;
    expect(summary.accepted).toBe(3 * CHUNK);

    // What the reconciler can do afterwards (the producer is done): it finds nothing to repair.
    await context.redis.del(context.keys.producer(batchId));
    await new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results: context.results, deadLetters: context.deadLetters, log: quietLogger() }).runOnce(batchId, 5_000);

    const batch = await context.batches.get(batchId);
    const recorded = new Set<string>();
    for await (const record of context.results.scan(batchId)) recorded.add(record.deviceSn);
    // Counted once each: chunk 1's resend changed nothing, chunk 2's counters were lost with it.
    expect(batch?.accepted).toBe(summary.accepted);
    expect(batch?.duplicates ?? 0).toBe(0);
    // Every device has its job (or its record is already final).
    const jobs = await context.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed');
    expect(Object.values(jobs).reduce((sum, count) => sum + count, 0)).toBe(3 * CHUNK);
    expect(devices.filter((device) => !recorded.has(device.deviceSn))).toEqual([]);
  });
});
