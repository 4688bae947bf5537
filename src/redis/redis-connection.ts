/**
 * ioredis connections configured the way BullMQ and long-running workers need them.
 */
import { Redis } from 'ioredis';

/** Options of `createRedis`. */
export interface RedisConnectionOptions {
  /** Connection name shown by CLIENT LIST, to tell processes apart while debugging. */
  connectionName: string;
  /**
   * Commands wait for a reconnect instead of failing after a few retries: required by BullMQ
   * workers, and what a worker riding out a Redis restart wants.
   */
  waitForReconnect: boolean;
  /** Called with connection errors (reconnects are automatic). */
  onError: (error: Error) => void;
}

/** Creates an ioredis client for `url`. The URL may carry a password; it is never logged. */
export function createRedis(url: string, options: Partial<RedisConnectionOptions> = {}): Redis {
  const waitForReconnect = options.waitForReconnect ?? true;
  const client = new Redis(url, {
    connectionName: options.connectionName ?? 'revoker',
    maxRetriesPerRequest: waitForReconnect ? null : 1,
    enableReadyCheck: true,
    // Reconnect quickly at first, then every 2 s: a restarted Redis is back in seconds.
    retryStrategy: (times: number) => Math.min(50 * times, 2_000),
  });
  // While Redis is down every reconnect attempt emits 'error'; without a listener ioredis prints
  // each one. Commands still fail or wait as configured, which is where callers see the outage.
  client.on('error', options.onError ?? (() => undefined));
  return client;
}
