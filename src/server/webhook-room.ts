/**
 * Room on the revocation queue for webhook deliveries: a delivery reserves its devices against
 * the high-water mark in the same step that counts what waits, so concurrent deliveries cannot
 * each see room and together overshoot the mark (they used to: mark 100, 12 concurrent deliveries
 * of 1,000 queued 5,000 jobs). The reservation is released once the jobs are on the queue, where
 * they count by themselves; a process that dies first leaves a reservation that expires.
 */
import { randomBytes } from 'node:crypto';
import type { Keys } from '../queue/keys.js';
import { loadLua } from '../redis/lua-script.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';

const RESERVE = loadLua(import.meta.url, 'lua/reserve-room.lua');

type RoomClient = Redis & {
  revokerReserveRoom(wait: string, prioritized: string, room: string, mark: string, devices: string, token: string, ttlMs: string): Promise<number>;
};

/** The outcome of `reserve`. */
export type RoomReservation = { ok: true; release: () => Promise<void> } | { ok: false; used: number };

/** Reservations of queue room under the high-water mark. */
export class WebhookRoom {
  private readonly redis: RoomClient;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    /** QUEUE_HIGH_WATER_JOBS. */
    private readonly highWaterJobs: number,
    /** How long a reservation outlives a process that died holding it. */
    private readonly holdMs: number,
  ) {
    this.redis = redis as RoomClient;
    if (typeof this.redis.revokerReserveRoom !== 'function') redis.defineCommand('revokerReserveRoom', { numberOfKeys: 3, lua: RESERVE });
  }

  /** Reserves room for `devices` jobs, or says how full the queue is. */
  async reserve(devices: number): Promise<RoomReservation> {
    const token = randomBytes(8).toString('hex');
    const used = await this.redis.revokerReserveRoom(this.keys.waitList(), this.keys.prioritized(), this.keys.webhookRoom(), String(this.highWaterJobs), String(devices), token, String(this.holdMs));
    if (used >= 0) return { ok: false, used };
    const member = `${token}:${devices}`;
    return {
      ok: true,
      release: async () => {
        await this.redis.zrem(this.keys.webhookRoom(), member);
      },
    };
  }
}
