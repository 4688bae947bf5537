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
  /** Hash: a batch's accepted devices by instance id (which instance is the batch's usual one). */
  instances(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:instances`;
  }
  /** String with a short TTL: the batch's producer is alive (refreshed per chunk and while it waits). */
  producer(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:producer`;
  }
  /** Hash: the revocation ledger entry of one revocation id (`job`: its open BullMQ job, `gen`: generations). */
  revocation(revocationId: string): string {
    return `${this.prefix}:rev:${revocationId}`;
  }
  /** Set: the batches subscribed to one revocation job (they all get its outcome). */
  subscribers(jobId: string): string {
    return `${this.prefix}:subs:${jobId}`;
  }
  /**
   * Hash, 1 h: job ids a worker called the API for just before Redis came back as a new instance,
   * whose ledger entries had no open job then (mark-lost-answers.lua). Named inside the scripts too.
   */
  lostMarks(): string {
    return `${this.prefix}:lostmarks`;
  }
  /** String, 1 h: the answer of a REGISTER request, so that a resent one changes nothing twice. */
  registerRequest(requestId: string): string {
    return `${this.prefix}:register:${requestId}`;
  }
  /** String: who runs the reconciler now (one worker at a time). */
  reconcileLock(): string {
    return `${this.prefix}:reconcile:lock`;
  }
  /** String: a webhook delivery's body hash and compact answer, by sender and `webhook-id` (sender names hold no ':'). */
  webhookDeliveryOf(sender: string, webhookId: string): string {
    return `${this.prefix}:webhook-delivery:${sender}:${webhookId}`;
  }
  /** Sorted set: devices of webhook deliveries reserved against the high-water mark (member `<token>:<n>` → expiry ms). */
  webhookRoom(): string {
    return `${this.prefix}:webhook-room`;
  }
  /** Hash: a webhook sender's hourly device quota bucket (tokens, last refill). */
  senderQuota(sender: string): string {
    return `${this.prefix}:sender-quota:${sender}`;
  }
  /** BullMQ's wait list of the revocation queue (jobs without a priority). */
  waitList(): string {
    return `${this.prefix}:${REVOCATION_QUEUE}:wait`;
  }
  /** List: the audit trail of one batch (JSON entries, oldest first). */
  auditOf(batchId: string): string {
    return `${this.prefix}:batch:${batchId}:audit`;
  }
  /** List: the audit trail of every batch and of actions on none (newest first, capped). */
  auditAll(): string {
    return `${this.prefix}:audit`;
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
  /** String: when a rate budget's next call slot is (ms on Redis' clock). See `BudgetGate`. */
  budgetNext(budget: string): string {
    return `${this.prefix}:budget:${budget}:next`;
  }
  /** Sorted set: a rate budget's recent call slots (member → ms on Redis' clock). */
  budgetWindow(budget: string): string {
    return `${this.prefix}:budget:${budget}:window`;
  }
  /** Hash: every rate budget in use → its configured rate per second (for status and metrics). */
  budgetIndex(): string {
    return `${this.prefix}:budgets`;
  }
  /** Sorted set: every rate budget in use → when a process last announced it (ms); stale ones are left out. */
  budgetSeen(): string {
    return `${this.prefix}:budgets:seen`;
  }
  /** Hash: an existence snapshot's devices, serial → when it was seen registered (ms on Redis' clock). */
  snapshot(snapshotId: string): string {
    return `${this.prefix}:snapshot:${snapshotId}`;
  }
  /** Hash: an existence snapshot's facts (instance, CA, source, startedAt, completedAt, devices). */
  snapshotMeta(snapshotId: string): string {
    return `${this.prefix}:snapshot:${snapshotId}:meta`;
  }
  /** Sorted set: the existence snapshots of one (instance, CA), by start (ms on Redis' clock). */
  snapshotIndex(mqttInstanceId: string, caSn: string): string {
    return `${this.prefix}:snapshots:${mqttInstanceId}:${caSn}`;
  }
  /** List: completion events written with the state changes, waiting to be queued. */
  eventsOutbox(): string {
    return `${this.prefix}:events:outbox`;
  }
  /** List: outbox entries being moved to the events queue. */
  eventsProcessing(): string {
    return `${this.prefix}:events:processing`;
  }
}
