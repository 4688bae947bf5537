/**
 * Redis crashing mid-batch with AOF `everysec` (issue 11, symptom 10): up to a second of
 * acknowledged writes is lost — call intents, records, job moves. A test-owned redis-server (its
 * own port and directory) is SIGKILLed while two worker processes revoke, its AOF cut back by the
 * last second (what a host crash loses), and started again; then `revoker reconcile` repairs what
 * no single step could, and the shared invariants hold:
 * one record per device, counters equal records, no `deleted` without an applied delete, no
 * `not_found` for a device revoker's call removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { openContext } from '../../src/runtime/context.js';
import { invariantViolations } from '../helpers/invariants.js';
import { enqueueDevices, testConfig, testEnv } from '../helpers/pipeline.js';
import { OwnRedis } from '../helpers/own-redis.js';
import { spawnTs, spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from '../helpers/processes.js';
import { uniquePrefix, waitFor } from '../helpers/redis.js';

describe('Redis SIGKILLed mid-batch (AOF everysec), then reconcile', () => {
  let redis: OwnRedis;
  let emulator: EmulatorHandle;
  const workers: Spawned[] = [];

  beforeAll(async () => {
    redis = await OwnRedis.start({ label: 'redis-crash' });
    emulator = await startEmulator({ latency: { medianMs: 5, p99Ms: 30 } });
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => stopProcess(worker, 'SIGKILL')));
    await emulator?.stop();
    await redis?.remove();
  });

  it('every device ends with exactly one record, and no record claims more than revoker knows', async () => {
    const prefix = uniquePrefix('crash');
    const extra = { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: '300', JOB_LOCK_MS: '3000' };
    const env = testEnv(prefix, emulator, extra);
    const context = openContext(testConfig(prefix, emulator, extra), 'test-crash');
    context.redis.on('error', () => undefined);
    try {
      workers.push(spawnWorker(env), spawnWorker(env));
      await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
      const registered = generateDevices({ mqttInstanceId: 'mqtt-cn-crash00001', caSn: 'ca00000000crash', count: 1_500, prefix: 'crash' });
      for (const device of registered) emulator.registry.addDevice(device);
      const never = generateDevices({ mqttInstanceId: 'mqtt-cn-crash00001', caSn: 'ca00000000crash', count: 150, prefix: 'crash-never' });
      const devices = registered.flatMap((device, index) => (index % 10 === 0 ? [device, never[index / 10]!] : [device]));
      const batchId = await enqueueDevices(context, devices);
      await waitFor(async () => ((await context.batches.get(batchId))?.done ?? 0) >= 400, 'the batch to be under way', 30_000);

      // A SIGKILLed process loses nothing the kernel already has; a host crash loses what was not
      // fsynced yet: up to the last second. Simulate that: cut the AOF back to where it was one
      // second before the kill (Redis writes it in whole event-loop flushes, so the cut falls
      // between commands; an open MULTI is discarded on load).
      const lostBytes = await redis.crash(1_000);
      expect(lostBytes).toBeGreaterThan(0);
      await redis.run();

      // Let the workers reconnect and drain what they can, then repair the rest.
      let last = -1;
      await waitFor(async () => {
        const done = (await context.batches.get(batchId).catch(() => null))?.done ?? -1;
        const settled = done === last;
        last = done;
        return settled && done > 0;
      }, 'the workers to settle after the restart', 90_000, 4_000);
      const cli = spawnTs('src/cli/main.ts', ['reconcile', batchId], env);
      expect(await cli.exited, cli.output()).toBe(0);

      const batch = await waitFor(async () => {
        const current = await context.batches.get(batchId).catch(() => null);
        return current?.state === 'completed' ? current : null;
      }, 'the batch to complete after the reconcile', 90_000, 250);
      expect(batch.accepted).toBe(1_650);
      expect(batch.done).toBe(1_650);
      const sns = new Set(devices.map((device) => device.deviceSn));
      expect(await invariantViolations(context, batchId, emulator.calls(), sns)).toEqual([]);
      for (const device of registered) expect(emulator.registry.has(device.mqttInstanceId, device.caSn, device.deviceSn)).toBe(false);
    } finally {
      await context.close();
    }
  }, 300_000);
});
