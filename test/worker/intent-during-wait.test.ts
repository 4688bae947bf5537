/**
 * The worker writes a call's write-ahead intent in the last moments before its slot
 * (RateGate.acquire's `whileWaiting`), not after it: its Redis round trips no longer make calls
 * leave late. What that must not break: a pause that comes during the wait still stops the call, and the intent of the
 * call that was never made goes again, so that the run after the resume does not count a lost
 * answer (which would make a never-registered device `gone` instead of `not_found`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateApi } from '../../src/cloud/certificate-api.js';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ApiAction } from '../../src/limiter/api-action.js';
import type { Permit } from '../../src/limiter/rate-gate.js';
import { StubGate } from '../helpers/stub-gate.js';
import type { RevocationJobData } from '../../src/queue/revocation-job.js';
import { createRedis, type RedisClient } from '../../src/redis/redis-connection.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { RevocationWorker } from '../../src/worker/revocation-worker.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

/** A gate that runs the caller's work during the wait, then `duringWait` (the test's pause) before granting. */
class PausingGate extends StubGate {
  acquired = 0;
  constructor(private readonly duringWait: (turn: number) => Promise<void>) {
    super();
  }

  async acquire(_action: ApiAction, _priority?: number, whileWaiting?: () => Promise<void>): Promise<Permit> {
    this.acquired += 1;
    await whileWaiting?.();
    await this.duringWait(this.acquired);
    return { confirm: () => Promise.resolve() };
  }
}

describe('the call intent written during the wait for a slot', () => {
  const prefix = uniquePrefix('intentwait');
  let emulator: EmulatorHandle;
  let context: Context;
  const connections: RedisClient[] = [];
  let worker: RevocationWorker | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 1, p99Ms: 5 } });
  });
  afterAll(async () => {
    await worker?.close().catch(() => undefined);
    for (const connection of connections) connection.disconnect();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('is withdrawn when a pause comes during the wait: no call, and after the resume no lost answer (not_found stays not_found)', async () => {
    const config = testConfig(prefix, emulator);
    context = openContext(config, 'test-intentwait');
    const api = new CertificateApi({ endpoint: emulator.endpoint, protocol: 'http', timeoutMs: 2_000, credentials: config.credentials });
    // Never registered (its instance and CA are, by a neighbour): a lost answer before its call
    // would turn its `not_found` into `gone`.
    const [neighbour, device] = generateDevices({ mqttInstanceId: 'mqtt-cn-intentwait', caSn: 'ca0000intentwait', count: 2, prefix: 'intentwait' });
    if (neighbour === undefined || device === undefined) throw new Error('no device');
    emulator.registry.addDevice(neighbour);

    const seenDuringWait: (RevocationJobData['callIntent'] | undefined)[] = [];
    let batchId = '';
    const gate = new PausingGate(async (turn) => {
      const [job] = await context.queue.getActive();
      seenDuringWait.push((await context.queue.getJob(job?.id ?? ''))?.data.callIntent);
      // The first wait: an operator pauses the batch meanwhile.
      if (turn === 1) await context.control.pause(batchId, 'paused during the wait by the test');
    });
    const connection = createRedis(TEST_REDIS_URL, { connectionName: 'test-intentwait-bullmq' });
    const redis = createRedis(TEST_REDIS_URL, { connectionName: 'test-intentwait' });
    connections.push(connection, redis);
    worker = new RevocationWorker(
      { connection, redis, keys: context.keys, api, gate, adaptive: null, results: context.results, batches: context.batches, deadLetters: context.deadLetters, rateKey: 'test-intentwait', log: quietLogger() },
      // State read fresh each time: the check after the wait must see the pause at once.
      { concurrency: 1, stateMaxAgeMs: 0, restartSettleMs: 0 },
    );
    worker.start();
    await worker.waitUntilReady();
    batchId = await enqueueDevices(context, [device]);

    // The run parks: the pause stopped the call, and the intent written during the wait is gone.
    await waitFor(async () => (await context.batches.get(batchId))?.state === 'paused' && (await context.queue.getDelayedCount()) === 1, 'the run to park', 15_000);
    expect(seenDuringWait[0]?.at).toEqual(expect.any(String));
    const [parked] = await context.queue.getDelayed();
    expect(parked?.data.callIntent ?? null).toBeNull();
    expect(parked?.data.history).toEqual([]);
    expect(emulator.calls().filter((call) => call.deviceSn === device.deviceSn)).toHaveLength(0);

    expect((await context.control.resume(batchId)).ok).toBe(true);
    const batch = await waitFor(async () => {
      const current = await context.batches.get(batchId);
      return current?.state === 'completed' ? current : null;
    }, 'the batch to complete', 15_000);
    expect(gate.acquired).toBe(2);
    expect(batch.counts.not_found).toBe(1);
    const record = (await context.results.get(batchId, parked?.data.revocationId ?? '')) as ResultRecord | null;
    expect(record).toMatchObject({ outcome: 'not_found', attempts: 1 });
    expect(emulator.calls().filter((call) => call.deviceSn === device.deviceSn)).toHaveLength(1);
  });
});
