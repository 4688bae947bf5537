/**
 * Delivers completion events, at least once each, signed per Standard Webhooks with
 * EVENTS_SECRET and a stable `webhook-id`.
 *
 * Path of an event: the Lua script that changes a batch's state appends an entry to the outbox
 * list (atomically with the change, so a crash cannot lose it); any worker process moves
 * entries from the outbox to the `batch-events` BullMQ queue (the job id is the event id, so a
 * retried move adds nothing twice); the queue's worker POSTs them, retrying with exponential
 * backoff for hours (BullMQ attempts), and counts final failures on the batch.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { BatchStore } from '../batches/batch-store.js';
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { buildBatchEvent, eventId, type OutboxEntry } from './batch-event.js';

/** Name of the BullMQ queue of events to deliver. */
export const EVENTS_QUEUE = 'batch-events';

/** Options of `EventDelivery`. */
export interface EventDeliveryOptions {
  /** Where events go for batches without their own callback URL (EVENTS_URL); null: nowhere. */
  defaultUrl: string | null;
  /** Standard Webhooks secret that signs events (EVENTS_SECRET); null: events are not sent. */
  secret: string | null;
  /** How often the outbox is looked at. */
  pollMs: number;
  /** Delivery attempts of one event. */
  attempts: number;
  /** First retry delay; doubles each time (12 attempts from 5 s span about 5.7 hours). */
  retryBaseMs: number;
  /** Timeout of one POST. */
  timeoutMs: number;
}

/** Defaults of `EventDeliveryOptions`. */
export const EVENT_DELIVERY_DEFAULTS: Omit<EventDeliveryOptions, 'defaultUrl' | 'secret'> = {
  pollMs: 500,
  attempts: 12,
  retryBaseMs: 5_000,
  timeoutMs: 10_000,
};

/** Moves outbox entries to the events queue and delivers them. */
export class EventDelivery {
  private readonly options: EventDeliveryOptions;
  private readonly queue: Queue<OutboxEntry>;
  private worker: Worker<OutboxEntry> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private moving = false;

  constructor(
    private readonly redis: Redis,
    private readonly connection: Redis,
    private readonly keys: Keys,
    private readonly batches: BatchStore,
    options: Partial<EventDeliveryOptions> & Pick<EventDeliveryOptions, 'defaultUrl' | 'secret'>,
    private readonly log: Logger,
  ) {
    this.options = { ...EVENT_DELIVERY_DEFAULTS, ...options };
    this.queue = new Queue<OutboxEntry>(EVENTS_QUEUE, { connection: redis, prefix: keys.prefix });
    this.queue.on('error', () => undefined);
  }

  /** Starts moving and delivering. */
  start(): void {
    this.worker = new Worker<OutboxEntry>(EVENTS_QUEUE, (job) => this.deliver(job), { connection: this.connection, prefix: this.keys.prefix, concurrency: 8 });
    this.worker.on('error', (error) => this.log.warn({ err: error }, 'event delivery worker error'));
    this.worker.on('failed', (job, error) => {
      if (job === undefined || job.attemptsMade < this.options.attempts) return;
      this.log.error({ batchId: job.data.batchId, eventId: eventId(job.data), err: error }, 'event not delivered after every attempt');
      void this.redis.hincrby(this.keys.batch(job.data.batchId), 'eventsFailed', 1).catch(() => undefined);
    });
    this.timer = setInterval(() => {
      if (this.moving) return;
      this.moving = true;
      this.moveOutbox()
        .catch((error: unknown) => this.log.warn({ err: error }, 'moving events from the outbox failed'))
        .finally(() => (this.moving = false));
    }, this.options.pollMs);
    this.timer.unref();
  }

  /**
   * Moves outbox entries to the queue. An entry is first moved to a processing list, then added
   * (idempotent by event id), then removed; entries a crashed process left in the processing
   * list are added again by the next pass (harmless: same job id).
   */
  async moveOutbox(): Promise<number> {
    let moved = 0;
    const leftovers = await this.redis.lrange(this.keys.eventsProcessing(), 0, 99);
    for (const raw of leftovers) await this.enqueue(raw);
    for (;;) {
      const raw = await this.redis.lmove(this.keys.eventsOutbox(), this.keys.eventsProcessing(), 'LEFT', 'RIGHT');
      if (raw === null) return moved;
      await this.enqueue(raw);
      moved += 1;
    }
  }

  private async enqueue(raw: string): Promise<void> {
    const entry = JSON.parse(raw) as OutboxEntry;
    await this.queue.add(`batch.${entry.state}`, entry, {
      jobId: eventId(entry),
      attempts: this.options.attempts,
      backoff: { type: 'exponential', delay: this.options.retryBaseMs },
      removeOnComplete: { age: 86_400 },
      removeOnFail: { age: 7 * 86_400 },
    });
    await this.redis.lrem(this.keys.eventsProcessing(), 1, raw);
  }

  private async deliver(job: Job<OutboxEntry>): Promise<void> {
    const entry = job.data;
    const batch = await this.batches.get(entry.batchId);
    if (batch === null) return;
    const url = (await this.redis.hget(this.keys.batch(entry.batchId), 'callbackUrl')) ?? this.options.defaultUrl;
    if (url === null || url === '') return;
    if (this.options.secret === null) {
      this.log.warn({ batchId: entry.batchId }, 'a completion event has a destination but EVENTS_SECRET is not set: not sent');
      return;
    }
    const body = JSON.stringify(buildBatchEvent(entry, batch));
    const id = eventId(entry);
    const now = new Date();
    const signature = new Webhook(this.options.secret).sign(id, now, body);
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body,
      signal: AbortSignal.timeout(this.options.timeoutMs),
      redirect: 'error',
    });
    // Drain the body so the connection can be reused.
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new Error(`the receiver answered HTTP ${response.status}`);
    this.log.info({ batchId: entry.batchId, eventId: id, type: `batch.${entry.state}` }, 'completion event delivered');
  }

  /** Stops moving and delivering. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.close();
    await this.queue.close();
  }
}
