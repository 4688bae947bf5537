/**
 * The input order of a batch's devices, so that a report lists them as the input had them and
 * its hash chain runs in a fixed order. A sorted set per batch (`<batch key>:order`): member =
 * the device's field in the results hash (its revocation id), score = its input line (CSV
 * physical line, webhook entry index, CA listing position). `ZADD NX` keeps a device's first line
 * when it repeats.
 *
 * The intake writes it (src/producer/intake.ts): REGISTER records each chunk's lines in the same
 * script that accepts its devices, so every source gets it and no round trip is added. `record`
 * and `tap` are for code that registers devices some other way.
 *
 * A report pages through it (ZRANGE) and fetches each page's records: memory stays at one page
 * whatever the batch size. Redis pays for it: measured 134 bytes per device (a 1,000,000-device
 * batch: 134 MB, next to the 464 MB of its results hash), for the batch's retention.
 */
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { revocationJobId } from '../queue/job-id.js';
import type { InputItem } from '../producer/device-request.js';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { PendingRecord, ResultRecord } from './result-record.js';

/** The key of a batch's input order (REGISTER writes it too). */
export function inputOrderKey(keys: Keys, batchId: string): string {
  return `${keys.batch(batchId)}:order`;
}

/** One device's place in the input. */
export interface OrderEntry {
  field: string;
  line: number;
}

/** Reads and writes batches' input order. */
export class InputOrder {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  private key(batchId: string): string {
    return inputOrderKey(this.keys, batchId);
  }

  /**
   * Records where these devices were in the input (a device already placed keeps its line). No
   * TTL: the order lives as long as its batch (finish-batch.lua gives it the batch's retention).
   */
  async record(batchId: string, entries: readonly OrderEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const args: (string | number)[] = [];
    for (const entry of entries) args.push(entry.line, entry.field);
    await this.redis.zadd(this.key(batchId), 'NX', ...args);
  }

  /** How many devices have a recorded place. */
  count(batchId: string): Promise<number> {
    return this.redis.zcard(this.key(batchId));
  }

  /** Pages of entries in input order (line, then field for equal lines). */
  async *pages(batchId: string, pageSize = 1_000): AsyncGenerator<OrderEntry[]> {
    for (let start = 0; ; start += pageSize) {
      const flat = await this.redis.zrange(this.key(batchId), String(start), String(start + pageSize - 1), 'WITHSCORES');
      const page: OrderEntry[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) page.push({ field: flat[index] ?? '', line: Number(flat[index + 1]) });
      if (page.length > 0) yield page;
      if (page.length < pageSize) return;
    }
  }

  /** The recorded line of each field, or null. */
  async linesOf(batchId: string, fields: readonly string[]): Promise<(number | null)[]> {
    if (fields.length === 0) return [];
    const scores = await this.redis.zmscore(this.key(batchId), ...fields);
    return scores.map((score) => (score === null ? null : Number(score)));
  }

  /**
   * Records of the batch that have no recorded place, in pages of the results hash (HSCAN: may
   * repeat an entry while the hash is resized). Reads the results hash by field, which is what
   * the order is keyed by, so no field has to be derived again from a record.
   */
  async *unplaced(batchId: string, pageSize = 1_000): AsyncGenerator<(ResultRecord | PendingRecord)[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.results(batchId), cursor, 'COUNT', pageSize);
      cursor = next;
      const fields: string[] = [];
      const values: string[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        fields.push(flat[index] ?? '');
        values.push(flat[index + 1] ?? '');
      }
      const lines = await this.linesOf(batchId, fields);
      const page = values.filter((_, index) => lines[index] === null).map((raw) => JSON.parse(raw) as ResultRecord | PendingRecord);
      if (page.length > 0) yield page;
    } while (cursor !== '0');
  }

  /**
   * Passes `items` through unchanged while recording the devices' lines, in chunks of
   * `chunkSize`, one round trip each. Only for an `Enqueuer` used without the intake (tests,
   * scripts): the intake records the order in its REGISTER round trip.
   */
  async *tap(batchId: string, action: RevocationAction, items: AsyncIterable<InputItem> | Iterable<InputItem>, chunkSize = 500): AsyncGenerator<InputItem> {
    let buffer: OrderEntry[] = [];
    try {
      for await (const item of items) {
        if (item.kind === 'device') {
          buffer.push({ field: revocationJobId(item.request, action), line: item.request.line });
          if (buffer.length >= chunkSize) {
            await this.record(batchId, buffer);
            buffer = [];
          }
        }
        yield item;
      }
    } finally {
      // Also when the consumer stops early (a cancelled batch): what was read keeps its place.
      await this.record(batchId, buffer);
    }
  }
}
