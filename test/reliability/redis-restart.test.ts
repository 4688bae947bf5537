/**
 * Redis restarts mid-batch: a test-owned redis-server (its own port, AOF on) is stopped and
 * started again while two worker processes revoke. Workers, producer and limiter reconnect
 * (Lua scripts are gone after a restart: NOSCRIPT), and the batch finishes with one record per
 * device and counters equal to the records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext } from '../../src/runtime/context.js';
import { enqueueDevices, testConfig, testEnv } from '../helpers/pipeline.js';
import { OwnRedis } from '../helpers/own-redis.js';
import { spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from '../helpers/processes.js';
import { uniquePrefix, waitFor } from '../helpers/redis.js';

describe('Redis restart mid-batch', () => {
  let redis: OwnRedis;
  let emulator: EmulatorHandle;
  const workers: Spawned[] = [];

  beforeAll(async () => {
    redis = await OwnRedis.start({ label: 'redis-restart' });
    emulator = await startEmulator({ latency: { medianMs: 5, p99Ms: 30 } });
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => stopProcess(worker, 'SIGKILL')));
    await emulator?.stop();
    await redis?.remove();
  });

  it('workers, limiter and records survive the restart; every device ends with exactly one record', async () => {
    const prefix = uniquePrefix('restart');
    const extra = { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: '300', JOB_LOCK_MS: '3000' };
    const env = testEnv(prefix, emulator, extra);
    const context = openContext(testConfig(prefix, emulator, extra), 'test-restart');
    try {
      workers.push(spawnWorker(env), spawnWorker(env));
      await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
      const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-restart01', caSn: 'ca000000restart', count: 1_500, prefix: 'restart' });
      for (const device of devices) emulator.registry.addDevice(device);
      const batchId = await enqueueDevices(context, devices);
      await waitFor(async () => ((await context.batches.get(batchId))?.done ?? 0) >= 300, 'the batch to be under way', 30_000);

      // SIGTERM: Redis flushes its AOF and exits, as on an orderly restart.
      await redis.stop('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await redis.run();

      const batch = await waitFor(async () => {
        const current = await context.batches.get(batchId).catch(() => null);
        return current?.state === 'completed' ? current : null;
      }, 'the batch to finish after the restart', 90_000, 250);
      const records: ResultRecord[] = [];
      for await (const record of context.results.scan(batchId)) records.push(record as ResultRecord);
      expect(records).toHaveLength(1_500);
      expect(new Set(records.map((record) => record.deviceSn)).size).toBe(1_500);
      // Counters equal the records.
      const byOutcome = new Map<string, number>();
      for (const record of records) byOutcome.set(record.outcome, (byOutcome.get(record.outcome) ?? 0) + 1);
      expect(batch.counts.deleted).toBe(byOutcome.get('deleted') ?? 0);
      expect(batch.done).toBe(1_500);
      // Every device is gone, each recorded deleted, or gone where a call was cut by the restart.
      expect((byOutcome.get('deleted') ?? 0) + (byOutcome.get('gone') ?? 0)).toBe(1_500);
      expect(batch.counts.gone).toBe(byOutcome.get('gone') ?? 0);
      for (const device of devices) expect(emulator.registry.has(device.mqttInstanceId, device.caSn, device.deviceSn)).toBe(false);
      // No device deleted by the emulator lacks a record: checked above (all 1,500 deleted and recorded).
      for (const worker of workers) expect(worker.child.exitCode).toBeNull();
    } finally {
      await context.close();
    }
  });
});
