/**
 * Found by `npm run soak` (10,000 devices: 6 `not_found` records for certificates revoker's own
 * call had removed, every one on a job whose lock had lapsed mid-run: "could not renew lock", then
 * "Lock mismatch ... moveToDelayed").
 *
 * A worker whose job lock lapses (its event loop starved past JOB_LOCK_MS, a GC pause, a slow
 * link to Redis) keeps running the job: BullMQ does not stop it. Another worker takes the job over
 * from the stalled set with the job data as it was then. The first run then writes its call intent
 * (`job.updateData`, which does not check the lock), calls the API (applied, answer lost), and
 * records the lost attempt; the second run writes its own intent from its older copy of the data
 * (`{ ...data, callIntent }`), which overwrites the first run's intent and attempt, calls, hears
 * "not registered" and, seeing no earlier call in its history, records `not_found` — for a
 * certificate revoker's call removed. The write-ahead intent only works if the second run can see
 * the first run's intent: either a run that lost its lock must not call, or intents must be kept
 * where a concurrent run sees them (the ledger) and written only by the lock holder.
 *
 * Fixed: job data is written only while the run holds the job's lock (src/worker/job-data.ts); a
 * run that lost it stops before calling.
 *
 * Made deterministic with two in-process workers: gates that hold each run before its call, the
 * lock deleted to stand for the lapse, and `close()` of the first worker to wait for its run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateApi } from '../../src/cloud/certificate-api.js';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Permit, RateGate } from '../../src/limiter/rate-gate.js';
import { StubGate } from '../helpers/stub-gate.js';
import { createRedis, type RedisClient } from '../../src/redis/redis-connection.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { RevocationWorker } from '../../src/worker/revocation-worker.js';
import { invariantViolations } from '../helpers/invariants.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

/** A gate that holds every permit until `release()` (the run waits there, as for a slow slot). */
class HeldGate extends StubGate {
  acquired = 0;
  private released = false;
  private readonly waiting: (() => void)[] = [];

  acquire(_action: unknown, _priority?: number, whileWaiting?: () => Promise<void>): Promise<Permit> {
    this.acquired += 1;
    return new Promise((resolve, reject) => {
      // As BudgetGate: the caller's work before its call runs during the wait, here at its end.
      const grant = () => {
        (whileWaiting?.() ?? Promise.resolve()).then(() => resolve({ confirm: () => Promise.resolve() }), reject);
      };
      if (this.released) grant();
      else this.waiting.push(grant);
    });
  }

  release(): void {
    this.released = true;
    for (const grant of this.waiting.splice(0)) grant();
  }
}

describe('a run whose job lock lapsed, and the run that took the job over', () => {
  const prefix = uniquePrefix('lostlock');
  let emulator: EmulatorHandle;
  let context: Context;
  const connections: RedisClient[] = [];
  const workers: RevocationWorker[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 1, p99Ms: 5 } });
    // A `timeout` step applies the delete and holds the answer far past the client's timeout.
    emulator.setFaults({ timeoutDelayMs: 30_000 });
  });
  afterAll(async () => {
    for (const worker of workers) await worker.close().catch(() => undefined);
    for (const connection of connections) connection.disconnect();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('never records not_found for the certificate the first run removed', async () => {
    const config = testConfig(prefix, emulator, { MQTT_API_TIMEOUT_MS: '500' });
    context = openContext(config, 'test-lostlock');
    const api = new CertificateApi({ endpoint: emulator.endpoint, protocol: 'http', timeoutMs: 500, credentials: config.credentials });
    const startWorker = (gate: RateGate): RevocationWorker => {
      const connection = createRedis(TEST_REDIS_URL, { connectionName: 'test-lostlock-bullmq' });
      const redis = createRedis(TEST_REDIS_URL, { connectionName: 'test-lostlock' });
      connections.push(connection, redis);
      const worker = new RevocationWorker(
        { connection, redis, keys: context.keys, api, gate, adaptive: null, results: context.results, batches: context.batches, deadLetters: context.deadLetters, rateKey: 'test-lostlock', log: quietLogger() },
        { concurrency: 1, lockDurationMs: 1_000, maxAttempts: 8, retry: { baseMs: 100, maxMs: 200 }, restartSettleMs: 0 },
      );
      worker.start();
      workers.push(worker);
      return worker;
    };

    const [device] = generateDevices({ mqttInstanceId: 'mqtt-cn-lostlock1', caSn: 'ca0000lostlock', count: 1, prefix: 'lostlock' });
    if (device === undefined) throw new Error('no device');
    emulator.registry.addDevice(device);
    emulator.script(device.deviceSn, ['timeout']);

    // Run 1 takes the job and waits for its permit.
    const gate1 = new HeldGate();
    const first = startWorker(gate1);
    await first.waitUntilReady();
    const batchId = await enqueueDevices(context, [device]);
    await waitFor(() => gate1.acquired > 0, 'the first run to wait for its permit', 15_000);
    const [job] = await context.queue.getActive();
    if (job?.id === undefined) throw new Error('no active job');

    // Its lock lapses; a second worker takes the job over from the stalled set (data: no intent yet).
    await context.redis.del(`${context.keys.jobKeyPrefix()}${job.id}:lock`);
    const gate2 = new HeldGate();
    startWorker(gate2);
    await waitFor(() => gate2.acquired > 0, 'the second run to take the job over', 15_000);

    // Run 1 goes on: its intent write finds the lock taken, so it stops before calling (close()
    // waits for the run). Without that check it called, and run 2 overwrote its intent.
    gate1.release();
    await first.close();
    expect(emulator.calls().filter((call) => call.deviceSn === device.deviceSn)).toHaveLength(0);

    // Run 2 goes on from its copy of the data.
    gate2.release();
    const batch = await waitFor(async () => {
      const current = await context.batches.get(batchId);
      return current !== null && current.done === 1 ? current : null;
    }, 'the record', 15_000);
    expect(batch.accepted).toBe(1);
    const record = (await context.results.get(batchId, job.data.revocationId ?? '')) as ResultRecord | null;
    // Run 2 made the one call (applied, answer lost), then heard "not registered": never not_found.
    expect(emulator.calls().filter((call) => call.deviceSn === device.deviceSn && call.applied)).toHaveLength(1);
    expect(['deleted', 'gone']).toContain(record?.outcome);
    expect(await invariantViolations(context, batchId, emulator.calls(), new Set([device.deviceSn]))).toEqual([]);
  });
});
