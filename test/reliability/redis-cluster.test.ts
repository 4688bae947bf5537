/**
 * Redis Cluster: a 3-master cluster of test-owned `redis-server` processes, revoker configured
 * with REDIS_CLUSTER=true and REDIS_URL pointing at a master that does NOT own the prefix's slot
 * (so every command must be routed by the cluster client). A batch runs through the queue, the
 * rate gate (local order + slot reservations), the result scripts, the dead-letter queue, a redrive and
 * pause/resume, with no CROSSSLOT (or any other Redis) error, and every key lands in one slot.
 */
import { Writable } from 'node:stream';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/batches/batch.js';
import { resolveConfig } from '../../src/config/config.js';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { revocationId } from '../../src/queue/job-id.js';
import type { PendingRecord, ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { enqueueDevices, testConfig } from '../helpers/pipeline.js';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster.js';
import { uniquePrefix, waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-cluster01';
const CA = 'ca000000000cluster';

describe('REDIS_CLUSTER configuration', () => {
  it('is off by default and takes true/false', () => {
    expect(resolveConfig({}).redisCluster).toBe(false);
    expect(resolveConfig({ REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
    expect(() => resolveConfig({ REDIS_CLUSTER: 'yes' })).toThrow(/REDIS_CLUSTER must be one of true, false, got 'yes'/);
  });

  it('refuses a prefix without a hash tag on a cluster (its keys would span slots)', () => {
    expect(() => resolveConfig({ REDIS_CLUSTER: 'true', REVOKER_PREFIX: 'revoker' })).toThrow(/REVOKER_PREFIX must contain a hash tag/);
    expect(() => resolveConfig({ REDIS_CLUSTER: 'true', REVOKER_PREFIX: 'a{}b' })).toThrow(/REVOKER_PREFIX/);
    expect(resolveConfig({ REVOKER_PREFIX: 'revoker' }).prefix).toBe('revoker');
  });
});

/** Runs one command on one cluster node (no redirections followed). */
async function onNode<T>(port: number, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  try {
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

/** The port of the master serving `slot`, from CLUSTER SLOTS. */
async function ownerOf(port: number, slot: number): Promise<number> {
  const ranges = (await onNode(port, (redis) => redis.call('CLUSTER', 'SLOTS'))) as [number, number, [string, number, ...unknown[]]][];
  const range = ranges.find(([start, end]) => start <= slot && slot <= end);
  if (range === undefined) throw new Error(`no master serves slot ${slot}`);
  return range[2][1];
}

describe('Redis Cluster (3 masters)', () => {
  const prefix = uniquePrefix('cluster');
  /** Every warning and error the worker and limiter logged, and every connection error. */
  const problems: string[] = [];
  let cluster: RedisClusterHandle;
  let emulator: EmulatorHandle;
  let context: Context;
  let runtime: WorkerRuntime;
  let owner: number;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    const slot = Number(await onNode(cluster.ports[0]!, (redis) => redis.call('CLUSTER', 'KEYSLOT', prefix)));
    owner = await ownerOf(cluster.ports[0]!, slot);
    // Seed from a master that does not hold the keys: a plain client would get MOVED on every command.
    const seed = cluster.ports.find((port) => port !== owner)!;
    emulator = await startEmulator({ latency: { medianMs: 2, p99Ms: 10 } });
    const config = testConfig(prefix, emulator, {
      REDIS_URL: `redis://127.0.0.1:${seed}`,
      REDIS_CLUSTER: 'true',
      // Slow enough that the batch is still running when the test pauses it.
      RATE_LIMIT_PER_SECOND: '150',
      MAX_ATTEMPTS: '3',
      MQTT_API_TIMEOUT_MS: '300',
    });
    context = openContext(config, 'test-cluster');
    context.redis.on('error', (error: Error) => problems.push(`context connection: ${error.message}`));
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        problems.push(chunk.toString());
        done();
      },
    });
    runtime = await startWorkerRuntime(config, pino({ level: 'warn' }, sink));
  });

  afterAll(async () => {
    await runtime?.close();
    await context?.close();
    await emulator?.stop();
    await cluster?.stop();
  });

  async function until(batchId: string, what: string, predicate: (batch: Batch) => boolean): Promise<Batch> {
    return waitFor(async () => {
      const batch = await context.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, 20_000, 50);
  }

  it('runs a batch through queue, limiter, results, dead letters and pause/resume without CROSSSLOT', async () => {
    expect(context.redis).toBeInstanceOf(Cluster);
    const registered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 295, prefix: 'cluster' });
    for (const device of registered) emulator.registry.addDevice(device);
    const missing = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 5, prefix: 'absent' });
    const brokenParam = registered[7]!.deviceSn;
    emulator.script(brokenParam, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);

    const batchId = await enqueueDevices(context, [...registered, ...missing]);

    // Pause mid-batch: workers park what they take, no call is made for the batch.
    await until(batchId, 'the batch to be under way', (b) => b.done >= 40);
    expect((await context.control.pause(batchId, 'cluster test')).ok).toBe(true);
    await waitFor(async () => (await context.queue.getActiveCount()) === 0 && (await context.queue.getJobCountByTypes('wait', 'prioritized')) === 0, 'every remaining job to be parked', 20_000, 50);
    const paused = await context.batches.get(batchId);
    expect(paused?.state).toBe('paused');
    expect(paused?.done).toBeLessThan(300);
    const callsWhilePaused = emulator.calls().length;
    // A second batch asking for devices whose jobs are parked subscribes to them.
    const pending = new Set<string>();
    for await (const record of context.results.scan(batchId)) if (record.outcome === 'pending' && record.deviceSn !== brokenParam) pending.add(record.deviceSn);
    const followed = registered.filter((device) => pending.has(device.deviceSn)).slice(0, 10);
    expect(followed).toHaveLength(10);
    const followerId = await enqueueDevices(context, followed, { name: 'follower' });
    // The follower joined the parked jobs (no job of its own: still generation 1) and, running,
    // woke them: FINALIZE then writes its records through key names it builds itself.
    for (const device of followed) expect((await context.results.revocation(revocationId(device, 'delete')))?.gen).toBe(1);
    // An account-wide pause as bad credentials leave it: resume lifts it with a SCAN, which on a
    // cluster must visit every master (the key lives on `owner`, the client's SCAN goes anywhere).
    const accountPause = context.keys.accountPause(runtime.rateKey);
    await context.redis.hset(accountPause, 'reason', 'cluster test');
    const resumed = await context.control.resume(batchId);
    expect(resumed).toMatchObject({ ok: true });
    expect(resumed.woken).toBeGreaterThan(0);
    expect(await context.redis.exists(accountPause)).toBe(0);
    expect(emulator.calls().length).toBeGreaterThanOrEqual(callsWhilePaused);

    const batch = await until(batchId, 'the batch to complete', (b) => b.state === 'completed');
    const follower = await until(followerId, 'the following batch to complete', (b) => b.state === 'completed');
    expect(follower.counts).toEqual({ deleted: 10, inactivated: 0, not_found: 0, gone: 0, failed: 0, cancelled: 0 });
    expect(batch.accepted).toBe(300);
    expect(batch.counts).toEqual({ deleted: 294, inactivated: 0, not_found: 5, gone: 0, failed: 1, cancelled: 0 });

    // One terminal record per device.
    const records = new Map<string, ResultRecord | PendingRecord>();
    for await (const record of context.results.scan(batchId)) {
      expect(records.has(record.deviceSn)).toBe(false);
      records.set(record.deviceSn, record);
    }
    expect(records.size).toBe(300);
    expect([...records.values()].filter((record) => record.outcome === 'pending')).toEqual([]);
    for (const device of missing) expect(records.get(device.deviceSn)).toMatchObject({ outcome: 'not_found' });
    expect(records.get(brokenParam)).toMatchObject({ outcome: 'failed', errorCode: 'ParameterFieldCheckFailed', attempts: 1 });

    // The dead letter exists and redrives (the emulator now answers normally).
    const letters = await context.deadLetters.list(batchId);
    expect(letters.map((letter) => letter.deviceSn)).toEqual([brokenParam]);
    expect((await context.deadLetters.redrive(batchId)).redriven).toBe(1);
    const after = await until(batchId, 'the redriven device to finish', (b) => b.state === 'completed' && b.counts.failed === 0);
    expect(after.counts).toEqual({ deleted: 295, inactivated: 0, not_found: 5, gone: 0, failed: 0, cancelled: 0 });
    expect(await context.deadLetters.count()).toBe(0);
    let redriven: ResultRecord | PendingRecord | undefined;
    for await (const record of context.results.scan(batchId)) if (record.deviceSn === brokenParam) redriven = record;
    expect(redriven).toMatchObject({ outcome: 'deleted', attempts: 1 });

    // Everything (BullMQ, slot reservations, records) shares the prefix's slot: the other
    // masters hold no key at all, the owner holds them all.
    for (const port of cluster.ports) {
      const size = await onNode(port, (redis) => redis.dbsize());
      if (port === owner) expect(size).toBeGreaterThan(0);
      else expect(size).toBe(0);
    }
    expect((await onNode(owner, (redis) => redis.keys(context.keys.budgetWindow('*')))).length).toBeGreaterThan(0);

    // Nothing went wrong on the way: no CROSSSLOT, no script refused a key, no logged error.
    expect(problems.filter((line) => /CROSSSLOT|non local key|same slot|MOVED|ASK\b/i.test(line))).toEqual([]);
    // The one warning expected: the scripted device being dead-lettered.
    const unexpected = problems.filter((line) => !line.includes('"msg":"device dead-lettered"'));
    expect(unexpected).toEqual([]);
    expect(problems).toHaveLength(1);
    // Bounded: a SCAN sent to the cluster client hops between nodes and never ends (a hang, not an error).
  }, 30_000);
});
