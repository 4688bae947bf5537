/**
 * Batch records in Redis: creation, O(1) reads of state and counters, state changes, listing.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { RevocationAction } from '../cloud/certificate-api.js';
import { EMIT_EVENT_LUA } from '../events/batch-event.js';
import type { Keys } from '../queue/keys.js';
import { CLASS_BASE, CLASS_SPAN, parsePriority, positionOf, type BatchPriority } from '../queue/priority.js';
import { OUTCOMES, type Outcome } from '../results/result-record.js';
import type { Batch, BatchSource, BatchState } from './batch.js';

/** Options of a new batch. */
export interface NewBatch {
  name: string;
  source: BatchSource;
  action: RevocationAction;
  createdBy: string;
  /** Default `normal`. */
  priority?: BatchPriority;
  /** Where completion events of this batch go (a webhook's `callbackUrl`); else EVENTS_URL. */
  callbackUrl?: string;
}


/** Unfinished states: a batch in one of these can still change. */
const OPEN_STATES: readonly BatchState[] = ['enqueuing', 'running', 'paused'];

/** A new batch id: time-ordered (sortable by eye) and unguessable enough to not collide. */
export function newBatchId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `b-${stamp}-${randomBytes(4).toString('hex')}`;
}

function num(value: string | undefined): number {
  return value === undefined ? 0 : Number(value);
}

/** Parses a batch hash; null when it does not exist. */
export function parseBatch(hash: Record<string, string>): Batch | null {
  if (hash.id === undefined) return null;
  const counts = Object.fromEntries(OUTCOMES.map((outcome) => [outcome, num(hash[outcome])])) as Record<Outcome, number>;
  return {
    id: hash.id,
    name: hash.name ?? '',
    source: (hash.source ?? 'csv') as BatchSource,
    action: (hash.action ?? 'delete') as RevocationAction,
    priority: parsePriority(hash.priority) ?? 'normal',
    createdBy: hash.createdBy ?? '',
    createdAt: hash.createdAt ?? '',
    finishedAt: hash.finishedAt ?? null,
    state: (hash.state ?? 'running') as BatchState,
    reason: hash.reason ?? null,
    enqueued: hash.enqueued === '1',
    accepted: num(hash.accepted),
    rejected: num(hash.rejected),
    duplicates: num(hash.duplicates),
    done: num(hash.done),
    counts,
    eventsFailed: num(hash.eventsFailed),
  };
}

