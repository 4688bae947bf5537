/**
 * The process configuration: the environment resolved once, at start, into a fully typed
 * `Config` with every default applied. A bad value stops the process with a `ConfigError` that
 * names the variable and the value, except for secrets, whose values are never echoed.
 */
import { createHash } from 'node:crypto';

/** What revoker reads from the environment, after validation and defaults. */
export interface Config {
  /** REDIS_URL: the Redis (or one seed node of a cluster). */
  redisUrl: string;
  /**
   * REDIS_CLUSTER (`true`/`false`, default false): REDIS_URL is a seed node of a Redis Cluster,
   * from which the client discovers the others. Keys share the prefix's hash tag, so one slot.
   */
  redisCluster: boolean;
  /** REVOKER_PREFIX: prefix of every key; carries a Redis Cluster hash tag so all keys share a slot. */
  prefix: string;
  /** MQTT_REGION: region id used to build the default endpoint. */
  region: string;
  /** MQTT_API_ENDPOINT: host[:port] of the onsmqtt OpenAPI endpoint. */
  apiEndpoint: string;
  /** MQTT_API_PROTOCOL: `https`, or `http` for the local emulator. */
  apiProtocol: 'http' | 'https';
  /** MQTT_API_TIMEOUT_MS: read timeout of one API call. */
  apiTimeoutMs: number;
  /** Explicit AccessKey credentials when ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET are set, else null (credential chain). */
  credentials: ExplicitCredentials | null;
  /** RATE_LIMIT_PER_SECOND: the account-wide cap revoker holds itself to (the API allows 500). */
  ratePerSecond: number;
  /**
   * RATE_LIMIT_KEY: which limiter processes share. Default: derived from the AccessKey id
   * (hashed, so the id does not appear in Redis keys). `null` when no key id is known yet: the
   * worker derives it from the credential chain at start.
   */
  rateLimitKey: string | null;
  /** WORKER_CONCURRENCY: in-flight API calls per worker process. */
  workerConcurrency: number;
  /** MAX_ATTEMPTS: attempts per device (throttled calls excluded) before dead-lettering. */
  maxAttempts: number;
  /** RETRY_BASE_MS: first backoff ceiling; the n-th retry waits a random time in [0, min(max, base·2ⁿ⁻¹)]. */
  retryBaseMs: number;
  /** RETRY_MAX_MS: largest backoff. */
  retryMaxMs: number;
  /**
   * JOB_LOCK_MS: BullMQ lock duration. A job whose worker died is taken over after about this
   * long; a stopping worker has this long to finish its in-flight calls.
   */
  jobLockMs: number;
  /** QUEUE_HIGH_WATER_JOBS: the producer pauses while more jobs than this are waiting. */
  highWaterJobs: number;
  /** RESULT_RETENTION_DAYS: how long batches and their result records are kept. */
  retentionDays: number;
  /** ADMIN_TOKEN: bearer token of the admin API; null when unset (the server refuses to start). */
  adminToken: string | null;
  /** WEBHOOK_SECRETS: Standard Webhooks secrets (`whsec_…`), several during a rotation. */
  webhookSecrets: string[];
  /** BREAKER_NOT_FOUND_MIN_OUTCOMES: outcomes before the not_found breaker may pause a batch (0 = off). */
  breakerMinOutcomes: number;
  /** BREAKER_NOT_FOUND_PERCENT: the breaker trips above this share of not_found outcomes. */
  breakerNotFoundPercent: number;
  /** EVENTS_URL: where completion events go for batches without their own callback URL. */
  eventsUrl: string | null;
  /** EVENTS_SECRET: Standard Webhooks secret (`whsec_…`) that signs completion events. */
  eventsSecret: string | null;
  /** EVENTS_RETRY_BASE_MS: first retry delay of an undelivered event (doubles, 12 attempts). */
  eventsRetryBaseMs: number;
  /** WORKER_METRICS_PORT: where a worker serves its Prometheus metrics; null = not served. */
  workerMetricsPort: number | null;
  /** LOG_LEVEL: pino level. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** AccessKey credentials given explicitly in the environment. */
export interface ExplicitCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken: string | null;
}

