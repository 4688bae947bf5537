/**
 * The device table of a batch page, read from Redis a page at a time: a batch of 1,000,000
 * devices costs what one of 100 does.
 *
 * - **Pages in input order** come from the batch's input order (a sorted set by input line,
 *   `InputOrder`): `ZRANGE` by rank (O(log n + page)) and one `HMGET` of the page's records.
 *   Batches without one (a webhook's) are paged with `HSCAN` cursors (next page only).
 * - **Search by serial** is exact: the results hash is keyed by the revocation id, a hash of
 *   (instance, CA, serial, action), so the id of each (instance, CA) pair the batch uses is
 *   computed and looked up: one `HMGET`, O(pairs). The instances are counted per batch; the CAs
 *   are known for batches the console started and otherwise sampled from the batch (its first
 *   input lines and one `HSCAN` page), and the search form takes a CA for the rest.
 * - **Filter by outcome** has no index to read (the ledger keeps counters, not per-outcome sets),
 *   so it walks the batch in bounded steps: a Lua step examines at most `examinePerStep` devices
 *   (about 4 ms of Redis), the request stops after `maxExaminePerRequest` devices or
 *   `timeBudgetMs`, and the page says how far it got and links the next step. When the outcome's
 *   counter says there is nothing (or the matches found equal it), nothing is walked.
 */
import { revocationJobId } from '../../queue/job-id.js';
import type { Keys } from '../../queue/keys.js';
import { loadLua } from '../../redis/lua-script.js';
import type { RedisClient as Redis } from '../../redis/redis-connection.js';
import type { Batch } from '../../batches/batch.js';
import type { Outcome, PendingRecord, ResultRecord } from '../../results/result-record.js';

/** What a device row shows. */
export interface DeviceRow {
  /** The field of the results hash (the revocation id). */
  field: string;
  /** Input line (CSV physical line, webhook entry index, listing position); null when unknown. */
  line: number | null;
  record: ResultRecord | PendingRecord;
}

/** Outcomes the table filters by (`pending`: not finished yet). */
export type DeviceFilter = Outcome | 'pending';

/** Every filter value, in the order the form lists them. */
export const DEVICE_FILTERS: readonly DeviceFilter[] = ['pending', 'deleted', 'inactivated', 'not_found', 'gone', 'failed', 'cancelled'];

/** A page of the table and where the next one starts. */
export interface DevicePage {
  rows: DeviceRow[];
  /** 'order': positions are ranks in the input order; 'scan': `next` is an HSCAN cursor. */
  mode: 'order' | 'scan';
  /** Rank of the first row ('order', unfiltered), else null. */
  from: number | null;
  /** Where the next page starts (a rank or a cursor), or null at the end. */
  next: string | null;
  /** Devices in the batch's input order (0 when it has none). */
  ordered: number;
  /** Filtered pages: devices examined by this request, and whether the walk reached the end. */
  examined: number;
}

/** Options of `BatchDevices`. */
export interface BatchDevicesOptions {
  /** Rows per page. */
  pageSize: number;
  /** Devices one Lua filter step examines at most (bounds how long it holds Redis). */
  examinePerStep: number;
  /** Devices one filtered request examines at most. */
  maxExaminePerRequest: number;
  /** A filtered request stops stepping after this long. */
  timeBudgetMs: number;
  /** Most (instance, CA) pairs a search tries. */
  maxSearchPairs: number;
  /** How long the sampled CAs of a batch are reused. */
  pairCacheMs: number;
}

/** Defaults of `BatchDevicesOptions`. */
export const BATCH_DEVICES_DEFAULTS: BatchDevicesOptions = {
  pageSize: 25,
  // A step holds Redis while it runs: measured about 20 ms per 5,000 devices of a 1,000,000-device
  // batch (docs/CONSOLE.md), so 1,000 (about 4 ms) keeps each stall within the rate budgets' 10 ms
  // late tolerance; a page of a rare outcome takes more, shorter steps.
  examinePerStep: 1_000,
  maxExaminePerRequest: 100_000,
  timeBudgetMs: 250,
  maxSearchPairs: 200,
  pairCacheMs: 60_000,
};

type FilterClient = Redis & { revokerConsoleFilter(n: number, ...args: (string | number)[]): Promise<(string | number)[]>; revokerConsoleTally(n: number, ...args: (string | number)[]): Promise<(string | number)[]> };

function withScripts(redis: Redis): FilterClient {
  const client = redis as FilterClient;
  if (typeof client.revokerConsoleFilter !== 'function') {
    redis.defineCommand('revokerConsoleFilter', { lua: loadLua(import.meta.url, 'lua/filter-devices.lua') });
    redis.defineCommand('revokerConsoleTally', { lua: loadLua(import.meta.url, 'lua/tally-evidence.lua') });
  }
  return client;
}

