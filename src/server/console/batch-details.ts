/**
 * The parts of a batch page besides its devices: who started it and why (the report's audit
 * facts), its dead letters with their history, its audit trail, its completion events with their
 * delivery state, and its records counted by evidence once it has finished.
 */
import { Queue } from 'bullmq';
import type { AuditEntry, AuditTrail } from '../../audit/audit-trail.js';
import type { Batch } from '../../batches/batch.js';
import type { DeadLetterEntry } from '../../dlq/dead-letters.js';
import { eventId, type OutboxEntry } from '../../events/batch-event.js';
import { EVENTS_QUEUE } from '../../events/event-delivery.js';
import type { BatchAudit } from '../../report/batch-audit.js';
import { reportStores } from '../../report/report-stores.js';
import type { Context } from '../../runtime/context.js';
import { consoleFactsKey, type BatchDevices } from './batch-devices.js';

/** Dead letters shown on a batch page (the failed count says how many there are). */
export const DEAD_LETTERS_SHOWN = 50;
/** Audit entries shown (newest last). */
export const AUDIT_SHOWN = 100;
/** Completion events shown (newest last). */
export const EVENTS_SHOWN = 20;

/** One completion event and where its delivery stands. */
export interface EventState {
  id: string;
  type: string;
  /** `delivered`, `retrying`, `waiting`, `failed`, `not sent` (no destination), `in outbox`, `expired` (gone from the queue's history). */
  delivery: string;
  attempts: number;
  /** The last failure, or null. */
  lastError: string | null;
  at: string | null;
}

/** Everything below the summary of a batch page. */
export interface BatchDetails {
  facts: BatchAudit;
  deadLetters: DeadLetterEntry[];
  audit: AuditEntry[];
  events: EventState[];
  /** Where completion events go: the batch's callback origin, EVENTS_URL's, or nowhere. */
  eventsDestination: string | null;
}

/** Reads batch details, and tallies finished batches by evidence in the background. */
export class BatchDetailsReader {
  private readonly eventsQueue: Queue<OutboxEntry>;
  private readonly tallies = new Map<string, Record<string, Record<string, number>>>();
  private readonly tallying = new Set<string>();

  constructor(
    private readonly context: Context,
    private readonly trail: AuditTrail,
    private readonly devices: BatchDevices,
    private readonly onError: (error: unknown) => void,
  ) {
    this.eventsQueue = new Queue<OutboxEntry>(EVENTS_QUEUE, { connection: context.redis, prefix: context.keys.prefix });
    this.eventsQueue.on('error', () => undefined);
  }

  /** The batch's audit facts (reason, command, input file and hash). */
  facts(batchId: string): Promise<BatchAudit> {
    return reportStores(this.context).audit.get(batchId);
  }

  /** A cheap fingerprint of what the details show: they are re-read only when it changes. */
  async fingerprint(batch: Batch): Promise<string> {
    const auditLength = await this.context.redis.llen(this.context.keys.auditOf(batch.id));
    const eventSeq = await this.context.redis.hget(this.context.keys.batch(batch.id), 'eventSeq');
    // Event deliveries move on their own (retrying → delivered): look again every 10 s while there are any.
    const period = eventSeq === null ? 0 : Math.floor(Date.now() / 10_000);
    return `${batch.counts.failed}/${auditLength}/${eventSeq ?? 0}/${batch.eventsFailed}/${batch.state}/${period}`;
  }

  /** Reads the details. */
  async read(batch: Batch): Promise<BatchDetails> {
    const [facts, deadLetters, audit, events, callbackUrl] = await Promise.all([
      this.facts(batch.id),
      batch.counts.failed > 0 ? this.context.deadLetters.list(batch.id, DEAD_LETTERS_SHOWN) : Promise.resolve([]),
      this.trail.list(batch.id, AUDIT_SHOWN),
      this.events(batch),
      this.context.redis.hget(this.context.keys.batch(batch.id), 'callbackUrl'),
    ]);
    const destination = callbackUrl ?? this.context.config.eventsUrl;
    let eventsDestination: string | null = null;
    if (destination !== null && URL.canParse(destination)) eventsDestination = new URL(destination).origin;
    return { facts, deadLetters, audit, events, eventsDestination };
  }

