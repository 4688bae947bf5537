/**
 * The revocation ledger and the result records, written together by Lua scripts (src/results/lua)
 * so that the counters always equal the records and every batch that asked for a device gets one
 * record of it, whatever runs twice (retries, stalls, resent commands, a worker killed between
 * the API call and the write).
 *
 * Layout (see `Keys`):
 * - a batch hash holds the counters; a results hash maps each device's revocation id to its
 *   record, holding a pending placeholder from the moment the device is accepted;
 * - the ledger: one hash per revocation id (`rev`) with its open BullMQ job (`job`, absent when
 *   none is open) and a generation counter (`gen`), and per job a set of subscriber batches
 *   (`subs`). A device asked for by two batches is one revocation, one job, two subscribers, one
 *   API call and a record in each batch. BullMQ only delivers the job; the ledger decides who
 *   gets its outcome.
 */
import { randomUUID } from 'node:crypto';
import { EMIT_EVENT_LUA } from '../events/batch-event.js';
import { loadLua } from '../redis/lua-script.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { RunIdWatch } from '../redis/run-id-watch.js';
import { revocationIdOf } from '../queue/job-id.js';
import type { Keys } from '../queue/keys.js';
import { parsePriority, type BatchPriority } from '../queue/priority.js';
import type { BatchState } from '../batches/batch.js';
import type { PendingRecord, ResultRecord } from './result-record.js';
import {
  parseRegisterAnswer,
  REGISTER_FLAGS,
  registerArgs,
  registerKeys,
  type RegisterAnswer,
  type RegisterChunk,
  type RegisterChunkAnswer,
  type RegisterEntry,
  type RegisterFlag,
  type RegisterMode,
} from './register-request.js';

/** How long a producer counts as alive after its last sign (a chunk registered, a wait for room). */
export const PRODUCER_HEARTBEAT_MS = 60_000;

/**
 * Loads a script kept as a `.lua` file beside the module at `moduleUrl`, expanding its
 * `-- includes: a, b` header line with the shared pieces of src/results/lua/includes (each
 * included once, in the order given). `emit-event` is the completion-event piece of
 * src/events/batch-event.ts.
 */
export function loadScript(moduleUrl: string, name: string): string {
  const body = loadLua(moduleUrl, name);
  const includes = /^-- includes: (.+)$/m.exec(body)?.[1]?.split(',').map((part) => part.trim()) ?? [];
  const pieces = includes.map((include) => (include === 'emit-event' ? EMIT_EVENT_LUA : loadLua(import.meta.url, `lua/includes/${include}.lua`)));
  return [...pieces, body].join('\n');
}

/**
 * The seven keys of a batch in the order the scripts take them (lua/includes/batch-keys.lua):
 * batch, results, rejected, parked, instances, producer heartbeat, events outbox.
 */
export function batchKeyList(keys: Keys, batchId: string): string[] {
  return [keys.batch(batchId), keys.results(batchId), keys.rejected(batchId), keys.parked(batchId), keys.instances(batchId), keys.producer(batchId), keys.eventsOutbox()];
}

export type { RegisterAnswer, RegisterChunk, RegisterChunkAnswer, RegisterEntry, RegisterFlag, RejectedEntry } from './register-request.js';

/** A subscriber of a revocation job as a run sees it. */
export interface SubscriberState {
  batchId: string;
  /** Null when the batch is gone (expired). */
  state: BatchState | null;
  priority: BatchPriority;
}

/** The ledger entry of one revocation. */
export interface RevocationEntry {
  /** The open job, or null. */
  job: string | null;
  gen: number;
  /** When the open job was opened (ms), or null. */
  openedAtMs: number | null;
  /** Who opened it: a batch id, `redrive` or `reconciler`. */
  openedBy: string | null;
  /** The dead letter a redrive opened the job from (its history is the job's). */
  redrivenFrom: string | null;
}

