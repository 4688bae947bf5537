/**
 * The audit trail of people and systems: every pause, resume, cancel, priority change, redrive,
 * purge and enqueue records who (admin token name, webhook sender name, or OS user and host for
 * the CLI), when, from where (client address, or host) and with which arguments — in the batch,
 * in a capped list of everything, and in a log line. `revoker audit [BATCH]` prints it.
 *
 * Entries hold names and arguments, never a token, secret or signature.
 */
import type { Logger } from 'pino';
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';

/** What was done. */
export type AuditAction = 'enqueue' | 'pause' | 'resume' | 'cancel' | 'priority' | 'redrive' | 'purge' | 'ca_inactivate' | 'ca_activate' | 'ca_delete' | 'account_resume';

/** One entry of the trail. */
export interface AuditEntry {
  /** ISO time on the recording process's clock. */
  at: string;
  action: AuditAction;
  /** The batch acted on; null for actions on no single batch (a redrive of every dead letter). */
  batchId: string | null;
  /** `token:<name>`, `sender:<name>` or `cli:<user>@<host>`. */
  actor: string;
  /** Client address for HTTP, host name for the CLI. */
  from: string;
  /** The arguments given (reason, priority, counts…). */
  args: Record<string, string | number | boolean | null>;
  /** Whether it took effect (a pause of a finished batch does not). */
  ok: boolean;
}

/** Entries kept in the list of everything (the per-batch lists live as long as their batch). */
export const AUDIT_ALL_MAX_ENTRIES = 10_000;

/** Reads and writes the trail. */
export class AuditTrail {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** RESULT_RETENTION_DAYS: a batch's trail is kept as long as the batch. */
    private readonly retentionDays: number,
    private readonly log?: Logger,
  ) {}

  /** Records an entry (and logs it). */
  async record(entry: Omit<AuditEntry, 'at'> & { at?: string }): Promise<AuditEntry> {
    const full: AuditEntry = { at: entry.at ?? new Date().toISOString(), action: entry.action, batchId: entry.batchId, actor: entry.actor, from: entry.from, args: entry.args, ok: entry.ok };
    const text = JSON.stringify(full);
    const multi = this.redis.multi().lpush(this.keys.auditAll(), text).ltrim(this.keys.auditAll(), 0, AUDIT_ALL_MAX_ENTRIES - 1);
    if (full.batchId !== null) multi.rpush(this.keys.auditOf(full.batchId), text).ttl(this.keys.batch(full.batchId));
    const replies = await multi.exec();
    if (full.batchId !== null) await this.retain(full.batchId, Number(replies?.at(-1)?.[1] ?? -2));
    this.log?.info({ audit: full }, `audit: ${full.action}${full.batchId === null ? '' : ` ${full.batchId}`} by ${full.actor}`);
    return full;
  }

  /**
   * A batch's trail lives as long as the batch: no TTL while the batch is open (its hash has none;
   * finish-batch.lua gives both theirs when it finishes), the batch's remaining TTL once finished,
   * and the retention when the batch is unknown (an entry about a batch id that never existed).
   */
  private async retain(batchId: string, batchTtlSeconds: number): Promise<void> {
    const key = this.keys.auditOf(batchId);
    if (batchTtlSeconds === -1) await this.redis.persist(key);
    else await this.redis.expire(key, batchTtlSeconds > 0 ? batchTtlSeconds : this.retentionDays * 86_400);
  }

  /** A batch's entries oldest first, or (no batch) the most recent entries of all, oldest first. */
  async list(batchId?: string, limit = 100): Promise<AuditEntry[]> {
    const raw = batchId === undefined ? (await this.redis.lrange(this.keys.auditAll(), 0, limit - 1)).reverse() : await this.redis.lrange(this.keys.auditOf(batchId), -limit, -1);
    const entries: AuditEntry[] = [];
    for (const text of raw) {
      try {
        entries.push(JSON.parse(text) as AuditEntry);
      } catch {
        // A foreign value under our key: skip it rather than fail the listing.
      }
    }
    return entries;
  }
}