/** Reads and changes batches. */
export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** How long a batch and its records are kept after creation. */
    private readonly retentionDays: number,
  ) {}

  /** Creates a batch in state `enqueuing` and returns its id. */
  async create(batch: NewBatch, id: string = newBatchId()): Promise<string> {
    const now = new Date();
    const ttlSeconds = this.retentionDays * 86_400;
    await this.redis
      .multi()
      .hset(this.keys.batch(id), {
        id,
        name: batch.name,
        source: batch.source,
        action: batch.action,
        priority: batch.priority ?? 'normal',
        createdBy: batch.createdBy,
        createdAt: now.toISOString(),
        state: 'enqueuing',
        enqueued: '0',
        accepted: '0',
        rejected: '0',
        duplicates: '0',
        done: '0',
        ...(batch.callbackUrl !== undefined ? { callbackUrl: batch.callbackUrl } : {}),
      })
      .zadd(this.keys.batchIndex(), now.getTime(), id)
      .exec();
    await this.expire(id, ttlSeconds);
    return id;
  }

  /** Sets the retention TTL on the batch's keys (again after they are first written). */
  async expire(batchId: string, ttlSeconds: number = this.retentionDays * 86_400): Promise<void> {
    await this.redis
      .multi()
      .expire(this.keys.batch(batchId), ttlSeconds)
      .expire(this.keys.results(batchId), ttlSeconds)
      .expire(this.keys.rejected(batchId), ttlSeconds)
      .exec();
  }

  /** Reads a batch (O(1): one hash). */
  async get(batchId: string): Promise<Batch | null> {
    return parseBatch(await this.redis.hgetall(this.keys.batch(batchId)));
  }

  /** Reads just the state and reason (what workers poll). */
  async state(batchId: string): Promise<{ state: BatchState | null; reason: string | null }> {
    const [state, reason] = await this.redis.hmget(this.keys.batch(batchId), 'state', 'reason');
    return { state: (state ?? null) as BatchState | null, reason: reason ?? null };
  }

  /** The most recent batches first. Drops index entries whose batch expired. */
  async list(limit = 20): Promise<Batch[]> {
    const ids = await this.redis.zrevrange(this.keys.batchIndex(), 0, limit - 1);
    const batches: Batch[] = [];
    for (const id of ids) {
      const batch = await this.get(id);
      if (batch === null) await this.redis.zrem(this.keys.batchIndex(), id);
      else batches.push(batch);
    }
    return batches;
  }

  /** Ids of batches not finished yet (for an account-wide pause). */
  async openBatchIds(limit = 1_000): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.keys.batchIndex(), 0, limit - 1);
    const open: string[] = [];
    for (const id of ids) {
      const { state } = await this.state(id);
      if (state !== null && OPEN_STATES.includes(state)) open.push(id);
    }
    return open;
  }

  /**
   * Moves a batch to `paused` with a reason, if it is open. Returns false when it was not open
   * (finished, cancelled or unknown).
   */
  async pause(batchId: string, reason: string): Promise<boolean> {
    const result = await this.redis.eval(
      `${EMIT_EVENT_LUA}
       local s = redis.call('HGET', KEYS[1], 'state')
       if s == 'enqueuing' or s == 'running' or s == 'paused' then
         redis.call('HSET', KEYS[1], 'state', 'paused', 'reason', ARGV[1], 'stateBeforePause', s == 'paused' and (redis.call('HGET', KEYS[1], 'stateBeforePause') or 'running') or s)
         if s ~= 'paused' then emit(KEYS[1], KEYS[2], 'paused', ARGV[2]) end
         return 1
       end
       return 0`,
      2,
      this.keys.batch(batchId),
      this.keys.eventsOutbox(),
      reason,
      new Date().toISOString(),
    );
    return result === 1;
  }

  /** Resumes a paused batch. Returns false when it was not paused. */
  async resume(batchId: string): Promise<boolean> {
    const result = await this.redis.eval(
      `if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return 0 end
       local before = redis.call('HGET', KEYS[1], 'stateBeforePause') or 'running'
       local reason = redis.call('HGET', KEYS[1], 'reason') or ''
       -- Resuming after the not_found breaker means the operator checked: do not trip it again.
       if string.sub(reason, 1, 17) == 'not_found breaker' then redis.call('HSET', KEYS[1], 'notFoundBreaker', 'off') end
       if redis.call('HGET', KEYS[1], 'enqueued') == '1' then before = 'running' end
       redis.call('HSET', KEYS[1], 'state', before)
       redis.call('HDEL', KEYS[1], 'reason', 'stateBeforePause')
       return 1`,
      1,
      this.keys.batch(batchId),
    );
    return result === 1;
  }

  /** Marks a batch cancelled (workers then record its remaining devices as `cancelled`). */
  async cancel(batchId: string, reason: string): Promise<boolean> {
    const result = await this.redis.eval(
      `${EMIT_EVENT_LUA}
       local s = redis.call('HGET', KEYS[1], 'state')
       if s == 'enqueuing' or s == 'running' or s == 'paused' then
         redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[1])
         local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
         local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
         if redis.call('HGET', KEYS[1], 'enqueued') == '1' and done >= accepted then
           redis.call('HSET', KEYS[1], 'finishedAt', ARGV[2])
           emit(KEYS[1], KEYS[2], 'cancelled', ARGV[2])
         end
         return 1
       end
       return 0`,
      2,
      this.keys.batch(batchId),
      this.keys.eventsOutbox(),
      reason,
      new Date().toISOString(),
    );
    return result === 1;
  }

  /** Adds rejected input rows to the batch's report and counter. */
  async addRejected(batchId: string, rows: { line: number; reason: string; deviceSn?: string }[]): Promise<void> {
    if (rows.length === 0) return;
    await this.redis
      .multi()
      .rpush(this.keys.rejected(batchId), ...rows.map((row) => JSON.stringify(row)))
      .hincrby(this.keys.batch(batchId), 'rejected', rows.length)
      .exec();
  }

  /** Streams the rejected rows in pages. */
  async *rejectedRows(batchId: string, pageSize = 1_000): AsyncGenerator<{ line: number; reason: string; deviceSn?: string }> {
    for (let start = 0; ; start += pageSize) {
      const page = await this.redis.lrange(this.keys.rejected(batchId), start, start + pageSize - 1);
      for (const raw of page) yield JSON.parse(raw) as { line: number; reason: string; deviceSn?: string };
      if (page.length < pageSize) return;
    }
  }

  /**
   * The round-robin position now being served in a priority class: that of its lowest waiting
   * job (0 when none waits). A new batch starts there, sharing with the batches already draining.
   */
  async servingPosition(priority: BatchPriority): Promise<number> {
    const low = CLASS_BASE[priority] * 2 ** 32;
    const high = (CLASS_BASE[priority] + CLASS_SPAN) * 2 ** 32;
    const lowest = await this.redis.zrangebyscore(this.keys.prioritized(), low, `(${high}`, 'WITHSCORES', 'LIMIT', 0, 1);
    const score = lowest[1];
    return score === undefined ? 0 : positionOf(Math.floor(Number(score) / 2 ** 32));
  }

  /** Records a batch's new priority (its waiting jobs are re-prioritized by `BatchControl`). */
  async setPriority(batchId: string, priority: BatchPriority): Promise<void> {
    await this.redis.hset(this.keys.batch(batchId), 'priority', priority);
  }

  /** Parks a job of a paused batch so that resume can wake it. */
  async park(batchId: string, jobId: string): Promise<void> {
    await this.redis.sadd(this.keys.parked(batchId), jobId);
  }

  /** Takes up to `count` parked job ids of a batch. */
  takeParked(batchId: string, count: number): Promise<string[]> {
    return this.redis.spop(this.keys.parked(batchId), count);
  }
}