/** What a redrive of one dead letter did in the ledger. */
export interface RedriveAnswer {
  /** `none`: no subscriber record could be reopened (all gone, cancelled or no longer failed). */
  flag: RegisterFlag | 'none';
  jobId: string;
  /** Batches waiting for the job now: their `failed` record is pending again (or still was). */
  reopened: string[];
}

type ScriptName = 'register' | 'finalize' | 'mark-enqueued' | 'read-subscribers' | 'unsubscribe' | 'close-revocation' | 'park' | 'redrive' | 'open-job' | 'mark-lost-answers';
const SCRIPTS: readonly ScriptName[] = ['register', 'finalize', 'mark-enqueued', 'read-subscribers', 'unsubscribe', 'close-revocation', 'park', 'redrive', 'open-job', 'mark-lost-answers'];

function commandName(script: ScriptName): string {
  return `revoker_${script.replace(/-/g, '_')}`;
}

type ScriptClient = Redis & Record<string, (...args: (string | number)[]) => Promise<unknown>>;

/** Registers the scripts on a connection once (ioredis sends EVALSHA, and EVAL after NOSCRIPT). */
function withScripts(redis: Redis): ScriptClient {
  const client = redis as unknown as ScriptClient;
  if (typeof client[commandName('register')] !== 'function') {
    for (const script of SCRIPTS) redis.defineCommand(commandName(script), { lua: loadScript(import.meta.url, `lua/${script}.lua`) });
  }
  return client;
}

/** Serialises a pending placeholder; it must start with `{"outcome":"pending"` (the scripts test that prefix). */
export function pendingPlaceholder(record: Omit<PendingRecord, 'outcome'>): string {
  const pending: PendingRecord = { outcome: 'pending', ...record };
  return JSON.stringify({ outcome: pending.outcome, batchId: pending.batchId, mqttInstanceId: pending.mqttInstanceId, caSn: pending.caSn, deviceSn: pending.deviceSn, action: pending.action });
}

/** The not_found breaker: pause a batch whose devices mostly turn out unregistered. */
export interface NotFoundBreaker {
  /** Outcomes a batch needs before the breaker may trip; 0 disables it. */
  minOutcomes: number;
  /** It trips when more than this percentage of the outcomes so far are `not_found`. */
  notFoundPercent: number;
}

/** Defaults of `NotFoundBreaker` (issue: after at least 100 outcomes, more than half). */
export const NOT_FOUND_BREAKER_DEFAULTS: NotFoundBreaker = { minOutcomes: 100, notFoundPercent: 50 };

