/**
 * Every Redis key revoker writes, in one place. All share the configured prefix, which carries a
 * Redis Cluster hash tag (`{revoker}`), so that Lua scripts touching several keys run on Cluster.
 */

/** Name of the BullMQ queue of revocation jobs. */
export const REVOCATION_QUEUE = 'revocations';
/** Name of the BullMQ dead-letter queue. */
export const DEAD_LETTER_QUEUE = 'dead-letters';

/** Builds key names under one prefix. */
export class Keys {
  constructor(readonly prefix: string) {}

  /** Prefix of BullMQ's job hashes on the revocation queue (append the job id). */
  jobKeyPrefix(): string {
    return `${this.prefix}:${REVOCATION_QUEUE}:`;
  }
  /** BullMQ's sorted set of prioritized jobs of the revocation queue. */
  prioritized(): string {
    return `${this.prefix}:${REVOCATION_QUEUE}:prioritized`;
  }
  /** Hash: a batch's fields and counters. */
  batch(batchId: string): string {
    return `${this.prefix}:batch:${batchId}`;
  }
  /** Hash: device key → result record (JSON), or a pending placeholder until the device ends. */
  results(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:results`;
  }
  /** List: rejected input rows (JSON). */
  rejected(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:rejected`;
  }
  /** Set: ids of jobs parked while the batch is paused. */
  parked(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:parked`;
  }
  /** Sorted set: batch ids by creation time. */
  batchIndex(): string {
    return `${this.prefix}:batches`;
  }
  /** Set: other batches waiting on the outcome of a job that was already queued when they asked. */
  followers(jobId: string): string {
    return `${this.prefix}:followers:${jobId}`;
  }
  /** String: the answer given to a webhook delivery, by its `webhook-id`. */
  webhookDelivery(webhookId: string): string {
    return `${this.prefix}:webhook:${webhookId}`;
  }
  /** Hash: an account-wide pause (bad credentials), by limiter key. */
  accountPause(rateKey: string): string {
    return `${this.prefix}:account:${rateKey}:pause`;
  }
  /** String: the adaptive rate currently allowed for an account. */
  currentRate(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:current`;
  }
  /** String: the rate at which throttling last started (the adaptive rate's ceiling memory). */
  throttleCeiling(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:ceiling`;
  }
  /** Counter: throttled responses since the adaptive controller's last tick. */
  throttled(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:throttled`;
  }
  /** Counter: all calls (throttled or not) since the adaptive controller's last tick. */
  callCount(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:calls`;
  }
  /** Lock: who runs this second's adaptive-rate tick. */
  rateTick(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:tick`;
  }
  /** Prefix of the slot guard's keys (next slot; sorted set of recent slots). */
  rateGuard(rateKey: string): string {
    return `${this.prefix}:rate:${rateKey}:guard`;
  }
  /** List: completion events written with the state changes, waiting to be queued. */
  eventsOutbox(): string {
    return `${this.prefix}:events:outbox`;
  }
  /** List: outbox entries being moved to the events queue. */
  eventsProcessing(): string {
    return `${this.prefix}:events:processing`;
  }
  /** Bottleneck limiter id (Bottleneck adds its own `b_` prefix and suffixes). */
  limiterId(rateKey: string): string {
    return `${this.prefix}:limiter:${rateKey}`;
  }
}