/** A configuration value that cannot be used. The message names the variable. */
export class ConfigError extends Error {
  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The documented defaults (DESIGN.md §3), in one place. */
export const CONFIG_DEFAULTS = {
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: '{revoker}',
  region: 'cn-hangzhou',
  apiProtocol: 'https',
  apiTimeoutMs: 10_000,
  ratePerSecond: 480,
  workerConcurrency: 64,
  maxAttempts: 8,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
  highWaterJobs: 50_000,
  jobLockMs: 30_000,
  retentionDays: 30,
  logLevel: 'info',
} as const;

/** The API's documented per-account cap: configuring more would only buy throttling. */
export const API_CAP_PER_SECOND = 500;

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === '' ? undefined : trimmed;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(name, `${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  }
  return Number(raw);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const lower = raw.toLowerCase();
  const match = allowed.find((value) => value === lower);
  if (match === undefined) {
    throw new ConfigError(name, `${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
  }
  return match;
}

/** Short, stable limiter key for an AccessKey id: the id itself never lands in Redis key names. */
export function rateLimitKeyFor(accessKeyId: string): string {
  return `ak-${createHash('sha256').update(accessKeyId).digest('hex').slice(0, 16)}`;
}

/**
 * Resolves the environment into a `Config`, applying the defaults of DESIGN.md §3.
 * Throws `ConfigError` naming the first bad variable.
 */
export function resolveConfig(env: Env = process.env): Config {
  const redisUrl = text(env, 'REDIS_URL') ?? CONFIG_DEFAULTS.redisUrl;
  if (!/^rediss?:\/\//.test(redisUrl)) {
    // The URL may hold a password: name the variable, never echo the value.
    throw new ConfigError('REDIS_URL', 'REDIS_URL must start with redis:// or rediss://');
  }
  const prefix = text(env, 'REVOKER_PREFIX') ?? CONFIG_DEFAULTS.prefix;
  if (/\s|:/.test(prefix)) {
    throw new ConfigError('REVOKER_PREFIX', `REVOKER_PREFIX must not contain spaces or ':', got '${prefix}'`);
  }
  const redisCluster = oneOf(env, 'REDIS_CLUSTER', 'false', ['true', 'false'] as const) === 'true';
  if (redisCluster && !/^[^{]*\{[^}]+\}/.test(prefix)) {
    // Without a hash tag BullMQ's and revoker's multi-key scripts would span slots (CROSSSLOT).
    throw new ConfigError('REVOKER_PREFIX', `REVOKER_PREFIX must contain a hash tag such as {revoker} when REDIS_CLUSTER is true, got '${prefix}'`);
  }
  const region = text(env, 'MQTT_REGION') ?? CONFIG_DEFAULTS.region;
  if (!/^[a-z]{2}(-[a-z0-9]+)+$/.test(region)) {
    throw new ConfigError('MQTT_REGION', `MQTT_REGION must look like cn-hangzhou, got '${region}'`);
  }
  const apiEndpoint = text(env, 'MQTT_API_ENDPOINT') ?? `onsmqtt.${region}.aliyuncs.com`;
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(apiEndpoint)) {
    throw new ConfigError('MQTT_API_ENDPOINT', `MQTT_API_ENDPOINT must be host[:port] without a scheme, got '${apiEndpoint}'`);
  }

  const accessKeyId = text(env, 'ALIBABA_CLOUD_ACCESS_KEY_ID');
  const accessKeySecret = text(env, 'ALIBABA_CLOUD_ACCESS_KEY_SECRET');
  if ((accessKeyId === undefined) !== (accessKeySecret === undefined)) {
    const missing = accessKeyId === undefined ? 'ALIBABA_CLOUD_ACCESS_KEY_ID' : 'ALIBABA_CLOUD_ACCESS_KEY_SECRET';
    throw new ConfigError(missing, `${missing} must be set together with its pair`);
  }
  const credentials =
    accessKeyId !== undefined && accessKeySecret !== undefined
      ? { accessKeyId, accessKeySecret, securityToken: text(env, 'ALIBABA_CLOUD_SECURITY_TOKEN') ?? null }
      : null;

  const ratePerSecond = integer(env, 'RATE_LIMIT_PER_SECOND', CONFIG_DEFAULTS.ratePerSecond, 1, API_CAP_PER_SECOND);
  const explicitKey = text(env, 'RATE_LIMIT_KEY');
  if (explicitKey !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(explicitKey)) {
    throw new ConfigError('RATE_LIMIT_KEY', `RATE_LIMIT_KEY must be 1-64 letters, digits, '.', '_' or '-', got '${explicitKey.slice(0, 80)}'`);
  }
  const rateLimitKey = explicitKey ?? (credentials ? rateLimitKeyFor(credentials.accessKeyId) : null);