/** Reads and writes the ledger, result records and their counters. */
export class ResultStore {
  private readonly redis: ScriptClient;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly breaker: NotFoundBreaker = NOT_FOUND_BREAKER_DEFAULTS,
  ) {
    this.redis = withScripts(redis);
  }

  /** A watch for Redis coming back as a new instance on this store's connection (a producer's). */
  restartWatch(): RunIdWatch {
    return new RunIdWatch(this.redis);
  }

  private run<T>(script: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<T> {
    const command = this.redis[commandName(script)];
    if (command === undefined) throw new Error(`script ${script} is not registered`);
    return command.call(this.redis, keys.length, ...keys, ...args) as Promise<T>;
  }

  /**
   * Registers one chunk of a batch's input in one round trip (lua/register.lua): accepts its
   * devices and subscribes the batch to their revocations, opening a job generation where none is
   * open (see `RegisterFlag` for what the producer must then do); records the input line of each
   * device that carries one and the chunk's rejected rows; moves the counters and refreshes the
   * producer heartbeat. A cancelled batch takes nothing (`answers` is empty). Sending the same
   * `requestId` again returns the first answer and changes nothing.
   */
  async registerChunk(batchId: string, chunk: RegisterChunk, requestId: string = randomUUID()): Promise<RegisterChunkAnswer> {
    return this.registerRaw('ledger', batchId, chunk, requestId);
  }

  /**
   * `registerChunk` for devices alone, answering per device. Throws when the batch is cancelled
   * (nothing was registered).
   */
  async registerRevocations(batchId: string, devices: readonly RegisterEntry[], requestId: string = randomUUID()): Promise<RegisterAnswer[]> {
    if (devices.length === 0) return [];
    const answer = await this.registerRaw('ledger', batchId, { devices }, requestId);
    if (answer.answers.length !== devices.length) throw new Error(`batch ${batchId} is ${answer.state || 'gone'}: no device was registered`);
    return answer.answers;
  }

  /**
   * Accepts devices into a batch as records that no revocation job will write (a CA deletion's
   * devices: the CLI writes them with `finalize`), with their input lines when given. Duplicates
   * are counted.
   */
  async register(batchId: string, devices: readonly RegisterEntry[]): Promise<RegisterFlag[]> {
    if (devices.length === 0) return [];
    return (await this.registerRaw('records', batchId, { devices }, randomUUID())).answers.map((answer) => answer.flag);
  }

  private async registerRaw(mode: RegisterMode, batchId: string, chunk: RegisterChunk, requestId: string): Promise<RegisterChunkAnswer> {
    const keys = registerKeys(this.keys, mode, batchId, requestId, chunk.devices);
    const flat = await this.run<(string | number)[]>('register', keys, registerArgs(this.keys.prefix, mode, batchId, chunk, PRODUCER_HEARTBEAT_MS, Date.now()));
    return parseRegisterAnswer(flat, mode, chunk.devices);
  }

  /**
   * Writes a revocation's outcome into every subscriber of job `jobId` whose record is still
   * pending (and into `record.batchId`, the batch that opened the job), then closes the job in the
   * ledger. Returns the batches written.
   */
  finalizeRevocation(rid: string, jobId: string, record: ResultRecord): Promise<string[]> {
    return this.finalizeRaw(rid, jobId, record);
  }

  /** Writes a record outside the ledger (a CA deletion's device) once; false if it was not pending. */
  async finalize(field: string, record: ResultRecord): Promise<boolean> {
    return (await this.finalizeRaw(field, '', record)).length > 0;
  }

  private finalizeRaw(field: string, jobId: string, record: ResultRecord): Promise<string[]> {
    return this.run<string[]>(
      'finalize',
      [this.keys.revocation(field), this.keys.subscribers(jobId), ...batchKeyList(this.keys, record.batchId)],
      [this.keys.prefix, field, jobId, JSON.stringify(record), record.outcome, record.finishedAt, this.breaker.minOutcomes, this.breaker.notFoundPercent, record.batchId],
    );
  }

  /**
   * Marks the batch fully enqueued and returns its state afterwards (null if it does not exist).
   * `note` says why the input ended early (a producer that stopped). Idempotent.
   */
  async markEnqueued(batchId: string, now: Date = new Date(), note = ''): Promise<string | null> {
    return this.run<string | null>('mark-enqueued', batchKeyList(this.keys, batchId), [now.toISOString(), note]);
  }

  /**
   * The subscribers of a job with their states, the account pause in force (or null), and whether
   * the ledger holds an earlier lost answer for this job (a redrive that joined it brought one).
   */
  async readSubscribers(rid: string, jobId: string, accountPauseKey: string): Promise<{ accountPaused: string | null; lostAnswer: boolean; subscribers: SubscriberState[] }> {
    const flat = await this.run<string[]>('read-subscribers', [this.keys.subscribers(jobId), accountPauseKey, this.keys.revocation(rid)], [this.keys.prefix, jobId]);
    const subscribers: SubscriberState[] = [];
    for (let i = 2; i + 2 < flat.length; i += 3) {
      const batchId = flat[i] ?? '';
      const state = flat[i + 1] ?? '';
      subscribers.push({ batchId, state: state === '' ? null : (state as BatchState), priority: parsePriority(flat[i + 2]) ?? 'normal' });
    }
    const reason = flat[0] ?? '';
    return { accountPaused: reason === '' ? null : reason, lostAnswer: flat[1] === '1', subscribers };
  }

  /**
   * Takes a batch off a job's subscribers, writing `record` into it first (a cancelled batch's
   * `cancelled`), or nothing (an expired batch). Returns true when the record was written.
   */
  async unsubscribe(jobId: string, field: string, batchId: string, record: ResultRecord | null): Promise<boolean> {
    const written = await this.run<number>(
      'unsubscribe',
      [this.keys.subscribers(jobId), ...batchKeyList(this.keys, batchId)],
      [batchId, field, record === null ? '' : JSON.stringify({ ...record, batchId }), record?.outcome ?? '', record?.finishedAt ?? new Date().toISOString(), this.breaker.minOutcomes, this.breaker.notFoundPercent],
    );
    return written === 1;
  }

  /** Ends a job that no batch wants any more; false when one subscribed meanwhile. */
  async closeRevocation(rid: string, jobId: string): Promise<boolean> {
    return (await this.run<number>('close-revocation', [this.keys.revocation(rid), this.keys.subscribers(jobId)], [jobId])) === 1;
  }

  /**
   * Records a parked job in the parked set of each batch given (any resume wakes it). False when
   * refused because the reason is gone (mode `account`: the account pause was lifted; `batch`: a
   * subscriber runs): decide again.
   */
  async park(rid: string, jobId: string, batchIds: readonly string[], mode: 'account' | 'batch' | 'force', accountPauseKey: string): Promise<boolean> {
    const keys = [this.keys.revocation(rid), this.keys.subscribers(jobId), accountPauseKey, ...batchIds.map((batchId) => this.keys.parked(batchId))];
    return (await this.run<number>('park', keys, [jobId, this.keys.prefix, mode])) >= 0;
  }

  /**
   * Reopens the `failed` records of a dead-lettered revocation in these batches and subscribes
   * them to its open job, or to a new generation (flag `queue`: the caller adds it). `lostAnswer`:
   * the dead letter's history holds a call whose answer was lost (an open job joined is told).
   * `deadJobId`: the dead-lettered job; if the ledger still has it open (its records were never
   * written), the answer is `queue` with that id: add it again (a no-op if it exists).
   */
  async redrive(rid: string, deadLetterId: string, candidates: readonly { batchId: string; placeholder: string }[], lostAnswer: boolean, deadJobId = ''): Promise<RedriveAnswer> {
    const keys = [this.keys.revocation(rid), ...candidates.flatMap((candidate) => batchKeyList(this.keys, candidate.batchId))];
    const args: (string | number)[] = [this.keys.prefix, rid, Date.now(), deadLetterId, candidates.length, lostAnswer ? '1' : '', deadJobId];
    for (const candidate of candidates) args.push(candidate.batchId, candidate.placeholder);
    const [flag, jobId, ...reopened] = await this.run<(string | number)[]>('redrive', keys, args);
    return { flag: Number(flag) === 0 ? 'none' : (REGISTER_FLAGS[Number(flag)] ?? 'none'), jobId: String(jobId ?? ''), reopened: reopened.map(String) };
  }

  /** Subscribes batches to the revocation's open job or opens a generation (the reconciler's repair). */
  async openJob(rid: string, batchIds: readonly string[], opener: string): Promise<RegisterAnswer> {
    const [flag, jobId] = await this.run<(string | number)[]>('open-job', [this.keys.revocation(rid)], [this.keys.prefix, rid, Date.now(), opener, ...batchIds]);
    return { flag: REGISTER_FLAGS[Number(flag)] ?? 'duplicate', jobId: String(jobId ?? '') };
  }

  /**
   * Marks jobs whose recent call's intent Redis may have lost (it came back from a crash): their
   * next runs treat the earlier result as unknown. Returns how many were still open.
   */
  async markLostAnswers(entries: readonly { rid: string; jobId: string }[]): Promise<number> {
    let marked = 0;
    // Keys of one script call must share a slot: they do (one hash tag), but keep calls small.
    for (let start = 0; start < entries.length; start += 500) {
      const page = entries.slice(start, start + 500);
      marked += await this.run<number>('mark-lost-answers', [this.keys.lostMarks(), ...page.map((entry) => this.keys.revocation(entry.rid))], page.map((entry) => entry.jobId));
    }
    return marked;
  }

  /** The ledger entry of a revocation, or null when there is none. */
  async revocation(rid: string): Promise<RevocationEntry | null> {
    const hash = await this.redis.hgetall(this.keys.revocation(rid));
    if (Object.keys(hash).length === 0) return null;
    return {
      job: hash.job ?? null,
      gen: Number(hash.gen ?? 0),
      openedAtMs: hash.openedAt === undefined ? null : Number(hash.openedAt),
      openedBy: hash.openedBy ?? null,
      redrivenFrom: hash.redrivenFrom ?? null,
    };
  }

  /**
   * The BullMQ priority of each revocation job (null where the job does not exist), in one round
   * trip: what a producer following another batch's jobs needs to decide whether to raise them.
   */
  async jobPriorities(jobIds: readonly string[]): Promise<(number | null)[]> {
    if (jobIds.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const jobId of jobIds) pipeline.hget(this.keys.jobKeyPrefix() + jobId, 'priority');
    const replies = (await pipeline.exec()) ?? [];
    return jobIds.map((_, index) => {
      const raw = replies[index]?.[1];
      return typeof raw === 'string' ? Number(raw) : null;
    });
  }

  /** The jobs among these that the ledger marks parked (park.lua sets `parked` on the revocation), in one round trip. */
  async markedParked(jobIds: readonly string[]): Promise<ReadonlySet<string>> {
    if (jobIds.length === 0) return new Set();
    const pipeline = this.redis.pipeline();
    for (const jobId of jobIds) pipeline.hget(this.keys.revocation(revocationIdOf(jobId)), 'parked');
    const replies = (await pipeline.exec()) ?? [];
    return new Set(jobIds.filter((jobId, index) => replies[index]?.[1] === jobId));
  }

  /** The open job of each revocation (null where none is open), in one round trip. */
  async openJobs(rids: readonly string[]): Promise<(string | null)[]> {
    if (rids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const rid of rids) pipeline.hget(this.keys.revocation(rid), 'job');
    const replies = (await pipeline.exec()) ?? [];
    return rids.map((_, index) => {
      const raw = replies[index]?.[1];
      return typeof raw === 'string' ? raw : null;
    });
  }

  /** The batches subscribed to a job. */
  subscribersOf(jobId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.subscribers(jobId));
  }

  /** One device's record, or its pending placeholder, or null. */
  async get(batchId: string, field: string): Promise<ResultRecord | PendingRecord | null> {
    const raw = await this.redis.hget(this.keys.results(batchId), field);
    return raw === null ? null : (JSON.parse(raw) as ResultRecord | PendingRecord);
  }

  /** Streams every record of a batch in pages (HSCAN), never holding the whole batch in memory. */
  async *scan(batchId: string, pageSize = 1_000): AsyncGenerator<ResultRecord | PendingRecord> {
    for await (const page of this.scanFields(batchId, pageSize)) for (const entry of page) yield entry.record;
  }

  /** Like `scan`, in pages of (field, record) pairs: what the reconciler walks. */
  async *scanFields(batchId: string, pageSize = 1_000): AsyncGenerator<{ field: string; record: ResultRecord | PendingRecord }[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.results(batchId), cursor, 'COUNT', pageSize);
      cursor = next;
      const page: { field: string; record: ResultRecord | PendingRecord }[] = [];
      for (let i = 1; i < flat.length; i += 2) {
        const field = flat[i - 1];
        const raw = flat[i];
        if (field !== undefined && raw !== undefined) page.push({ field, record: JSON.parse(raw) as ResultRecord | PendingRecord });
      }
      if (page.length > 0) yield page;
    } while (cursor !== '0');
  }
}
