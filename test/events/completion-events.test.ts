/**
 * Completion events: a receiver on 127.0.0.1 verifies every delivery with the `standardwebhooks`
 * package and fails the first two; it must end up with exactly one event per expected transition
 * of a completed, a breaker-paused and a cancelled batch, each with a stable webhook-id.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchEventBody } from '../../src/events/batch-event.js';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import type { Context } from '../../src/runtime/context.js';
import { enqueueDevices, startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

interface Received {
  path: string;
  id: string;
  event: BatchEventBody;
}

describe('completion events', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let receiver: Server;
  let receiverUrl: string;
  let posts = 0;
  let refusedSignatures = 0;
  const received: Received[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        posts += 1;
        // The first two deliveries fail, whatever they are: revoker must retry.
        if (posts <= 2) {
          res.writeHead(500).end();
          return;
        }
        try {
          const event = new Webhook(SECRET).verify(body, req.headers as Record<string, string>) as BatchEventBody;
          received.push({ path: req.url ?? '', id: String(req.headers['webhook-id']), event });
          res.writeHead(204).end();
        } catch {
          refusedSignatures += 1;
          res.writeHead(401).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
    const address = receiver.address();
    receiverUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    pipeline = await startPipeline('events', {
      emulator: { latency: { medianMs: 2, p99Ms: 10 } },
      // The receiver is on 127.0.0.1: private addresses must be allowed explicitly (EVENTS_URL's
      // origin is allowed by itself, and the callback below uses the same origin).
      env: { RATE_LIMIT_PER_SECOND: '200', EVENTS_URL: `${receiverUrl}/default`, EVENTS_SECRET: SECRET, EVENTS_RETRY_BASE_MS: '100', EVENTS_ALLOW_PRIVATE: 'true' },
    });
    ({ emulator, context } = pipeline);
  });
  afterAll(async () => {
    await pipeline?.close();
    await new Promise<void>((resolve) => receiver?.close(() => resolve()));
  });

  it('delivers exactly the expected events, signed, after failed first deliveries', async () => {
    // 1. Completed, with its own callback URL (as a webhook's callbackUrl sets it).
    const okDevices = generateDevices({ mqttInstanceId: 'mqtt-cn-events01', caSn: 'ca00000000events', count: 20, prefix: 'ok' });
    for (const device of okDevices) emulator.registry.addDevice(device);
    const completedId = await context.batches.create({ name: 'completes', source: 'webhook', action: 'delete', createdBy: 'test', callbackUrl: `${receiverUrl}/callback` });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(
      completedId,
      'delete',
      okDevices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index } })),
    );

    // 2. Paused by the not_found breaker: 600 devices, none registered (enough that the batch stays
    //    paused: with a few, the calls in flight when it trips would finish it, then it completes).
    const breakerId = await enqueueDevices(context, generateDevices({ mqttInstanceId: 'mqtt-cn-events01', caSn: 'ca00000000events', count: 600, prefix: 'missing' }), { name: 'breaker' });

    // 3. Cancelled part-way.
    const slowDevices = generateDevices({ mqttInstanceId: 'mqtt-cn-events01', caSn: 'ca00000000events', count: 400, prefix: 'slow' });
    for (const device of slowDevices) emulator.registry.addDevice(device);
    const cancelledId = await enqueueDevices(context, slowDevices, { name: 'to cancel' });
    await waitFor(async () => ((await context.batches.get(cancelledId))?.done ?? 0) >= 20, 'the third batch to be under way');
    await context.control.cancel(cancelledId, 'wrong list');

    const events = await waitFor(() => {
      const unique = new Map(received.map((entry) => [entry.id, entry]));
      const types = [...unique.values()].map((entry) => `${entry.event.batchId}:${entry.event.type}`);
      return types.includes(`${completedId}:batch.completed`) && types.includes(`${breakerId}:batch.paused`) && types.includes(`${cancelledId}:batch.cancelled`) ? unique : null;
    }, 'the three events', 60_000, 100);

    // Exactly those three (retries share an id), nothing else, all signatures valid.
    const byBatch = [...events.values()].map((entry) => `${entry.event.batchId}:${entry.event.type}`).sort();
    expect(byBatch).toEqual([`${breakerId}:batch.paused`, `${cancelledId}:batch.cancelled`, `${completedId}:batch.completed`].sort());
    expect(refusedSignatures).toBe(0);
    expect(posts).toBeGreaterThanOrEqual(5);
    for (const entry of events.values()) expect(entry.event.eventId).toBe(entry.id);

    const completed = [...events.values()].find((entry) => entry.event.batchId === completedId)!;
    expect(completed.path).toBe('/callback');
    expect(completed.event.counts.deleted).toBe(20);
    expect(completed.event.reportPath).toBe(`/v1/batches/${completedId}/report?format=csv`);
    const paused = [...events.values()].find((entry) => entry.event.batchId === breakerId)!;
    expect(paused.path).toBe('/default');
    expect(paused.event.reason).toMatch(/^not_found breaker/);
    const cancelled = [...events.values()].find((entry) => entry.event.batchId === cancelledId)!;
    expect(cancelled.event.counts.cancelled).toBeGreaterThan(0);
    expect(cancelled.event.counts.deleted + cancelled.event.counts.cancelled).toBe(400);
  });
});
