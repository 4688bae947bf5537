/**
 * Result records and batch counters, written together by Lua scripts so that the counters
 * always equal the records: a device is counted once however often its job runs (retries,
 * stalls, a worker killed between the API call and the write).
 *
 * Layout (see `Keys`): a batch hash holds the counters; a results hash maps each device's job
 * id to its record, holding a pending placeholder from the moment the device is accepted. The
 * placeholder is what makes duplicates cheap to spot and lets a report show what is unfinished.
 */
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { EMIT_EVENT_LUA } from '../events/batch-event.js';
import type { Keys } from '../queue/keys.js';
import type { PendingRecord, ResultRecord } from './result-record.js';

/**
 * Writes a terminal record once. KEYS: batch, results, followers. ARGV: prefix, field, record
 * JSON, outcome, now ISO, BullMQ job key (or ''), breaker minimum outcomes (0 = off), breaker percent. Returns 1 when written, 0 when the device already had a final record.
 * Also writes the same outcome into every follower batch (batches that asked for the same device
 * while this job was queued), then forgets the followers.
 */
const FINALIZE = `
if ARGV[6] ~= '' and redis.call('EXISTS', ARGV[6]) == 1 then
  -- Tells producers that this job's outcome is decided: a batch arriving now needs a job of its own.
  redis.call('HSET', ARGV[6], 'revokerDone', '1')
end
${EMIT_EVENT_LUA}local minOutcomes, percent
local outbox = ARGV[1] .. ':events:outbox'
local function finish(batchKey, resultsKey, field, record, outcome, now)
  local current = redis.call('HGET', resultsKey, field)
  if current and string.sub(current, 1, 20) ~= '{"outcome":"pending"' then
    return 0
  end
  redis.call('HSET', resultsKey, field, record)
  redis.call('HINCRBY', batchKey, outcome, 1)
  local done = redis.call('HINCRBY', batchKey, 'done', 1)
  local accepted = tonumber(redis.call('HGET', batchKey, 'accepted') or '0')
  if redis.call('HGET', batchKey, 'enqueued') == '1' and done >= accepted then
    local state = redis.call('HGET', batchKey, 'state')
    if state ~= 'cancelled' then
      redis.call('HSET', batchKey, 'state', 'completed')
    end
    redis.call('HSET', batchKey, 'finishedAt', now)
    emit(batchKey, outbox, state == 'cancelled' and 'cancelled' or 'completed', now)
  elseif outcome == 'not_found' and minOutcomes > 0 and done >= minOutcomes then
    -- The not_found breaker: a wrong CaSn or instance makes most devices look unregistered.
    local notFound = tonumber(redis.call('HGET', batchKey, 'not_found') or '0')
    local state = redis.call('HGET', batchKey, 'state')
    if notFound * 100 > done * percent and (state == 'running' or state == 'enqueuing') and redis.call('HGET', batchKey, 'notFoundBreaker') ~= 'off' then
      redis.call('HSET', batchKey, 'state', 'paused', 'stateBeforePause', state, 'reason',
        'not_found breaker: ' .. notFound .. ' of the first ' .. done .. ' devices were not registered; check the CaSn and instance, then resume (the breaker then stays off) or cancel')
      emit(batchKey, outbox, 'paused', now)
    end
  end
  return 1
end
minOutcomes = tonumber(ARGV[7])
percent = tonumber(ARGV[8])
local written = finish(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
local followers = redis.call('SMEMBERS', KEYS[3])
for _, batchId in ipairs(followers) do
  local record = cjson.decode(ARGV[3])
  record['batchId'] = batchId
  finish(ARGV[1] .. ':batch:' .. batchId, ARGV[1] .. ':batch:' .. batchId .. ':results', ARGV[2], cjson.encode(record), ARGV[4], ARGV[5])
end
redis.call('DEL', KEYS[3])
return written
`;

/**
 * Accepts devices into a batch. KEYS: batch, results. ARGV: job-key prefix, followers-key prefix,
 * batch id, n, then n
 * pairs (field = job id, placeholder). Returns one flag per device:
 * 0 duplicate within the batch; 1 new, queue a job; 2 new, and a job of another batch for the
 * same device is queued: this batch follows its outcome; 3 new, but that job has just finished
 * and is being removed: queue a job once it is gone.
 */
const REGISTER = `
local n = tonumber(ARGV[4])
local flags = {}
local added = 0
for i = 1, n do
  local field = ARGV[3 + 2 * i]
  local flag = redis.call('HSETNX', KEYS[2], field, ARGV[4 + 2 * i])
  if flag == 1 then
    local jobKey = ARGV[1] .. field
    if redis.call('EXISTS', jobKey) == 1 then
      if redis.call('HGET', jobKey, 'revokerDone') == '1' then
        flag = 3
      else
        local ok, data = pcall(cjson.decode, redis.call('HGET', jobKey, 'data') or '{}')
        if ok and type(data) == 'table' and data['batchId'] ~= ARGV[3] then
          redis.call('SADD', ARGV[2] .. field, ARGV[3])
          flag = 2
        end
      end
    end
    added = added + 1
  end
  flags[i] = flag
end
redis.call('HINCRBY', KEYS[1], 'accepted', added)
redis.call('HINCRBY', KEYS[1], 'duplicates', n - added)
return flags
`;

/**
 * Marks a batch fully enqueued; completes it if every device already finished.
 * KEYS: batch, events outbox. ARGV: now ISO.
 */
