/**
 * Completion-event callbacks cannot reach inside (issue 13, findings 1 and 4), checked where it
 * matters: in the process that sends them (`EventDelivery`, as every worker runs it), against a
 * real Redis and a receiver on 127.0.0.1.
 *
 * - the review's probes (127.0.0.1, 2130706433, [::ffff:127.0.0.1], 100.100.100.200,
 *   169.254.169.254) and a DNS name resolving to a private address are never connected to, and
 *   not retried (they used to be POSTed 12 times), even with their origins on the allow-list;
 * - an allowed origin is delivered, and the log names its origin and status, not its path;
 * - the connection goes to the address resolved once (pinned), redirects are not followed;
 * - a receiver answering 256 MiB costs the sender no memory: the body is dropped after 64 KiB.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BatchStore } from '../../src/batches/batch-store.js';
import { EventDelivery, type EventDeliveryOptions } from '../../src/events/event-delivery.js';
import type { HostLookup } from '../../src/events/callback-policy.js';
import { createLogger } from '../../src/logging/logger.js';
import { Keys } from '../../src/queue/keys.js';
import { createRedis, type RedisClient } from '../../src/redis/redis-connection.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix, waitFor } from '../helpers/redis.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const MiB = 1024 * 1024;

describe('completion-event callbacks', () => {
  const prefix = uniquePrefix('callback-ssrf');
  const keys = new Keys(prefix);
  let redis: RedisClient;
  let connection: RedisClient;
  let batches: BatchStore;
  let receiver: Server;
  let origin: string;
  let port: number;
  const hits = new Map<string, number>();
  const hosts: string[] = [];
  let hugeWritten = 0;
  let hugeClosed = false;
  const logLines: string[] = [];
  const deliveries: EventDelivery[] = [];

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    hosts.push(req.headers.host ?? '');
    req.resume();
    if (path === '/redirect') {
      res.writeHead(302, { location: `${origin}/landing` }).end();
    } else if (path === '/huge') {
      // 256 MiB of answer, written as fast as the client reads it.
      const chunk = Buffer.alloc(MiB, 0x61);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.on('close', () => (hugeClosed = true));
      const pump = (): void => {
        while (hugeWritten < 256 * MiB && !res.destroyed) {
          hugeWritten += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    } else {
      res.writeHead(204).end();
    }
  }

  beforeAll(async () => {
    redis = createRedis(TEST_REDIS_URL, { connectionName: 'test-callback-ssrf' });
    connection = createRedis(TEST_REDIS_URL, { connectionName: 'test-callback-ssrf-bullmq' });
    batches = new BatchStore(redis, keys, 1);
    receiver = createServer(handle);
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
    const address = receiver.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
    origin = `http://127.0.0.1:${port}`;
  });
  afterEach(async () => {
    for (const delivery of deliveries.splice(0)) await delivery.close();
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => receiver?.close(() => resolve()));
    await redis?.quit();
    await connection?.quit();
    await removePrefix(prefix);
  });

  function start(options: Partial<EventDeliveryOptions>): EventDelivery {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    const delivery = new EventDelivery(redis, connection, keys, batches, { defaultUrl: null, secret: SECRET, pollMs: 50, retryBaseMs: 50, attempts: 3, ...options }, createLogger('debug', 'test-callback-ssrf', sink));
    delivery.start();
    deliveries.push(delivery);
    return delivery;
  }

  /** A batch whose pause emits an event to `callbackUrl`. */
  async function batchWithEvent(callbackUrl: string): Promise<string> {
    const batchId = await batches.create({ name: 'callback probe', source: 'webhook', action: 'delete', createdBy: 'webhook:test', callbackUrl });
    expect(await batches.pause(batchId, 'probe')).toBe(true);
    return batchId;
  }

  const eventsFailed = async (batchId: string) => (await batches.get(batchId))?.eventsFailed ?? 0;

  it('never connects to the review’s probes or to a name resolving inside, and does not retry them', async () => {
    const probes = [
      `http://127.0.0.1:${port}/actuator/shutdown?force=true`,
      `http://2130706433:${port}/probe-decimal`,
      `http://[::ffff:127.0.0.1]:${port}/probe-mapped`,
      'http://100.100.100.200/latest/meta-data/',
      'http://169.254.169.254/latest/meta-data/',
      `http://receiver.internal:${port}/probe-dns`,
    ];
    let lookups = 0;
    const lookup: HostLookup = (host) => {
      lookups += 1;
      return Promise.resolve(host === 'receiver.internal' ? [{ address: '127.0.0.1', family: 4 }] : []);
    };
    // Every probe's origin is on the allow-list: the address rule holds whatever the list says.
    start({ allowedOrigins: probes.map((probe) => new URL(probe).origin), allowPrivate: false, lookup });
    const before = [...hits.values()].reduce((sum, count) => sum + count, 0);
    const ids = [];
    for (const probe of probes) ids.push(await batchWithEvent(probe));
    for (const batchId of ids) await waitFor(async () => (await eventsFailed(batchId)) === 1, `the event of ${batchId} to be given up`, 15_000);
    expect([...hits.values()].reduce((sum, count) => sum + count, 0)).toBe(before);
    expect(lookups).toBe(1);
    const refusals = logLines.filter((line) => line.includes('completion event not sent'));
    expect(refusals).toHaveLength(probes.length);
    for (const line of refusals) expect(line).toMatch(/"rule":"callback_address_forbidden"/);
    // Given up at the first attempt: still exactly one refusal per probe after a while.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(logLines.filter((line) => line.includes('completion event not sent'))).toHaveLength(probes.length);
  });

  it('refuses a callback whose origin is no longer allowed, without a request', async () => {
    start({ allowedOrigins: [], allowPrivate: true });
    const batchId = await batchWithEvent(`${origin}/not-allowed`);
    await waitFor(async () => (await eventsFailed(batchId)) === 1, 'the event to be given up', 15_000);
    expect(hits.get('/not-allowed')).toBeUndefined();
    expect(logLines.some((line) => line.includes('"rule":"callback_origin_not_allowed"'))).toBe(true);
  });

  it('delivers to an allowed origin and logs its origin and status, not its path or query', async () => {
    start({ allowedOrigins: [origin], allowPrivate: true });
    const batchId = await batchWithEvent(`${origin}/ok?receiver_token=do-not-log-me`);
    await waitFor(() => hits.get('/ok') === 1, 'the event to arrive', 15_000);
    const line = await waitFor(() => logLines.find((entry) => entry.includes('completion event delivered') && entry.includes(batchId)), 'the delivery log line');
    expect(JSON.parse(line)).toMatchObject({ batchId, origin, status: 204, attempt: 1 });
    expect(logLines.join('')).not.toContain('do-not-log-me');
  });

  it('connects to the address resolved once, whatever the name', async () => {
    let lookups = 0;
    const lookup: HostLookup = (host) => {
      lookups += 1;
      return Promise.resolve(host === 'pinned.test' ? [{ address: '127.0.0.1', family: 4 }] : []);
    };
    start({ allowedOrigins: [`http://pinned.test:${port}`], allowPrivate: true, lookup });
    hosts.length = 0;
    await batchWithEvent(`http://pinned.test:${port}/pinned`);
    // The system resolver knows no pinned.test: the request reached 127.0.0.1 through the pinned address.
    await waitFor(() => hits.get('/pinned') === 1, 'the pinned delivery', 15_000);
    expect(lookups).toBe(1);
    expect(hosts).toContain(`pinned.test:${port}`);
  });

  it('does not follow a redirect (and retries, then gives up)', async () => {
    start({ allowedOrigins: [origin], allowPrivate: true, attempts: 2 });
    const batchId = await batchWithEvent(`${origin}/redirect`);
    await waitFor(async () => (await eventsFailed(batchId)) === 1, 'the redirected event to be given up', 15_000);
    expect(hits.get('/redirect')).toBe(2);
    expect(hits.get('/landing')).toBeUndefined();
    expect(logLines.some((line) => line.includes('redirect, which is not followed'))).toBe(true);
  });

  it('drops a 256 MiB answer after 64 KiB: RSS stays within 20 MB', async () => {
    start({ allowedOrigins: [origin], allowPrivate: true });
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    try {
      const batchId = await batchWithEvent(`${origin}/huge`);
      await waitFor(() => logLines.some((line) => line.includes('completion event delivered') && line.includes(batchId)), 'the huge answer to be dropped', 20_000);
      await waitFor(() => hugeClosed, 'the receiver to see the connection closed', 10_000);
    } finally {
      clearInterval(sampler);
    }
    expect(peak - baseline, `peak RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB`).toBeLessThan(20 * MiB);
    // The receiver stopped long before 256 MiB: the sender hung up.
    expect(hugeWritten).toBeLessThan(64 * MiB);
  });
});
