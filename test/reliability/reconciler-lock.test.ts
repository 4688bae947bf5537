/**
 * The reconciler's lock, found by `npm run soak`: a worker SIGKILLed in the middle of its periodic
 * sweep left the lock for its whole lifetime (300 s, refreshed only between a sweep's steps), so
 * for five minutes after the kill no worker swept and `revoker reconcile` waited, right when a crash
 * had made a sweep necessary. The lock is now short (30 s) and refreshed at every page; a sweep
 * whose lock lapsed takes it back if it is free, and stops if another process has it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { CLI_LOCK_WAIT_MS } from '../../src/reconcile/reconcile-command.js';
import { RECONCILER_DEFAULTS, Reconciler, ReconcilerLockLost, type ReconcilerOptions } from '../../src/reconcile/reconciler.js';
import type { ResultStore } from '../../src/results/result-store.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { removePrefix, uniquePrefix } from '../helpers/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the reconciler lock', () => {
  const prefix = uniquePrefix('reclock');
  let emulator: EmulatorHandle;
  let context: Context;
  let batchId: string;

  beforeAll(async () => {
    emulator = await startEmulator();
    context = openContext(testConfig(prefix, emulator), 'test-reclock');
    // Six devices with pending records and no worker: every sweep walks them.
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-reclock01', caSn: 'ca00000reclock', count: 6, prefix: 'reclock' });
    batchId = await enqueueDevices(context, devices);
    // The producer is done: its heartbeat would keep the sweep off the batch for a minute.
    await context.redis.del(context.keys.producer(batchId));
  });
  afterAll(async () => {
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  /** A reconciler whose pages of records come one record at a time, `pageMs` apart (a long sweep). */
  function reconciler(options: Partial<ReconcilerOptions>, pageMs = 0): Reconciler {
    const results = Object.create(context.results) as ResultStore;
    results.scanFields = async function* (id: string, pageSize?: number) {
      for await (const page of context.results.scanFields(id, pageSize)) {
        for (const entry of page) {
          await sleep(pageMs);
          yield [entry];
        }
      }
    };
    return new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results, deadLetters: context.deadLetters, log: quietLogger() }, options);
  }

  it('is short, and `revoker reconcile` waits longer than a dead holder can hold it', () => {
    expect(RECONCILER_DEFAULTS.lockMs).toBeLessThanOrEqual(30_000);
    expect(CLI_LOCK_WAIT_MS).toBeGreaterThan(RECONCILER_DEFAULTS.lockMs);
  });

  it('left by a holder that died, frees itself within its lifetime', async () => {
    await context.redis.set(context.keys.reconcileLock(), 'a-killed-worker', 'PX', 500);
    const startedAt = Date.now();
    const report = await reconciler({ lockMs: 500 }).runOnce(batchId, 5_000);
    expect(report).not.toBeNull();
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });

  it('is kept through a sweep longer than its lifetime: nobody else sweeps meanwhile', async () => {
    // Six pages 300 ms apart: a sweep of about 1.8 s under a lock of 1.2 s, refreshed at every
    // page (a lock of 400 ms with pages 150 ms apart lapsed once on a loaded machine).
    const long = reconciler({ lockMs: 1_200 }, 300).runOnce(batchId);
    const other = reconciler({ lockMs: 1_200 });
    let otherSwept = false;
    let done = false;
    void long.finally(() => (done = true));
    while (!done) {
      if ((await other.runOnce(batchId, 0)) !== null) otherSwept = true;
      await sleep(50);
    }
    expect(await long).not.toBeNull();
    expect(otherSwept).toBe(false);
  });

  it('lapsed and free: taken back; lapsed and taken by another process: the sweep stops', async () => {
    const lock = context.keys.reconcileLock();
    const lapsed = reconciler({ lockMs: 10_000 }, 100).runOnce(batchId);
    await sleep(150);
    await context.redis.del(lock);
    expect(await lapsed).not.toBeNull();

    const overtaken = reconciler({ lockMs: 10_000 }, 100).runOnce(batchId);
    await sleep(150);
    await context.redis.set(lock, 'another-process', 'PX', 10_000);
    await expect(overtaken).rejects.toBeInstanceOf(ReconcilerLockLost);
    // The other process's lock is left alone.
    expect(await context.redis.get(lock)).toBe('another-process');
    await context.redis.del(lock);
  });
});