  const retryBaseMs = integer(env, 'RETRY_BASE_MS', CONFIG_DEFAULTS.retryBaseMs, 1, 600_000);
  const retryMaxMs = integer(env, 'RETRY_MAX_MS', CONFIG_DEFAULTS.retryMaxMs, 1, 3_600_000);
  if (retryMaxMs < retryBaseMs) {
    throw new ConfigError('RETRY_MAX_MS', `RETRY_MAX_MS must be at least RETRY_BASE_MS (${retryBaseMs}), got '${retryMaxMs}'`);
  }

  const webhookSecrets = (text(env, 'WEBHOOK_SECRETS') ?? '')
    .split(',')
    .map((secret) => secret.trim())
    .filter((secret) => secret !== '');
  webhookSecrets.forEach((secret, index) => {
    if (!/^whsec_[A-Za-z0-9+/=]+$/.test(secret)) {
      // Never echo a secret, not even a wrong one.
      throw new ConfigError('WEBHOOK_SECRETS', `WEBHOOK_SECRETS entry ${index + 1} must be a 'whsec_' followed by base64`);
    }
  });

  const eventsUrl = text(env, 'EVENTS_URL') ?? null;
  if (eventsUrl !== null && !/^https?:\/\/[^\s]+$/.test(eventsUrl)) {
    throw new ConfigError('EVENTS_URL', `EVENTS_URL must be an http(s) URL, got '${eventsUrl.slice(0, 200)}'`);
  }
  const eventsSecret = text(env, 'EVENTS_SECRET') ?? null;
  if (eventsSecret !== null && !/^whsec_[A-Za-z0-9+/=]+$/.test(eventsSecret)) {
    // Never echo a secret, not even a wrong one.
    throw new ConfigError('EVENTS_SECRET', "EVENTS_SECRET must be a 'whsec_' followed by base64");
  }

  const adminToken = text(env, 'ADMIN_TOKEN') ?? null;
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', 'ADMIN_TOKEN must be at least 16 characters');
  }

  return {
    redisUrl,
    redisCluster,
    prefix,
    region,
    apiEndpoint,
    apiProtocol: oneOf(env, 'MQTT_API_PROTOCOL', CONFIG_DEFAULTS.apiProtocol, ['http', 'https'] as const),
    apiTimeoutMs: integer(env, 'MQTT_API_TIMEOUT_MS', CONFIG_DEFAULTS.apiTimeoutMs, 100, 120_000),
    credentials,
    ratePerSecond,
    rateLimitKey,
    workerConcurrency: integer(env, 'WORKER_CONCURRENCY', CONFIG_DEFAULTS.workerConcurrency, 1, 1_000),
    maxAttempts: integer(env, 'MAX_ATTEMPTS', CONFIG_DEFAULTS.maxAttempts, 1, 100),
    retryBaseMs,
    retryMaxMs,
    jobLockMs: integer(env, 'JOB_LOCK_MS', CONFIG_DEFAULTS.jobLockMs, 1_000, 600_000),
    highWaterJobs: integer(env, 'QUEUE_HIGH_WATER_JOBS', CONFIG_DEFAULTS.highWaterJobs, 100, 10_000_000),
    retentionDays: integer(env, 'RESULT_RETENTION_DAYS', CONFIG_DEFAULTS.retentionDays, 1, 3_650),
    adminToken,
    webhookSecrets,
    breakerMinOutcomes: integer(env, 'BREAKER_NOT_FOUND_MIN_OUTCOMES', 100, 0, 10_000_000),
    breakerNotFoundPercent: integer(env, 'BREAKER_NOT_FOUND_PERCENT', 50, 1, 100),
    eventsUrl,
    eventsSecret,
    eventsRetryBaseMs: integer(env, 'EVENTS_RETRY_BASE_MS', 5_000, 10, 3_600_000),
    workerMetricsPort: text(env, 'WORKER_METRICS_PORT') === undefined ? null : integer(env, 'WORKER_METRICS_PORT', 0, 1, 65_535),
    logLevel: oneOf(env, 'LOG_LEVEL', CONFIG_DEFAULTS.logLevel, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  };
}