/** The input-order key of a batch: `InputOrder`'s (src/results/input-order.ts), which keeps it private. */
export function inputOrderKey(keys: Keys, batchId: string): string {
  return `${keys.batch(batchId)}:order`;
}

/** The console's own small hash of a batch: the (instance, CA) pairs of a batch it started, and evidence tallies. */
export function consoleFactsKey(keys: Keys, batchId: string): string {
  return `${keys.batch(batchId)}:console`;
}

function parseRecord(raw: string | null | undefined): ResultRecord | PendingRecord | null {
  if (raw === null || raw === undefined) return null;
  try {
    return JSON.parse(raw) as ResultRecord | PendingRecord;
  } catch {
    return null;
  }
}

/** How many devices of the batch have this outcome, from its counters. */
export function filterCount(batch: Batch, filter: DeviceFilter): number {
  return filter === 'pending' ? Math.max(0, batch.accepted - batch.done) : batch.counts[filter];
}

/** Reads device pages, searches and filters of batches. */
export class BatchDevices {
  private readonly options: BatchDevicesOptions;
  private readonly redis: FilterClient;
  private readonly pairCache = new Map<string, { atMs: number; pairs: { instance: string; caSn: string }[] }>();

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    options: Partial<BatchDevicesOptions> = {},
  ) {
    this.options = { ...BATCH_DEVICES_DEFAULTS, ...options };
    this.redis = withScripts(redis);
  }

  /** Rows per page. */
  get pageSize(): number {
    return this.options.pageSize;
  }

  /** Devices in the batch's input order (0 for a batch without one). */
  ordered(batchId: string): Promise<number> {
    return this.redis.zcard(inputOrderKey(this.keys, batchId));
  }

  /**
   * A page of every device: by rank in input order from `from` (a number), or, for a batch
   * without an input order, from HSCAN cursor `cursor`.
   */
  async page(batchId: string, position: { from?: number; cursor?: string } = {}): Promise<DevicePage> {
    const size = this.options.pageSize;
    const ordered = await this.ordered(batchId);
    if (ordered > 0) {
      const from = Math.max(0, Math.min(position.from ?? 0, Math.max(0, ordered - 1)));
      const flat = await this.redis.zrange(inputOrderKey(this.keys, batchId), String(from), String(from + size - 1), 'WITHSCORES');
      const fields: string[] = [];
      const lines: number[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        fields.push(flat[index] ?? '');
        lines.push(Number(flat[index + 1]));
      }
      const records = fields.length === 0 ? [] : await this.redis.hmget(this.keys.results(batchId), ...fields);
      const rows: DeviceRow[] = [];
      fields.forEach((field, index) => {
        const record = parseRecord(records[index]);
        if (record !== null) rows.push({ field, line: lines[index] ?? null, record });
      });
      const next = from + size < ordered ? String(from + size) : null;
      return { rows, mode: 'order', from, next, ordered, examined: fields.length };
    }
    const [next, flat] = await this.redis.hscan(this.keys.results(batchId), position.cursor ?? '0', 'COUNT', size);
    const rows: DeviceRow[] = [];
    for (let index = 0; index + 1 < flat.length; index += 2) {
      const record = parseRecord(flat[index + 1]);
      if (record !== null) rows.push({ field: flat[index] ?? '', line: null, record });
    }
    return { rows, mode: 'scan', from: null, next: next === '0' ? null : next, ordered: 0, examined: rows.length };
  }

  /**
   * Devices with outcome `filter` (or still pending), a page at a time: walks from `start` (a
   * rank, or an HSCAN cursor for batches without an input order) in bounded steps. `expected` is
   * the outcome's counter: 0 answers at once, and the walk stops once that many were found.
   */
  async filter(batchId: string, filter: DeviceFilter, start: string | null, expected: number): Promise<DevicePage> {
    const ordered = await this.ordered(batchId);
    const mode = ordered > 0 ? 'order' : 'scan';
    const empty: DevicePage = { rows: [], mode, from: null, next: null, ordered, examined: 0 };
    if (expected <= 0) return empty;
    const needle = `"outcome":"${filter}"`;
    const rows: DeviceRow[] = [];
    let position = start ?? '0';
    let examined = 0;
    const startedAt = Date.now();
    for (;;) {
      const wanted = this.options.pageSize - rows.length;
      const step = Math.min(this.options.examinePerStep, this.options.maxExaminePerRequest - examined);
      const reply = await this.redis.revokerConsoleFilter(2, inputOrderKey(this.keys, batchId), this.keys.results(batchId), mode, position, needle, wanted, step);
      const next = String(reply[0] ?? '');
      examined += Number(reply[1] ?? 0);
      for (let index = 2; index + 2 < reply.length; index += 3) {
        const record = parseRecord(String(reply[index + 2]));
        const line = String(reply[index + 1]);
        if (record !== null) rows.push({ field: String(reply[index]), line: line === '' ? null : Number(line), record });
      }
      if (next === '') return { rows, mode, from: null, next: null, ordered, examined };
      position = next;
      const foundAll = start === null && rows.length >= expected;
      if (rows.length >= this.options.pageSize || foundAll || examined >= this.options.maxExaminePerRequest || Date.now() - startedAt >= this.options.timeBudgetMs) {
        return { rows, mode, from: null, next: foundAll ? null : position, ordered, examined };
      }
    }
  }

  /**
   * The device with this serial, exactly: its record under every (instance, CA) pair the batch
   * uses (usually one), plus `caSn` when given. O(pairs), never a scan.
   */
  async search(batch: Batch, deviceSn: string, caSn?: string): Promise<DeviceRow[]> {
    const pairs = await this.pairsOf(batch, caSn);
    if (pairs.length === 0) return [];
    const fields = pairs.map((pair) => revocationJobId({ mqttInstanceId: pair.instance, caSn: pair.caSn, deviceSn }, batch.action));
    const [records, lines] = await Promise.all([this.redis.hmget(this.keys.results(batch.id), ...fields), this.redis.zmscore(inputOrderKey(this.keys, batch.id), ...fields)]);
    const rows: DeviceRow[] = [];
    fields.forEach((field, index) => {
      const record = parseRecord(records[index]);
      const line = lines[index];
      if (record !== null) rows.push({ field, line: line === null || line === undefined ? null : Number(line), record });
    });
    return rows;
  }

  /** The (instance, CA) pairs a search tries: the batch's instances × its known or sampled CAs. */
  async pairsOf(batch: Batch, extraCaSn?: string): Promise<{ instance: string; caSn: string }[]> {
    const cached = this.pairCache.get(batch.id);
    let known: { instance: string; caSn: string }[];
    if (cached !== undefined && Date.now() - cached.atMs < this.options.pairCacheMs) known = cached.pairs;
    else {
      known = await this.samplePairs(batch.id);
      this.pairCache.set(batch.id, { atMs: Date.now(), pairs: known });
      if (this.pairCache.size > 1_000) this.pairCache.delete(this.pairCache.keys().next().value as string);
    }
    const instances = [...new Set([...known.map((pair) => pair.instance), ...Object.keys(await this.redis.hgetall(this.keys.instances(batch.id)))])];
    const cas = [...new Set([...known.map((pair) => pair.caSn), ...(extraCaSn !== undefined && extraCaSn !== '' ? [extraCaSn] : [])])];
    const pairs: { instance: string; caSn: string }[] = [];
    for (const instance of instances) for (const caSn of cas) if (pairs.length < this.options.maxSearchPairs) pairs.push({ instance, caSn });
    return pairs;
  }

  private async samplePairs(batchId: string): Promise<{ instance: string; caSn: string }[]> {
    const seen = new Map<string, { instance: string; caSn: string }>();
    const add = (record: ResultRecord | PendingRecord | null): void => {
      if (record === null) return;
      seen.set(`${record.mqttInstanceId}\u0000${record.caSn}`, { instance: record.mqttInstanceId, caSn: record.caSn });
    };
    const facts = await this.redis.hget(consoleFactsKey(this.keys, batchId), 'pairs');
    if (facts !== null) {
      try {
        for (const pair of JSON.parse(facts) as { instance: string; caSn: string }[]) seen.set(`${pair.instance}\u0000${pair.caSn}`, pair);
      } catch {
        // A foreign value: fall back to sampling.
      }
    }
    const first = await this.redis.zrange(inputOrderKey(this.keys, batchId), '0', '49');
    if (first.length > 0) for (const raw of await this.redis.hmget(this.keys.results(batchId), ...first)) add(parseRecord(raw));
    const [, flat] = await this.redis.hscan(this.keys.results(batchId), '0', 'COUNT', 100);
    for (let index = 1; index < flat.length; index += 2) add(parseRecord(flat[index]));
    return [...seen.values()];
  }

  /**
   * Counts a finished batch's records by outcome and evidence, in HSCAN steps of `stepCount`
   * (each a few milliseconds of Redis). Returns `outcome → evidence → n`.
   */
  async tallyEvidence(batchId: string, stepCount = 2_000): Promise<Record<string, Record<string, number>>> {
    const tally: Record<string, Record<string, number>> = {};
    let cursor = '0';
    do {
      const reply = await this.redis.revokerConsoleTally(1, this.keys.results(batchId), cursor, stepCount);
      cursor = String(reply[0] ?? '0');
      for (let index = 1; index + 2 < reply.length; index += 3) {
        const outcome = String(reply[index]);
        const evidence = String(reply[index + 1]) || 'unrecorded';
        const byEvidence = (tally[outcome] ??= {});
        byEvidence[evidence] = (byEvidence[evidence] ?? 0) + Number(reply[index + 2]);
      }
    } while (cursor !== '0');
    return tally;
  }
}
