/**
 * The intake (src/producer/intake.ts) against a real Redis: one REGISTER per chunk records the
 * devices, their input order and the rejected rows, idempotently; pipelined chunks keep the
 * input's order in the report; a cancelled batch stops its producer; the step before the first
 * chunk and an abandoned batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import type { InputItem } from '../../src/producer/device-request.js';
import { Intake, intakeDeps } from '../../src/producer/intake.js';
import { revocationId } from '../../src/queue/job-id.js';
import { reportStores } from '../../src/report/report-stores.js';
import { inputOrderKey } from '../../src/results/input-order.js';
import { orderedReportLines } from '../../src/results/report-writer.js';
import { pendingPlaceholder } from '../../src/results/result-store.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-intake01';
const CA = 'ca000000intake01';

function device(deviceSn: string, line: number): InputItem {
  return { kind: 'device', request: { mqttInstanceId: INSTANCE, caSn: CA, deviceSn, line } };
}

function rejected(line: number): InputItem {
  return { kind: 'rejected', row: { line, reason: `bad row ${line}` } };
}

describe('intake', () => {
  const prefix = uniquePrefix('intake');
  let context: Context;

  beforeAll(() => {
    context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, LOG_LEVEL: 'silent' }), 'test-intake');
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
  });

  /** The report's lines of a batch as [line, outcome, deviceSn]. */
  async function reportOrder(batchId: string): Promise<[number, string, string][]> {
    const lines: [number, string, string][] = [];
    const { order } = reportStores(context);
    for await (const line of orderedReportLines(batchId, { results: context.results, batches: context.batches, order })) {
      lines.push([Number(line.line), String(line.outcome), String(line.deviceSn ?? '')]);
    }
    return lines;
  }

  it('records devices, their input order and rejected rows per chunk, pipelined, and the report follows the input', async () => {
    // Serials in an order unlike their sort order, a rejected row every 7th line, a repeat.
    const items: InputItem[] = [];
    for (let line = 2; line < 2_002; line += 1) {
      if (line % 7 === 0) items.push(rejected(line));
      else items.push(device(`d${String((line * 7_919) % 10_007).padStart(5, '0')}`, line));
    }
    items.push(device('d00000-again', 2_002), device(`d${String((3 * 7_919) % 10_007).padStart(5, '0')}`, 2_003));
    const intake = new Intake(intakeDeps(context), { highWaterJobs: 0, chunkSize: 50 });
    const summary = await intake.run({ name: 'order', source: 'csv', action: 'delete', createdBy: 'test', facts: { reason: 'test run', command: 'revoker enqueue x.csv' } }, items, { inputSha256: () => 'ab'.repeat(32) });
    const devices = items.filter((item) => item.kind === 'device').length;
    expect(summary).toMatchObject({ read: items.length, accepted: devices - 1, rejected: 285, duplicates: 1, stoppedEarly: false, inputSha256: 'ab'.repeat(32) });
    expect(await context.batches.get(summary.batchId)).toMatchObject({ enqueued: true, accepted: devices - 1, rejected: 285, duplicates: 1 });
    const lines = await reportOrder(summary.batchId);
    expect(lines).toHaveLength(items.length - 1);
    // Every line in input order, rejected rows at theirs; the repeat keeps its first line.
    expect(lines.map(([line]) => line)).toEqual(items.slice(0, -1).map((item) => (item.kind === 'device' ? item.request.line : item.row.line)));
    expect(lines.filter(([, outcome]) => outcome === 'rejected').map(([line]) => line)).toEqual(items.filter((item) => item.kind === 'rejected').map((item) => (item.kind === 'rejected' ? item.row.line : 0)));
    const { audit } = reportStores(context);
    expect(await audit.get(summary.batchId)).toMatchObject({ reason: 'test run', command: 'revoker enqueue x.csv', inputSha256: 'ab'.repeat(32) });
    // The batch is open (no worker here): its order has no TTL, like the batch itself.
    expect(await context.redis.ttl(inputOrderKey(context.keys, summary.batchId))).toBe(-1);
  });

  it('a resent REGISTER (same request id) writes nothing twice: records, order, rejected rows, counters', async () => {
    const batchId = await context.batches.create({ name: 'resent', source: 'csv', action: 'delete', createdBy: 'test' });
    const entries = ['r1', 'r2'].map((deviceSn, index) => {
      const ref = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn };
      return { field: revocationId(ref, 'delete'), instance: INSTANCE, line: index + 10, placeholder: pendingPlaceholder({ batchId, ...ref, action: 'delete' }) };
    });
    const chunk = { devices: entries, rejected: [{ line: 11, reason: 'bad' }] };
    const first = await context.results.registerChunk(batchId, chunk, 'req-resent');
    const again = await context.results.registerChunk(batchId, chunk, 'req-resent');
    // The same answer, told apart as the one given before.
    expect(again).toEqual({ ...first, cached: true });
    expect(first.cached).toBe(false);
    expect(first.state).toBe('enqueuing');
    expect(first.answers.map((answer) => answer.flag)).toEqual(['queue', 'queue']);
    expect(first.answers[0]?.jobId).toBe(`${entries[0]!.field}-1`);
    expect(await context.batches.get(batchId)).toMatchObject({ accepted: 2, rejected: 1, duplicates: 0 });
    expect(await context.redis.llen(context.keys.rejected(batchId))).toBe(1);
    const { order } = reportStores(context);
    expect(await order.linesOf(batchId, entries.map((entry) => entry.field))).toEqual([10, 11]);
  });

  it('stops reading when the batch is cancelled while enqueuing, and still marks it enqueued', async () => {
    const items = Array.from({ length: 2_000 }, (_, index) => device(`cancel-${index}`, index + 2));
    const intake = new Intake(intakeDeps(context), { highWaterJobs: 0, chunkSize: 100 });
    const batch = await intake.open({ name: 'cancelled', source: 'csv', action: 'delete', createdBy: 'test' });
    let cancelled = false;
    const summary = await batch.enqueue(items, {
      onProgress: (progress) => {
        if (!cancelled && progress.accepted >= 100) {
          cancelled = true;
          void context.batches.cancel(batch.batchId, 'wrong list');
        }
      },
    });
    expect(summary.stoppedEarly).toBe(true);
    expect(summary.accepted).toBeLessThan(2_000);
    const stored = await context.batches.get(batch.batchId);
    expect(stored).toMatchObject({ state: 'cancelled', enqueued: true, accepted: summary.accepted });
    expect(await context.redis.hlen(context.keys.results(batch.batchId))).toBe(summary.accepted);
  });

  it('runs the step before the first chunk once, before anything is registered; an abandoned batch finishes empty', async () => {
    const intake = new Intake(intakeDeps(context), { highWaterJobs: 0, chunkSize: 10 });
    const batch = await intake.open({ name: 'seam', source: 'csv', action: 'delete', createdBy: 'test' });
    expect(await context.batches.producerAlive(batch.batchId)).toBe(true);
    const seen: number[] = [];
    const items = Array.from({ length: 35 }, (_, index) => device(`seam-${index}`, index + 2));
    const summary = await batch.enqueue(items, {
      beforeFirstChunk: async (devices) => {
        seen.push(devices.length, await context.redis.hlen(context.keys.results(batch.batchId)));
      },
    });
    expect(seen).toEqual([10, 0]);
    expect(summary.accepted).toBe(35);
    await expect(batch.enqueue(items)).rejects.toThrow(/enqueued already/);

    const abandoned = await intake.open({ name: 'abandoned', source: 'csv', action: 'delete', createdBy: 'test' });
    await abandoned.abandon('the existence snapshot failed: nothing was enqueued');
    expect(await context.batches.get(abandoned.batchId)).toMatchObject({ state: 'completed', enqueued: true, accepted: 0, inputNote: 'the existence snapshot failed: nothing was enqueued' });
    expect(await context.batches.producerAlive(abandoned.batchId)).toBe(false);
  });

  it('records the follow-up on the batch a linked batch comes from', async () => {
    const intake = new Intake(intakeDeps(context), { highWaterJobs: 0 });
    const first = await intake.run({ name: 'first', source: 'csv', action: 'delete', createdBy: 'test' }, [device('link-1', 2)]);
    const second = await intake.run({ name: 'second', source: 'csv', action: 'delete', createdBy: 'test', facts: { linkedBatchId: first.batchId } }, [device('link-1', 1)]);
    const { audit } = reportStores(context);
    expect((await audit.get(first.batchId)).followUpBatchIds).toEqual([second.batchId]);
    expect((await audit.get(second.batchId)).linkedBatchId).toBe(first.batchId);
  });
});
