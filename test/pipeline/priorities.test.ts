/**
 * Priorities: urgent work overtakes a bulk batch draining at the rate, batches of one class share
 * the rate round robin, and a batch's priority can be changed while it waits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/batches/batch.js';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import type { BatchPriority } from '../../src/queue/priority.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

const RATE = 300;
const INSTANCE = 'mqtt-cn-priority01';
const CA = 'ca000000priority';

describe('batch priorities', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;

  beforeAll(async () => {
    pipeline = await startPipeline('prio', { emulator: { latency: { medianMs: 10, p99Ms: 40 } }, env: { RATE_LIMIT_PER_SECOND: String(RATE) } });
    ({ emulator, context } = pipeline);
  });
  afterAll(() => pipeline?.close());

  async function batchOf(label: string, count: number, priority: BatchPriority): Promise<{ id: string }> {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
    for (const device of devices) emulator.registry.addDevice(device);
    const id = await context.batches.create({ name: label, source: 'csv', action: 'delete', createdBy: 'test', priority });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(id, 'delete', devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index } })));
    return { id };
  }

  async function until(batchId: string, what: string, predicate: (batch: Batch) => boolean, timeoutMs = 60_000): Promise<Batch> {
    return waitFor(async () => {
      const batch = await context.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, timeoutMs, 50);
  }

  it('an urgent batch goes before a bulk batch draining at the rate', async () => {
    const bulk = await batchOf('bulk', 2_400, 'bulk');
    await until(bulk.id, 'the bulk batch to be under way', (batch) => batch.done >= 300);
    const bulkBefore = (await context.batches.get(bulk.id))!.done;
    const urgent = await batchOf('urgent', 200, 'urgent');
    await until(urgent.id, 'the urgent batch to finish', (batch) => batch.state === 'completed');
    // Urgent first: while it ran, the bulk batch finished only the calls already in flight (the
    // worker's 64 jobs); sharing the rate would have given it about as many as the urgent batch
    // (200), and first come first served all 2,100 left. Counted, not timed: a loaded machine
    // slows both alike.
    const bulkDuring = (await context.batches.get(bulk.id))!.done - bulkBefore;
    expect(bulkDuring).toBeLessThan(150);
    // The bulk batch still finishes with every device right.
    const done = await until(bulk.id, 'the bulk batch to finish', (batch) => batch.state === 'completed');
    expect(done.counts).toMatchObject({ deleted: 2_400, failed: 0, not_found: 0 });
  });

  it('two normal batches share the rate round robin: the later one is not stuck behind the first', async () => {
    const first = await batchOf('rr-a', 1_500, 'normal');
    await until(first.id, 'batch A to be under way', (batch) => batch.done >= 150);
    const second = await batchOf('rr-b', 300, 'normal');
    const aAtStart = (await context.batches.get(first.id))!.done;
    const b = await until(second.id, 'batch B to finish', (batch) => batch.state === 'completed');
    const aAtEnd = (await context.batches.get(first.id))!.done;
    // B got about half the rate: A finished about as many as B's 300 meanwhile (its 64 in flight
    // more or less), not none (B first) and not its 1,350 left (B stuck behind A). Counted, not
    // timed: a loaded machine slows both alike.
    expect(aAtEnd - aAtStart).toBeGreaterThan(150);
    expect(aAtEnd - aAtStart).toBeLessThan(700);
    expect(b.counts.deleted).toBe(300);
    expect((await until(first.id, 'batch A to finish', (batch) => batch.state === 'completed')).counts.deleted).toBe(1_500);
  });

  it('a waiting bulk batch made urgent goes next', async () => {
    const normal = await batchOf('chg-n', 1_500, 'normal');
    const bulk = await batchOf('chg-b', 200, 'bulk');
    await until(normal.id, 'the normal batch to be under way', (batch) => batch.done >= 100);
    expect((await context.batches.get(bulk.id))!.done).toBe(0);
    const result = await context.control.setPriority(bulk.id, 'urgent');
    // Counted from when the change is made (moving 200 jobs takes a moment, at the rate).
    const normalBefore = (await context.batches.get(normal.id))!.done;
    expect(result.moved).toBeGreaterThan(150);
    expect((await context.batches.get(bulk.id))!.priority).toBe('urgent');
    await until(bulk.id, 'the upgraded batch to finish', (batch) => batch.state === 'completed');
    // It went next: the normal batch finished only what was in flight meanwhile (see above).
    expect((await context.batches.get(normal.id))!.done - normalBefore).toBeLessThan(150);
    expect((await until(normal.id, 'the normal batch to finish', (batch) => batch.state === 'completed')).counts.deleted).toBe(1_500);
  });
});
