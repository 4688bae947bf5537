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
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { BatchStore } from '../batches/batch-store.js';
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { buildBatchEvent, eventId, type OutboxEntry } from './batch-event.js';
import { postPinned } from './callback-client.js';
import { checkCallbackUrl, normaliseOrigin, resolvePinned, systemLookup, type CallbackPolicy, type HostLookup } from './callback-policy.js';

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
  /** Timeout of one POST, from resolving the name to the last byte read. */
  timeoutMs: number;
  /**
   * EVENTS_ALLOWED_ORIGINS: origins events may be sent to. The origin of `defaultUrl` is always
   * allowed (the operator chose it). A batch's callback URL elsewhere is never called.
   */
  allowedOrigins: readonly string[];
  /** EVENTS_ALLOW_PRIVATE: allow loopback, private, link-local, CGNAT… addresses (tests, private deployments). */
  allowPrivate: boolean;
  /** Bytes of a receiver's answer read at most; the rest is never read (the connection is dropped). */
  maxResponseBytes: number;
  /** Name resolution (the system resolver); tests inject their own. */
  lookup: HostLookup;
}

/** Defaults of `EventDeliveryOptions`. */
export const EVENT_DELIVERY_DEFAULTS: Omit<EventDeliveryOptions, 'defaultUrl' | 'secret'> = {
  pollMs: 500,
  attempts: 12,
  retryBaseMs: 5_000,
  timeoutMs: 10_000,
  // Secure by default: nothing but EVENTS_URL's origin, public addresses only.
  allowedOrigins: [],
  allowPrivate: false,
  // The answer's status is all that matters; 64 KiB covers any error page worth a debug look.
  maxResponseBytes: 64 * 1024,
  lookup: systemLookup,
};

/** The policy events are held to: the allow-list plus EVENTS_URL's origin. */
export function eventCallbackPolicy(options: Pick<EventDeliveryOptions, 'defaultUrl' | 'allowedOrigins' | 'allowPrivate'>): CallbackPolicy {
  const origins = new Set(options.allowedOrigins);
  if (options.defaultUrl !== null && URL.canParse(options.defaultUrl)) {
    const fromDefault = normaliseOrigin(new URL(options.defaultUrl).origin);
    if (fromDefault !== null) origins.add(fromDefault);
  }
  return { allowedOrigins: [...origins], allowPrivate: options.allowPrivate };
}

/** Moves outbox entries to the events queue and delivers them. */
export class EventDelivery {
  private readonly options: EventDeliveryOptions;
  private readonly policy: CallbackPolicy;
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
    this.policy = eventCallbackPolicy(this.options);
    this.queue = new Queue<OutboxEntry>(EVENTS_QUEUE, { connection: redis, prefix: keys.prefix });
    this.queue.on('error', () => undefined);
  }

  /** Starts moving and delivering. */
  start(): void {
    this.worker = new Worker<OutboxEntry>(EVENTS_QUEUE, (job) => this.deliver(job), { connection: this.connection, prefix: this.keys.prefix, concurrency: 8 });
    this.worker.on('error', (error) => this.log.warn({ err: error }, 'event delivery worker error'));
    this.worker.on('failed', (job, error) => {
      // A refused destination is not retried (UnrecoverableError): it counts as undelivered at once.
      if (job === undefined || (job.attemptsMade < this.options.attempts && error.name !== 'UnrecoverableError')) return;
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
    const id = eventId(entry);
    const type = `batch.${entry.state}`;
    // The rules are checked again here, not only at the webhook: the allow-list may have
    // changed since, and only here is the name resolved to the address actually used.
    const check = checkCallbackUrl(url, this.policy);
    if (!check.ok) {
      this.log.error({ batchId: entry.batchId, eventId: id, type, rule: check.rule }, `completion event not sent: ${check.message}`);
      throw new UnrecoverableError(check.message);
    }
    const origin = check.origin;
    let target: Awaited<ReturnType<typeof resolvePinned>>;
    try {
      target = await resolvePinned(check.url, this.options.allowPrivate, this.options.lookup);
    } catch (error) {
      // The resolver failing (no such name, DNS down) may pass: retried like a refused connection.
      this.log.warn({ batchId: entry.batchId, eventId: id, type, origin, attempt: job.attemptsMade + 1, err: error }, 'completion event: the callback host did not resolve');
      throw error;
    }
    if (!target.ok) {
      this.log.error({ batchId: entry.batchId, eventId: id, type, origin, rule: 'callback_address_forbidden' }, `completion event not sent: ${target.message}`);
      throw new UnrecoverableError(target.message);
    }
    const body = JSON.stringify(buildBatchEvent(entry, batch));
    const now = new Date();
    const signature = new Webhook(this.options.secret).sign(id, now, body);
    const headers = {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': signature,
    };
    let status: number;
    try {
      ({ status } = await postPinned(check.url, headers, body, { address: target.address, family: target.family, timeoutMs: this.options.timeoutMs, maxResponseBytes: this.options.maxResponseBytes }));
    } catch (error) {
      this.log.warn({ batchId: entry.batchId, eventId: id, type, origin, attempt: job.attemptsMade + 1, err: error }, 'completion event delivery failed');
      throw error;
    }
    // The origin only: a path or query may hold the receiver's own token.
    const entryLog = { batchId: entry.batchId, eventId: id, type, origin, status, attempt: job.attemptsMade + 1 };
    if (status >= 300 && status < 400) {
      this.log.warn(entryLog, 'completion event answered with a redirect, which is not followed');
      throw new Error(`the receiver answered HTTP ${status} (redirects are not followed)`);
    }
    if (status < 200 || status >= 300) {
      this.log.warn(entryLog, 'completion event refused by the receiver');
      throw new Error(`the receiver answered HTTP ${status}`);
    }
    this.log.info(entryLog, 'completion event delivered');
  }

  /** Stops moving and delivering. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.close();
    await this.queue.close();
  }
}
