/**
 * Existence snapshots: which certificates a CA had registered before a batch's calls, so that a
 * call whose answer was lost can still be given an exact outcome (docs/DESIGN.md §3, "Existence
 * snapshots"; the contract: ../shared/DESIGN.md, "Result record").
 *
 * A snapshot is one listing of a (instance, CA): a hash serial → the time the listing saw it
 * registered, and its facts (when it started and, once every page is in, when it completed), all
 * on Redis' clock. The worker asks only after a lost answer followed by "not registered":
 * - seen registered before the revocation's first call → that call removed it: `deleted`;
 * - absent from a snapshot completed before the first call → it was never there: `not_found`;
 * - otherwise nothing is known and the outcome stays `gone`.
 * The snapshot is evidence only: every device is still called.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis/redis-connection.js';
import { loadLua } from '../redis/lua-script.js';
import type { Keys } from '../queue/keys.js';

const PAGE = loadLua(import.meta.url, 'lua/snapshot-page.lua');
const COMPLETE = loadLua(import.meta.url, 'lua/snapshot-complete.lua');

/** Serials per page script: keeps each script short however large a listing page is. */
const SERIALS_PER_SCRIPT = 1_000;

type SnapshotClient = RedisClient & {
  revokerSnapshotPage(...args: string[]): Promise<number>;
  revokerSnapshotComplete(key: string): Promise<number>;
};

/** Options of `ExistenceSnapshots`. */
export interface SnapshotOptions {
  /** How long a snapshot is kept (a lost answer later than this stays `gone`). */
  ttlSeconds: number;
  /** Snapshots kept per (instance, CA). */
  keepPerCa: number;
  /**
   * How much earlier than the first call a snapshot time must be to count: covers the error of a
   * worker's estimate of Redis' clock (RedisClock: half a round trip, plus drift between its
   * measurements) many times over.
   */
  marginMs: number;
}

/** Defaults of `SnapshotOptions`. */
export const SNAPSHOT_DEFAULTS: SnapshotOptions = { ttlSeconds: 7 * 24 * 3_600, keepPerCa: 5, marginMs: 50 };

/** What a snapshot says about one device. */
export interface SnapshotVerdict {
  /** `present`: seen registered before the first call; `absent`: not in a complete listing made before it. */
  kind: 'present' | 'absent';
  snapshotId: string;
  /** When it was seen (present) or when the listing completed (absent), ms on Redis' clock. */
  at: number;
}

/** A snapshot being written, page by page. */
export class SnapshotWriter {
  private pages = 0;

  constructor(
    private readonly redis: SnapshotClient,
    private readonly keys: Keys,
    readonly id: string,
    private readonly target: { mqttInstanceId: string; caSn: string },
    private readonly source: string,
    private readonly options: SnapshotOptions,
  ) {}

  /** Adds one listing page (an empty one too: the first call creates the snapshot). */
  async addPage(deviceSns: readonly string[]): Promise<void> {
    const keys = [this.keys.snapshot(this.id), this.keys.snapshotMeta(this.id), this.keys.snapshotIndex(this.target.mqttInstanceId, this.target.caSn)];
    const head = [this.id, String(this.options.ttlSeconds), this.target.mqttInstanceId, this.target.caSn, this.source, String(this.options.keepPerCa)];
    let offset = 0;
    do {
      const slice = deviceSns.slice(offset, offset + SERIALS_PER_SCRIPT);
      await this.redis.revokerSnapshotPage(...keys, ...head, ...slice);
      offset += SERIALS_PER_SCRIPT;
    } while (offset < deviceSns.length);
    this.pages += 1;
  }

  /** Marks the listing complete; returns its completion time (ms on Redis' clock). */
  async complete(): Promise<number> {
    if (this.pages === 0) await this.addPage([]);
    return this.redis.revokerSnapshotComplete(this.keys.snapshotMeta(this.id));
  }
}

/** Reads and writes existence snapshots. */
export class ExistenceSnapshots {
  private readonly redis: SnapshotClient;
  readonly options: SnapshotOptions;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    options: Partial<SnapshotOptions> = {},
  ) {
    this.options = { ...SNAPSHOT_DEFAULTS, ...options };
    this.redis = redis as SnapshotClient;
    if (typeof this.redis.revokerSnapshotPage !== 'function') {
      redis.defineCommand('revokerSnapshotPage', { numberOfKeys: 3, lua: PAGE });
      redis.defineCommand('revokerSnapshotComplete', { numberOfKeys: 1, lua: COMPLETE });
    }
  }

  /** Starts a snapshot of one (instance, CA); `source` says who listed (shown in its facts). */
  begin(target: { mqttInstanceId: string; caSn: string }, source: string): SnapshotWriter {
    return new SnapshotWriter(this.redis, this.keys, randomUUID(), target, source, this.options);
  }

  /**
   * What the snapshots of the device's (instance, CA) say, given the revocation's first call
   * (ms on Redis' clock): the newest snapshot that knows, or null. See the module comment.
   */
  async lookup(device: { mqttInstanceId: string; caSn: string; deviceSn: string }, firstCallAt: number): Promise<SnapshotVerdict | null> {
    const ids = await this.redis.zrevrange(this.keys.snapshotIndex(device.mqttInstanceId, device.caSn), 0, this.options.keepPerCa - 1);
    if (ids.length === 0) return null;
    const pipeline = this.redis.pipeline();
    for (const id of ids) {
      pipeline.hget(this.keys.snapshot(id), device.deviceSn);
      pipeline.hget(this.keys.snapshotMeta(id), 'completedAt');
    }
    const replies = (await pipeline.exec()) ?? [];
    const before = firstCallAt - this.options.marginMs;
    for (const [index, id] of ids.entries()) {
      const seenAt = numberOf(replies[index * 2]);
      const completedAt = numberOf(replies[index * 2 + 1]);
      if (seenAt !== null) {
        if (seenAt <= before) return { kind: 'present', snapshotId: id, at: seenAt };
      } else if (completedAt !== null && completedAt <= before) {
        return { kind: 'absent', snapshotId: id, at: completedAt };
      }
    }
    return null;
  }

  /** The facts of the snapshots of one (instance, CA), newest first (for status and tests). */
  async list(mqttInstanceId: string, caSn: string): Promise<{ id: string; startedAt: number; completedAt: number | null; devices: number; source: string }[]> {
    const ids = await this.redis.zrevrange(this.keys.snapshotIndex(mqttInstanceId, caSn), 0, -1);
    const facts = await Promise.all(ids.map((id) => this.redis.hgetall(this.keys.snapshotMeta(id))));
    return ids.flatMap((id, index) => {
      const meta = facts[index];
      if (meta === undefined || meta.startedAt === undefined) return [];
      return [{ id, startedAt: Number(meta.startedAt), completedAt: meta.completedAt === undefined ? null : Number(meta.completedAt), devices: Number(meta.devices ?? 0), source: meta.source ?? '' }];
    });
  }
}

/** A pipeline reply as a number, or null (missing, or an error). */
function numberOf(reply: [Error | null, unknown] | undefined): number | null {
  if (reply === undefined || reply[0] !== null || reply[1] === null || reply[1] === undefined) return null;
  const value = Number(reply[1]);
  return Number.isFinite(value) ? value : null;
}
