/**
 * Batch records in Redis: creation, O(1) reads of state and counters, state changes, listing.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { Keys } from '../queue/keys.js';
import { CLASS_BASE, CLASS_SPAN, parsePriority, positionOf, type BatchPriority } from '../queue/priority.js';
import { OUTCOMES, type Outcome } from '../results/result-record.js';
import { batchKeyList, loadScript, PRODUCER_HEARTBEAT_MS } from '../results/result-store.js';
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
  /** `--verify`: workers read each device back after its revocation (worker/read-back.ts). */
  verify?: boolean;
}


/** Unfinished states: a batch in one of these can still change. */
const OPEN_STATES: readonly BatchState[] = ['enqueuing', 'running', 'paused'];

type ScriptClient = Redis & {
  revokerPauseBatch(n: number, batch: string, outbox: string, reason: string, now: string, marker: string): Promise<number>;
  revokerResumeBatch(n: number, batch: string): Promise<number>;
  revokerCancelBatch(n: number, ...args: string[]): Promise<number>;
};

/** Registers the batch scripts on a connection once. */
function withScripts(redis: Redis): ScriptClient {
  const client = redis as ScriptClient;
  if (typeof client.revokerPauseBatch !== 'function') {
    redis.defineCommand('revokerPauseBatch', { lua: loadScript(import.meta.url, 'lua/pause-batch.lua') });
    redis.defineCommand('revokerResumeBatch', { lua: loadScript(import.meta.url, 'lua/resume-batch.lua') });
    redis.defineCommand('revokerCancelBatch', { lua: loadScript(import.meta.url, 'lua/cancel-batch.lua') });
  }
  return client;
}

/** The field of a batch hash that records a pause caused by an instance error on `instance`. */
export function instancePausedField(instance: string): string {
  return `instancePaused:${instance}`;
}

/** What the worker's instance rule needs to know about one batch (see `BatchStore.instanceView`). */
export interface InstanceView {
  batchId: string;
  state: BatchState | null;
  /** The instance most of the batch's accepted devices are on (null when unknown). */
  usualInstance: string | null;
  /** An instance error on this instance paused the batch before (and so an operator resumed it since, if it runs). */
  pausedBefore: boolean;
}

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
    inputNote: hash.inputNote ?? null,
    enqueued: hash.enqueued === '1',
    accepted: num(hash.accepted),
    rejected: num(hash.rejected),
    duplicates: num(hash.duplicates),
    done: num(hash.done),
    counts,
    eventsFailed: num(hash.eventsFailed),
    ...(hash.verify === '1' ? { verify: true } : {}),
  };
}