const MARK_ENQUEUED = `
${EMIT_EVENT_LUA}redis.call('HSET', KEYS[1], 'enqueued', '1')
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'enqueuing' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  state = 'running'
end
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
if done >= accepted then
  if state ~= 'cancelled' then redis.call('HSET', KEYS[1], 'state', 'completed') end
  redis.call('HSET', KEYS[1], 'finishedAt', ARGV[1])
  emit(KEYS[1], KEYS[2], state == 'cancelled' and 'cancelled' or 'completed', ARGV[1])
end
return redis.call('HGET', KEYS[1], 'state')
`;

/**
 * Reopens a final record (a dead letter being redriven). KEYS: batch, results. ARGV: field,
 * placeholder JSON. Returns the outcome that was undone, or false.
 */
const REOPEN = `
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return false end
local record = cjson.decode(current)
if record['outcome'] == 'pending' then return false end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], record['outcome'], -1)
redis.call('HINCRBY', KEYS[1], 'done', -1)
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'completed' then redis.call('HSET', KEYS[1], 'state', 'running') end
redis.call('HDEL', KEYS[1], 'finishedAt')
return record['outcome']
`;

/** What the producer does with a device after registering it. */
export type RegisterFlag =
  /** Already in this batch: count it, queue nothing. */
  | 'duplicate'
  /** New: queue its job. */
  | 'queue'
  /** New, and another batch's job for the same device is queued: this batch gets its outcome. */
  | 'following'
  /** New, and another batch's job for it has just finished: queue a job once that one is removed. */
  | 'queue_after_removal';

const REGISTER_FLAGS: Record<number, RegisterFlag> = { 0: 'duplicate', 1: 'queue', 2: 'following', 3: 'queue_after_removal' };

type ScriptClient = Redis & {
  revokerFinalize(b: string, r: string, f: string, prefix: string, field: string, record: string, outcome: string, now: string, jobKey: string, minOutcomes: string, percent: string): Promise<number>;
  revokerRegister(b: string, r: string, ...args: string[]): Promise<number[]>;
  revokerMarkEnqueued(b: string, outbox: string, now: string): Promise<string>;
  revokerReopen(b: string, r: string, field: string, placeholder: string): Promise<string | null>;
};

/** Registers the scripts on a connection (idempotent). ioredis reloads them after NOSCRIPT. */
function withScripts(redis: Redis): ScriptClient {
  const client = redis as ScriptClient;
  if (typeof client.revokerFinalize !== 'function') {
    redis.defineCommand('revokerFinalize', { numberOfKeys: 3, lua: FINALIZE });
    redis.defineCommand('revokerRegister', { numberOfKeys: 2, lua: REGISTER });
    redis.defineCommand('revokerMarkEnqueued', { numberOfKeys: 2, lua: MARK_ENQUEUED });
    redis.defineCommand('revokerReopen', { numberOfKeys: 2, lua: REOPEN });
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

/** Reads and writes result records and their counters. */
export class ResultStore {
  private readonly redis: ScriptClient;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly breaker: NotFoundBreaker = NOT_FOUND_BREAKER_DEFAULTS,
  ) {
    this.redis = withScripts(redis);
  }

  /**
   * Accepts devices into a batch and says, per device, what the producer must do (see
   * `RegisterFlag`). Counters `accepted` and `duplicates` move accordingly.
   */
  async register(batchId: string, devices: { field: string; placeholder: string }[]): Promise<RegisterFlag[]> {
    if (devices.length === 0) return [];
    const args: string[] = [this.keys.jobKeyPrefix(), this.keys.followers(''), batchId, String(devices.length)];
    for (const device of devices) args.push(device.field, device.placeholder);
    const flags = await this.redis.revokerRegister(this.keys.batch(batchId), this.keys.results(batchId), ...args);
    return flags.map((flag) => REGISTER_FLAGS[flag] ?? 'duplicate');
  }

  /** Writes a device's terminal record once; returns false if it already had one. */
  async finalize(field: string, record: ResultRecord): Promise<boolean> {
    const written = await this.redis.revokerFinalize(
      this.keys.batch(record.batchId),
      this.keys.results(record.batchId),
      this.keys.followers(field),
      this.keys.prefix,
      field,
      JSON.stringify(record),
      record.outcome,
      record.finishedAt,
      this.keys.jobKeyPrefix() + field,
      String(this.breaker.minOutcomes),
      String(this.breaker.notFoundPercent),
    );
    return written === 1;
  }

  /** Marks the batch fully enqueued and returns its state afterwards. */
  markEnqueued(batchId: string, now: Date = new Date()): Promise<string> {
    return this.redis.revokerMarkEnqueued(this.keys.batch(batchId), this.keys.eventsOutbox(), now.toISOString());
  }

  /** Turns a final record back into pending (before a redrive); returns the undone outcome or null. */
  reopen(batchId: string, field: string, placeholder: string): Promise<string | null> {
    return this.redis.revokerReopen(this.keys.batch(batchId), this.keys.results(batchId), field, placeholder);
  }

  /** One device's record, or its pending placeholder, or null. */
  async get(batchId: string, field: string): Promise<ResultRecord | PendingRecord | null> {
    const raw = await this.redis.hget(this.keys.results(batchId), field);
    return raw === null ? null : (JSON.parse(raw) as ResultRecord | PendingRecord);
  }

  /** Streams every record of a batch in pages (HSCAN), never holding the whole batch in memory. */
  async *scan(batchId: string, pageSize = 1_000): AsyncGenerator<ResultRecord | PendingRecord> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.results(batchId), cursor, 'COUNT', pageSize);
      cursor = next;
      for (let i = 1; i < flat.length; i += 2) {
        const raw = flat[i];
        if (raw !== undefined) yield JSON.parse(raw) as ResultRecord | PendingRecord;
      }
    } while (cursor !== '0');
  }
}
