/**
 * Flow control: a 60,000-row CSV enqueued with the high-water mark at 4,000 never makes Redis hold
 * more than the mark plus one chunk of waiting jobs, and every row is accounted for. (The mark is
 * filled about 15 times: as many decisions as a 200,000-row file at 10,000 needs, in a third of
 * the time.)
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import { readDeviceCsv } from '../../src/producer/csv-source.js';
import { ENQUEUER_DEFAULTS, Enqueuer } from '../../src/producer/enqueuer.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';

const ROWS = 60_000;
const HIGH_WATER = 4_000;

function* csvLines(): Generator<string> {
  yield 'DeviceSn,CaSn,MqttInstanceId\n';
  for (let i = 0; i < ROWS; i += 1) {
    // Every 3,000th row is malformed (whitespace inside the serial): rejected, counted.
    yield i % 3_000 === 2_999 ? `bad serial ${i},ca-flow,mqtt-cn-flow01\n` : `flow${i.toString(16).padStart(10, '0')},caflow0001,mqtt-cn-flow01\n`;
  }
}

describe('flow control', () => {
  const prefix = uniquePrefix('flow');
  let context: Context;

  beforeAll(() => {
    context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix }), 'test-flow');
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
  });

  it('keeps waiting jobs under the mark plus one chunk, and accounts for every row', async () => {
    const batchId = await context.batches.create({ name: 'flow', source: 'csv', action: 'delete', createdBy: 'test' });
    let peakWaiting = 0;
    let drained = 0;
    let running = true;
    // A consumer standing in for the workers: takes away what is waiting, in bulk, as it appears.
    const consumer = (async () => {
      while (running) {
        const waiting = await context.queue.getJobCountByTypes('wait', 'prioritized');
        peakWaiting = Math.max(peakWaiting, waiting);
        if (waiting >= HIGH_WATER) {
          drained += waiting;
          await context.queue.drain();
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const summary = await new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: HIGH_WATER }).enqueue(
      batchId,
      'delete',
      readDeviceCsv(Readable.from(csvLines())),
      () => {
        // Sampled right after each chunk is added, where the peak is.
        void context.queue.getJobCountByTypes('wait', 'prioritized').then((waiting) => (peakWaiting = Math.max(peakWaiting, waiting)));
      },
    );
    running = false;
    await consumer;
    const rejected = ROWS / 3_000;
    expect(summary).toMatchObject({ read: ROWS, accepted: ROWS - rejected, rejected, duplicates: 0 });
    expect(peakWaiting).toBeLessThanOrEqual(HIGH_WATER + ENQUEUER_DEFAULTS.chunkSize);
    // The flow control really held the producer back: the consumer had to make room many times.
    expect(drained).toBeGreaterThan(ROWS / 2);
    const batch = (await context.batches.get(batchId))!;
    expect(batch).toMatchObject({ accepted: ROWS - rejected, rejected, enqueued: true });
    expect(await context.redis.hlen(context.keys.results(batchId))).toBe(ROWS - rejected);
    expect(await context.redis.llen(context.keys.rejected(batchId))).toBe(rejected);
  }, 120_000);
});