/** Reads and changes batches. */
export class BatchStore {
  private readonly scripts: ScriptClient;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** How long a batch and its records are kept after it finishes. */
    private readonly retentionDays: number,
  ) {
    this.scripts = withScripts(redis);
  }

  /**
   * Creates a batch in state `enqueuing` and returns its id. It has no TTL while open: retention
   * counts from its finish (`retentionSeconds` is kept in the hash for the scripts that finish
   * it). Its producer heartbeat starts now (see `heartbeat`).
   */
  async create(batch: NewBatch, id: string = newBatchId()): Promise<string> {
    const now = new Date();
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
        retentionSeconds: String(this.retentionDays * 86_400),
        ...(batch.callbackUrl !== undefined ? { callbackUrl: batch.callbackUrl } : {}),
        ...(batch.verify === true ? { verify: '1' } : {}),
      })
      .zadd(this.keys.batchIndex(), now.getTime(), id)
      .set(this.keys.producer(id), '1', 'PX', PRODUCER_HEARTBEAT_MS)
      .exec();
    return id;
  }

  /**
   * Gives a finished batch's keys their retention TTL (again: keys written after the finish).
   * Does nothing to an open batch, which never expires; the scripts that finish a batch apply the
   * retention themselves.
   */
  async expire(batchId: string, ttlSeconds: number = this.retentionDays * 86_400): Promise<void> {
    const [finishedAt, stored] = await this.redis.hmget(this.keys.batch(batchId), 'finishedAt', 'retentionSeconds');
    if (finishedAt === null) return;
    const seconds = stored === null ? ttlSeconds : Number(stored);
    await this.redis
      .multi()
      .expire(this.keys.batch(batchId), seconds)
      .expire(this.keys.results(batchId), seconds)
      .expire(this.keys.rejected(batchId), seconds)
      .expire(this.keys.instances(batchId), seconds)
      .exec();
  }

  /** Says the batch's producer is alive (a batch `enqueuing` without one is cut short by the reconciler). */
  async heartbeat(batchId: string): Promise<void> {
    await this.redis.set(this.keys.producer(batchId), '1', 'PX', PRODUCER_HEARTBEAT_MS);
  }

  /** True while the batch's producer heartbeat lasts. */
  async producerAlive(batchId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.producer(batchId))) === 1;
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

  /** Ids of open batches and of cancelled ones whose devices are not all recorded yet (the reconciler's). */
  async unfinishedBatchIds(limit = 10_000): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.keys.batchIndex(), 0, limit - 1);
    const unfinished: string[] = [];
    // One round trip per 500 batches: the reconciler asks every minute.
    for (let start = 0; start < ids.length; start += 500) {
      const page = ids.slice(start, start + 500);
      const pipeline = this.redis.pipeline();
      for (const id of page) pipeline.hmget(this.keys.batch(id), 'state', 'finishedAt');
      const replies = (await pipeline.exec()) ?? [];
      page.forEach((id, index) => {
        const [state, finishedAt] = (replies[index]?.[1] ?? [null, null]) as (string | null)[];
        if (state === null || state === undefined) return;
        if (OPEN_STATES.includes(state as BatchState) || (state === 'cancelled' && finishedAt === null)) unfinished.push(id);
      });
    }
    return unfinished;
  }

  /**
   * What the instance rule needs of these batches: state, usual instance (the one most of its
   * accepted devices are on) and whether an error on `instance` paused it before. One round trip.
   */
  async instanceView(batchIds: readonly string[], instance: string): Promise<InstanceView[]> {
    if (batchIds.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const batchId of batchIds) {
      pipeline.hmget(this.keys.batch(batchId), 'state', instancePausedField(instance));
      pipeline.hgetall(this.keys.instances(batchId));
    }
    const replies = (await pipeline.exec()) ?? [];
    return batchIds.map((batchId, index) => {
      const [state, paused] = (replies[2 * index]?.[1] ?? [null, null]) as (string | null)[];
      const counts = (replies[2 * index + 1]?.[1] ?? {}) as Record<string, string>;
      let usualInstance: string | null = null;
      let most = -1;
      for (const [id, count] of Object.entries(counts)) {
        if (Number(count) > most) {
          most = Number(count);
          usualInstance = id;
        }
      }
      return { batchId, state: (state ?? null) as BatchState | null, usualInstance, pausedBefore: paused !== null && paused !== undefined };
    });
  }

  /**
   * Moves a batch to `paused` with a reason, if it is open. Returns false when it was not open
   * (finished, cancelled or unknown). `instance`: the pause is an instance error's on it.
   */
  async pause(batchId: string, reason: string, instance?: string): Promise<boolean> {
    const marker = instance === undefined ? '' : instancePausedField(instance);
    return (await this.scripts.revokerPauseBatch(2, this.keys.batch(batchId), this.keys.eventsOutbox(), reason, new Date().toISOString(), marker)) === 1;
  }

  /** Resumes a paused batch. Returns false when it was not paused. */
  async resume(batchId: string): Promise<boolean> {
    return (await this.scripts.revokerResumeBatch(1, this.keys.batch(batchId))) === 1;
  }

  /**
   * Marks a batch cancelled (its devices then leave their revocations, recorded `cancelled` where
   * no call of revoker's can have changed them). It finishes at once if nothing is pending.
   */
  async cancel(batchId: string, reason: string): Promise<boolean> {
    const keys = batchKeyList(this.keys, batchId);
    return (await this.scripts.revokerCancelBatch(keys.length, ...keys, reason, new Date().toISOString())) === 1;
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

  /** Takes up to `count` parked job ids of a batch (the worker parks them: `ResultStore.park`). */
  takeParked(batchId: string, count: number): Promise<string[]> {
    return this.redis.spop(this.keys.parked(batchId), count);
  }
}
