/**
 * The batch page's device table against a real Redis: pages in input order by rank, exact search
 * by serial (under several CAs), the bounded outcome filter (Lua steps, resumable), batches
 * without an input order (HSCAN), and the evidence tally of a finished batch.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchStore } from '../../src/batches/batch-store.js';
import { revocationJobId } from '../../src/queue/job-id.js';
import { Keys } from '../../src/queue/keys.js';
import { InputOrder } from '../../src/results/input-order.js';
import type { Outcome, ResultRecord } from '../../src/results/result-record.js';
import { pendingPlaceholder, ResultStore } from '../../src/results/result-store.js';
import { BatchDevices, consoleFactsKey } from '../../src/server/console/batch-devices.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const prefix = uniquePrefix('console-devices');
const keys = new Keys(prefix);
let redis: Redis;
let batches: BatchStore;
let results: ResultStore;
let order: InputOrder;

const INSTANCE = 'mqtt-cn-devices01';
const CAS = ['ca0000000000000a', 'ca0000000000000b'];

function serial(index: number): string {
  return `dev${String(index).padStart(6, '0')}`;
}

/** A batch of `n` devices alternating between two CAs; every 7th failed, every 3rd deleted, the rest pending. */
async function makeBatch(n: number, withOrder: boolean): Promise<string> {
  const batchId = await batches.create({ name: `devices ${n}`, source: 'csv', action: 'delete', createdBy: 'test' });
  const devices = Array.from({ length: n }, (_, index) => ({ mqttInstanceId: INSTANCE, caSn: CAS[index % 2]!, deviceSn: serial(index), line: index + 2 }));
  for (let start = 0; start < n; start += 500) {
    const chunk = devices.slice(start, start + 500);
    await results.register(
      batchId,
      chunk.map((device) => ({ field: revocationJobId(device, 'delete'), placeholder: pendingPlaceholder({ batchId, ...device, action: 'delete' }), instance: INSTANCE })),
    );
    if (withOrder) await order.record(batchId, chunk.map((device) => ({ field: revocationJobId(device, 'delete'), line: device.line })));
  }
  // Pipelined: ioredis sends the scripts of one tick together.
  await Promise.all(
    devices.map((device, index) => {
      const outcome: Outcome | null = index % 7 === 0 ? 'failed' : index % 3 === 0 ? 'deleted' : null;
      if (outcome === null) return Promise.resolve(false);
      const record: ResultRecord = { batchId, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action: 'delete', outcome, evidence: 'answer', attempts: 1, requestId: `req-${index}`, errorCode: outcome === 'failed' ? 'ParameterFieldCheckFailed' : null, httpStatus: outcome === 'failed' ? 400 : 200, message: null, firstAttemptAt: null, finishedAt: new Date().toISOString() };
      return results.finalize(revocationJobId(device, 'delete'), record);
    }),
  );
  return batchId;
}

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
  batches = new BatchStore(redis, keys, 1);
  results = new ResultStore(redis, keys);
  order = new InputOrder(redis, keys);
});

afterAll(async () => {
  redis.disconnect();
  await removePrefix(prefix);
});

describe('batch device table', () => {
  it('pages in input order by rank, and finds a serial exactly under any of the batch\'s CAs', async () => {
    const batchId = await makeBatch(230, true);
    const devices = new BatchDevices(redis, keys, { pageSize: 25 });
    const first = await devices.page(batchId);
    expect(first.mode).toBe('order');
    expect(first.ordered).toBe(230);
    expect(first.rows.map((row) => row.line)).toEqual(Array.from({ length: 25 }, (_, index) => index + 2));
    expect(first.next).toBe('25');
    const last = await devices.page(batchId, { from: 225 });
    expect(last.rows.map((row) => row.record.deviceSn)).toEqual([225, 226, 227, 228, 229].map(serial));
    expect(last.next).toBeNull();

    const batch = (await batches.get(batchId))!;
    // The CAs are sampled from the batch itself (no console facts for this one): both are found.
    const found = await devices.search(batch, serial(101));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ line: 103, record: { deviceSn: serial(101), caSn: CAS[1] } });
    expect(await devices.search(batch, 'dev999999')).toEqual([]);
  });

  it('uses the pairs the console recorded, and a CA given with the search', async () => {
    const batchId = await batches.create({ name: 'pairs', source: 'csv', action: 'delete', createdBy: 'test' });
    const device = { mqttInstanceId: INSTANCE, caSn: 'ca00000000000rare', deviceSn: 'rare-device-1' };
    await results.register(batchId, [{ field: revocationJobId(device, 'delete'), placeholder: pendingPlaceholder({ batchId, ...device, action: 'delete' }), instance: INSTANCE }]);
    const devices = new BatchDevices(redis, keys, { pairCacheMs: 0 });
    const batch = (await batches.get(batchId))!;
    expect(await devices.search(batch, 'rare-device-1', 'ca00000000000rare')).toHaveLength(1);
    await redis.hset(consoleFactsKey(keys, batchId), 'pairs', JSON.stringify([{ instance: INSTANCE, caSn: 'ca00000000000rare' }]));
    expect(await devices.search(batch, 'rare-device-1')).toHaveLength(1);
  });

  it('filters by outcome in bounded steps that resume where they stopped', async () => {
    const batchId = await makeBatch(700, true);
    const batch = (await batches.get(batchId))!;
    const failedTotal = batch.counts.failed;
    expect(failedTotal).toBe(100);
    // Tiny steps and a tiny per-request budget: a request stops early and says where to go on.
    const devices = new BatchDevices(redis, keys, { pageSize: 10, examinePerStep: 20, maxExaminePerRequest: 40 });
    const seen: string[] = [];
    let from: string | null = null;
    let requests = 0;
    do {
      const page = await devices.filter(batchId, 'failed', from, failedTotal);
      expect(page.examined).toBeLessThanOrEqual(40);
      for (const row of page.rows) {
        expect(row.record.outcome).toBe('failed');
        seen.push(row.record.deviceSn);
      }
      from = page.next;
      requests += 1;
    } while (from !== null && requests < 100);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, index) => serial(index * 7)));

    const pending = await new BatchDevices(redis, keys, { pageSize: 25 }).filter(batchId, 'pending', null, 700 - batch.done);
    expect(pending.rows).toHaveLength(25);
    expect(pending.rows.every((row) => row.record.outcome === 'pending')).toBe(true);
    // An outcome the counters say no device has is answered without walking.
    expect((await devices.filter(batchId, 'gone', null, 0)).examined).toBe(0);
  });

  it('pages and filters a batch without an input order with HSCAN cursors', async () => {
    const batchId = await makeBatch(300, false);
    const devices = new BatchDevices(redis, keys, { pageSize: 50 });
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let guard = 0; guard < 100; guard += 1) {
      const page = await devices.page(batchId, cursor === undefined ? {} : { cursor });
      expect(page.mode).toBe('scan');
      for (const row of page.rows) seen.add(row.record.deviceSn);
      if (page.next === null) break;
      cursor = page.next;
    }
    expect(seen.size).toBe(300);
    const failed = await devices.filter(batchId, 'failed', null, 43);
    expect(failed.rows.length).toBeGreaterThan(0);
    expect(failed.rows.every((row) => row.record.outcome === 'failed' && row.line === null)).toBe(true);
  });

  it('tallies records by outcome and evidence', async () => {
    const batchId = await makeBatch(140, true);
    const tally = await new BatchDevices(redis, keys).tallyEvidence(batchId, 50);
    expect(tally).toEqual({ failed: { answer: 20 }, deleted: { answer: 40 }, pending: { unrecorded: 80 } });
  });
});
