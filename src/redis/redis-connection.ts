/**
 * ioredis connections configured the way BullMQ and long-running workers need them, to a single
 * Redis or to a Redis Cluster.
 *
 * Cluster mode: `REDIS_URL` names one seed node (`redis://[user:pass@]host:port`, or `rediss://`
 * for TLS) and `REDIS_CLUSTER=true` says it is one; the client discovers the other nodes from it.
 * Every key revoker and BullMQ write carries the prefix's hash tag (`{revoker}`), so
 * multi-key commands and Lua scripts all land in one slot and never fail with CROSSSLOT.
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';

/** A connection to a single Redis or to a Redis Cluster: the commands revoker uses exist on both. */
export type RedisClient = Redis | Cluster;

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
  /** The URL is a seed node of a Redis Cluster (REDIS_CLUSTER): return a `Cluster` client. */
  cluster: boolean;
}

// Reconnect quickly at first, then every 2 s: a restarted Redis is back in seconds.
const reconnectDelayMs = (times: number): number => Math.min(50 * times, 2_000);

/**
 * Creates an ioredis client for `url`: a `Redis`, or with `cluster` a `Cluster` seeded by the
 * URL's host and port. The URL may carry a password; it is never logged.
 */
export function createRedis(url: string, options: Partial<RedisConnectionOptions> = {}): RedisClient {
  const waitForReconnect = options.waitForReconnect ?? true;
  const common = {
    connectionName: options.connectionName ?? 'revoker',
    maxRetriesPerRequest: waitForReconnect ? null : 1,
  } satisfies RedisOptions;
  const client: RedisClient = options.cluster
    ? new Cluster([seedNode(url)], {
        enableReadyCheck: true,
        clusterRetryStrategy: reconnectDelayMs,
        // Node connections inherit these; BullMQ reads `maxRetriesPerRequest` from here.
        redisOptions: { ...common, ...credentials(url) },
      })
    : new Redis(url, { ...common, enableReadyCheck: true, retryStrategy: reconnectDelayMs });
  // While Redis is down every reconnect attempt emits 'error'; without a listener ioredis prints
  // each one. Commands still fail or wait as configured, which is where callers see the outage.
  client.on('error', options.onError ?? (() => undefined));
  return client;
}

/** Host and port of a `redis://` or `rediss://` URL (6379 when absent). */
function seedNode(url: string): ClusterNode {
  const parsed = new URL(url);
  // `hostname` keeps the brackets of an IPv6 literal; the socket wants the bare address.
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: parsed.port === '' ? 6379 : Number(parsed.port) };
}

/** User, password and TLS of a URL, which every node of the cluster shares. */
function credentials(url: string): RedisOptions {
  const parsed = new URL(url);
  const options: RedisOptions = {};
  if (parsed.username !== '') options.username = decodeURIComponent(parsed.username);
  if (parsed.password !== '') options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') options.tls = {};
  return options;
}

/**
 * A new connection with the same settings (a `Cluster` stays a cluster client): for whatever
 * needs a connection of its own, such as a subscriber.
 */
export function duplicateRedis(client: RedisClient): RedisClient {
  // Two branches because the two `duplicate` signatures differ; the union cannot call either.
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

/**
 * The connections a key-space walk (SCAN, KEYS) must visit: on a Cluster each master holds part
 * of the keys and a SCAN sent to the cluster client reaches one random node; else the client.
 */
export function scanNodes(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/** True when a Redis at `url` answers PING now (one short-lived connection, no retries). */
export async function redisAnswers(url: string, connectTimeoutMs = 2_000): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: connectTimeoutMs, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}
