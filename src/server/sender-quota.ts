/**
 * Per-sender quotas of devices per hour (WEBHOOK_SENDERS_FILE `devicesPerHour`): a token bucket
 * in Redis on Redis' clock, shared by every server. Every entry of a delivery's `deviceSns`
 * counts, refused ones included: they cost storage too (a delivery of 10,000 invalid serials
 * stored megabytes in a Redis that never evicts).
 */
import type { Keys } from '../queue/keys.js';
import { loadLua } from '../redis/lua-script.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';

const TAKE = loadLua(import.meta.url, 'lua/take-quota.lua');
const REFUND = loadLua(import.meta.url, 'lua/refund-quota.lua');

type QuotaClient = Redis & {
  revokerTakeQuota(bucket: string, quota: string, devices: string): Promise<number>;
  revokerRefundQuota(bucket: string, quota: string, devices: string): Promise<number>;
};

/** The outcome of `take`. */
export type QuotaTake = { ok: true } | { ok: false; retryAfterSeconds: number };

/** Sender quotas. */
export class SenderQuota {
  private readonly redis: QuotaClient;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    this.redis = redis as QuotaClient;
    if (typeof this.redis.revokerTakeQuota !== 'function') {
      redis.defineCommand('revokerTakeQuota', { numberOfKeys: 1, lua: TAKE });
      redis.defineCommand('revokerRefundQuota', { numberOfKeys: 1, lua: REFUND });
    }
  }

  /** Takes `devices` from the sender's hourly quota, or says when there will be enough. */
  async take(sender: string, devicesPerHour: number, devices: number): Promise<QuotaTake> {
    const waitMs = await this.redis.revokerTakeQuota(this.keys.senderQuota(sender), String(devicesPerHour), String(devices));
    return waitMs <= 0 ? { ok: true } : { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Gives back what `take` took, for a delivery refused afterwards (queue full). */
  async refund(sender: string, devicesPerHour: number, devices: number): Promise<void> {
    await this.redis.revokerRefundQuota(this.keys.senderQuota(sender), String(devicesPerHour), String(devices));
  }
}
