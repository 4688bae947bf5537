/**
 * The worker holds as many jobs as the rate budgets let it use (job-intake.ts): jobs that would
 * only wait in the process for a slot stay in the queue, and the number grows back when the
 * process's callers run dry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateApi } from '../../src/cloud/certificate-api.js';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ApiAction } from '../../src/limiter/api-action.js';
import type { Permit } from '../../src/limiter/rate-gate.js';
import { createRedis, type RedisClient } from '../../src/redis/redis-connection.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { JobIntake } from '../../src/worker/job-intake.js';
import { RevocationWorker } from '../../src/worker/revocation-worker.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';
import { StubGate } from '../helpers/stub-gate.js';

describe('JobIntake: the number of jobs a worker holds', () => {
  it('starts at the ceiling, lets go of half the waiting beyond the spare, never below the floor', () => {
    const intake = new JobIntake({ ceilingJobs: 64, floorJobs: 16, spareJobs: 4 });
    expect(intake.current()).toBe(64);
    expect(intake.next(40)).toBe(46); // 18 of the 36 beyond the spare
    expect(intake.next(5)).toBe(45);
    expect(intake.next(4)).toBe(45); // the spare itself stays
    expect(intake.next(100)).toBe(16);
    expect(intake.next(100)).toBe(16);
  });

  it('grows by half when the callers ran dry, up to the ceiling; a gate that says nothing changes nothing', () => {
    const intake = new JobIntake({ ceilingJobs: 64, floorJobs: 16, spareJobs: 4 });
    intake.next(1_000);
    expect(intake.next(0)).toBe(24);
    expect(intake.next(0)).toBe(36);
    expect(intake.next(null)).toBe(36);
    expect(intake.next(0)).toBe(54);
    expect(intake.next(0)).toBe(64);
    expect(intake.next(0)).toBe(64);
  });

  it('never goes above a ceiling lower than the floor', () => {
    const intake = new JobIntake({ ceilingJobs: 4, floorJobs: 16, spareJobs: 4 });
    expect(intake.next(50)).toBe(4);
    expect(intake.next(0)).toBe(4);
  });
});

/** A gate that holds every caller until the test lets them go, and says how many wait. */
class HoldingGate extends StubGate {
  private held: (() => void)[] = [];
  /** What `takeWaitingLow` answers: the held callers, or 0 (the order ran dry). */
  report: 'held' | 'dry' = 'held';
  mostHeld = 0;
  /** Grants at once (the test is over). */
  open = false;

  async acquire(_action: ApiAction, _priority?: number, whileWaiting?: () => Promise<void>): Promise<Permit> {
    // The worker's call intent, written while the caller waits.
    await whileWaiting?.();
    if (this.open) return { confirm: () => Promise.resolve() };
    return new Promise((resolve) => {
      this.held.push(() => resolve({ confirm: () => Promise.resolve() }));
      this.mostHeld = Math.max(this.mostHeld, this.held.length);
    });
  }

  holding(): number {
    return this.held.length;
  }

  /** Lets `count` callers go, oldest first, one every 5 ms. */
  async drip(count: number): Promise<void> {
    for (let i = 0; i < count; i += 1) {
      this.held.shift()?.();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  release(): void {
    for (const grant of this.held.splice(0)) grant();
  }

  takeWaitingLow(): number {
    return this.report === 'held' ? this.held.length : 0;
  }
}

describe('the worker holds only the jobs its callers need', () => {
  const prefix = uniquePrefix('intake');
  let emulator: EmulatorHandle;
  let context: Context;
  const connections: RedisClient[] = [];
  let worker: RevocationWorker | null = null;
  const gate = new HoldingGate();

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 1, p99Ms: 5 } });
  });
  afterAll(async () => {
    gate.open = true;
    gate.release();
    await worker?.close().catch(() => undefined);
    for (const connection of connections) connection.disconnect();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('takes no new job beyond the limit while its callers wait, and takes more again once they run dry', async () => {
    const config = testConfig(prefix, emulator);
    context = openContext(config, 'test-intake');
    const api = new CertificateApi({ endpoint: emulator.endpoint, protocol: 'http', timeoutMs: 2_000, credentials: config.credentials });
    const connection = createRedis(TEST_REDIS_URL, { connectionName: 'test-intake-bullmq' });
    const redis = createRedis(TEST_REDIS_URL, { connectionName: 'test-intake' });
    connections.push(connection, redis);
    worker = new RevocationWorker(
      { connection, redis, keys: context.keys, api, gate, adaptive: null, results: context.results, batches: context.batches, deadLetters: context.deadLetters, rateKey: 'test-intake', log: quietLogger() },
      { concurrency: 40, intakeEveryMs: 30, restartSettleMs: 0 },
    );
    const running = worker;
    running.start();
    await running.waitUntilReady();
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-intake', caSn: 'ca0000intake', count: 300, prefix: 'intake' });
    for (const device of devices) emulator.registry.addDevice(device);
    await enqueueDevices(context, devices);

    // At first it takes as many as WORKER_CONCURRENCY; all of them wait for the gate.
    await waitFor(() => gate.holding() === 40, 'the worker to hold 40 jobs', 15_000);
    await waitFor(() => running.jobLimit() === 16, 'the limit to fall to the floor', 15_000);
    // The waiting ones go through one at a time, as the budgets let them: from now on it holds no
    // more than 16. (Let go all at once, BullMQ's fetching overshoots for a moment; slots are spaced.)
    gate.mostHeld = 0;
    await gate.drip(120);
    expect(gate.mostHeld).toBe(16);

    // Its callers run dry: it takes more again, up to the ceiling.
    gate.report = 'dry';
    await waitFor(() => running.jobLimit() === 40, 'the limit to grow back to the ceiling', 15_000);
    await gate.drip(20);
    await waitFor(() => gate.holding() >= 30, 'the worker to hold more than 16 jobs again', 15_000);
  });
});