  private async events(batch: Batch): Promise<EventState[]> {
    const seq = Number((await this.context.redis.hget(this.context.keys.batch(batch.id), 'eventSeq')) ?? '0');
    if (!(seq > 0)) return [];
    const outbox = new Set(
      [...(await this.context.redis.lrange(this.context.keys.eventsOutbox(), 0, 999)), ...(await this.context.redis.lrange(this.context.keys.eventsProcessing(), 0, 999))]
        .map((raw) => {
          try {
            return eventId(JSON.parse(raw) as OutboxEntry);
          } catch {
            return '';
          }
        })
        .filter((id) => id !== ''),
    );
    const hasDestination = (await this.context.redis.hexists(this.context.keys.batch(batch.id), 'callbackUrl')) === 1 || this.context.config.eventsUrl !== null;
    const out: EventState[] = [];
    for (let n = Math.max(1, seq - EVENTS_SHOWN + 1); n <= seq; n += 1) {
      const id = eventId({ batchId: batch.id, seq: n });
      if (outbox.has(id)) {
        out.push({ id, type: 'batch event', delivery: 'in outbox', attempts: 0, lastError: null, at: null });
        continue;
      }
      const job = await this.eventsQueue.getJob(id);
      if (job === undefined) {
        out.push({ id, type: 'batch event', delivery: 'expired', attempts: 0, lastError: null, at: null });
        continue;
      }
      const state = await job.getState();
      const delivery =
        state === 'completed' ? (hasDestination && this.context.config.eventsSecret !== null ? 'delivered' : 'not sent') : state === 'failed' ? 'failed' : state === 'delayed' ? 'retrying' : state === 'active' ? 'sending' : 'waiting';
      out.push({ id, type: `batch.${job.data.state}`, delivery, attempts: job.attemptsMade, lastError: job.failedReason === '' || job.failedReason === undefined ? null : job.failedReason, at: job.data.at });
    }
    return out;
  }

  /**
   * The batch's records by outcome and evidence, for a finished batch: read from the console's
   * cache, or counted once in the background (in bounded steps) and kept for the batch's life.
   * Null until counted, and always for unfinished batches (their records still change).
   */
  evidence(batch: Batch): Record<string, Record<string, number>> | null {
    if (batch.finishedAt === null) return null;
    const known = this.tallies.get(batch.id);
    if (known !== undefined) return known;
    if (!this.tallying.has(batch.id) && this.tallying.size < 2) {
      this.tallying.add(batch.id);
      void this.tally(batch)
        .catch(this.onError)
        .finally(() => this.tallying.delete(batch.id));
    }
    return null;
  }

  private async tally(batch: Batch): Promise<void> {
    const key = consoleFactsKey(this.context.keys, batch.id);
    const stored = await this.context.redis.hget(key, 'evidence');
    if (stored !== null) {
      const parsed = JSON.parse(stored) as { done: number; tally: Record<string, Record<string, number>> };
      // A redrive reopens records: a tally of another `done` is stale.
      if (parsed.done === batch.done) {
        this.remember(batch.id, parsed.tally);
        return;
      }
    }
    const tally = await this.devices.tallyEvidence(batch.id);
    await this.context.redis
      .multi()
      .hset(key, 'evidence', JSON.stringify({ done: batch.done, tally }))
      .expire(key, this.context.config.retentionDays * 86_400)
      .exec();
    this.remember(batch.id, tally);
  }

  private remember(batchId: string, tally: Record<string, Record<string, number>>): void {
    this.tallies.set(batchId, tally);
    if (this.tallies.size > 500) this.tallies.delete(this.tallies.keys().next().value as string);
  }

  /** Forgets a batch's tally (after a redrive). */
  forget(batchId: string): void {
    this.tallies.delete(batchId);
  }

  /** Closes the events queue handle. */
  async close(): Promise<void> {
    await this.eventsQueue.close();
  }
}
