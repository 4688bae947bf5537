/**
 * The process configuration: the environment resolved once, at start, into a fully typed
 * `Config` with every default applied. A bad value stops the process with a `ConfigError` that
 * names the variable and the value, except for secrets, whose values are never echoed.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { normaliseOrigin } from '../events/callback-policy.js';

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
  /** RATE_LIMIT_PER_SECOND: each API operation's account budget (the API throttles above 500). */
  ratePerSecond: number;
  /** ALIBABA_CLOUD_ACCOUNT_ID: the Alibaba Cloud account the budgets belong to, or null. */
  accountId: string | null;
  /**
   * RATE_LIMIT_KEY: which processes share the account budgets. Default: the account id, else
   * derived from a long-lived AccessKey id (hashed, so the id does not appear in Redis keys).
   * `null` when neither is known yet: the worker asks the credential chain at start, and refuses
   * credentials whose id changes per session (`resolveRateLimitKey`).
   */
  rateLimitKey: string | null;
  /** EGRESS_ID: processes with the same id share one source IP, so one egress budget. */
  egressId: string;
  /** EGRESS_RATE_LIMIT_PER_SECOND: budget of all calls from one egress (the API blocks an IP above 300). */
  egressRatePerSecond: number;
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
  /** ADMIN_TOKEN: bearer token of the admin API (role `operate`, at least 32 characters); null when unset. */
  adminToken: string | null;
  /** ADMIN_TOKENS_FILE: JSON file of named admin tokens (SHA-256 hashes) with roles; null when unset. Read by `revoker serve`. */
  adminTokensFile: string | null;
  /** WEBHOOK_SECRETS: Standard Webhooks secrets (`whsec_…`), several during a rotation: the one-sender shorthand. */
  webhookSecrets: string[];
  /** WEBHOOK_SENDERS_FILE: JSON file of named webhook senders with their secrets, scopes and quotas; null when unset. */
  webhookSendersFile: string | null;
  /**
   * TRUST_PROXY: which proxies' X-Forwarded-For/-Proto the server believes (Fastify's `trustProxy`):
   * false (default), true (any: only behind a proxy that strips them), a hop count, or addresses/CIDRs.
   */
  trustProxy: boolean | number | string[];
  /** EVENTS_ALLOWED_ORIGINS: origins (`https://host[:port]`) completion events may be sent to, besides EVENTS_URL's. */
  eventsAllowedOrigins: string[];
  /** EVENTS_ALLOW_PRIVATE: events may go to loopback, private, link-local, CGNAT… addresses (default false). */
  eventsAllowPrivate: boolean;
  /** WORKER_METRICS_HOST: interface the worker metrics listen on (default 127.0.0.1). */
  workerMetricsHost: string;
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
  /** REPORT_SIGNING_KEY_FILE: Ed25519 private key (PEM) that `revoker report --sign` signs with; null when unset. */
  reportSigningKeyFile: string | null;
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
  egressId: 'default',
  egressRatePerSecond: 280,
  workerConcurrency: 64,
  maxAttempts: 8,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
  highWaterJobs: 50_000,
  jobLockMs: 30_000,
  retentionDays: 30,
  logLevel: 'info',
} as const;

/** The API's documented per-account, per-operation cap: configuring more would only buy throttling. */
export const API_CAP_PER_SECOND = 500;

/** The API's documented per-source-IP limit: above it the IP is blocked, not throttled. */
export const API_IP_LIMIT_PER_SECOND = 300;

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

/** Shortest ADMIN_TOKEN accepted: 32 random characters are beyond guessing, even unthrottled. */
export const MIN_ADMIN_TOKEN_CHARS = 32;

/** TRUST_PROXY: `false`, `true`, a hop count, or comma-separated addresses / CIDR ranges. */
function trustProxy(env: Env): boolean | number | string[] {
  const raw = text(env, 'TRUST_PROXY');
  if (raw === undefined || raw.toLowerCase() === 'false') return false;
  if (raw.toLowerCase() === 'true') return true;
  if (/^\d{1,2}$/.test(raw)) return Number(raw);
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.split('/');
    const version = isIP(address);
    const maxBits = version === 6 ? 128 : 32;
    const badBits = bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > maxBits);
    if (version === 0 || badBits || extra !== undefined) {
      throw new ConfigError('TRUST_PROXY', `TRUST_PROXY must be true, false, a hop count or comma-separated IP addresses/CIDR ranges, got '${entry.slice(0, 100)}'`);
    }
  }
  return entries;
}

/** Short, stable limiter key for an AccessKey id: the id itself never lands in Redis key names. */
export function rateLimitKeyFor(accessKeyId: string): string {
  return `ak-${createHash('sha256').update(accessKeyId).digest('hex').slice(0, 16)}`;
}

/** Limiter key of an account id. */
export function rateLimitKeyForAccount(accountId: string): string {
  return `acct-${accountId}`;
}

/**
 * The account budgets' key once the credentials are known (DESIGN.md §3): the configured key or
 * account id, else a long-lived AccessKey's id. Credentials whose id changes per session (an STS
 * token, a RAM role, OIDC) would give every process and every session a budget of its own, N
 * times the account's cap: without an account id they are refused.
 */
export function resolveRateLimitKey(config: Pick<Config, 'rateLimitKey'>, credential: { accessKeyId: string; securityToken: string | null }): string {
  if (config.rateLimitKey !== null) return config.rateLimitKey;
  if (credential.securityToken !== null && credential.securityToken !== '') {
    throw new ConfigError(
      'ALIBABA_CLOUD_ACCOUNT_ID',
      'ALIBABA_CLOUD_ACCOUNT_ID must be set with temporary credentials (STS token, RAM role, OIDC): their AccessKey id changes per session, so it cannot tell which processes share the account rate budgets',
    );
  }
  return rateLimitKeyFor(credential.accessKeyId);
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
  const accountId = text(env, 'ALIBABA_CLOUD_ACCOUNT_ID') ?? null;
  if (accountId !== null && !/^[A-Za-z0-9_.-]{1,64}$/.test(accountId)) {
    throw new ConfigError('ALIBABA_CLOUD_ACCOUNT_ID', `ALIBABA_CLOUD_ACCOUNT_ID must be 1-64 letters, digits, '.', '_' or '-', got '${accountId.slice(0, 80)}'`);
  }
  if (explicitKey === undefined && accountId === null && credentials?.securityToken != null) {
    throw new ConfigError(
      'ALIBABA_CLOUD_ACCOUNT_ID',
      'ALIBABA_CLOUD_ACCOUNT_ID must be set with an STS token (ALIBABA_CLOUD_SECURITY_TOKEN): its AccessKey id changes per session, so it cannot tell which processes share the account rate budgets',
    );
  }
  const rateLimitKey =
    explicitKey ?? (accountId !== null ? rateLimitKeyForAccount(accountId) : credentials && credentials.securityToken === null ? rateLimitKeyFor(credentials.accessKeyId) : null);
  const egressId = text(env, 'EGRESS_ID') ?? CONFIG_DEFAULTS.egressId;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(egressId)) {
    throw new ConfigError('EGRESS_ID', `EGRESS_ID must be 1-64 letters, digits, '.', '_' or '-', got '${egressId.slice(0, 80)}'`);
  }

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
  if (adminToken !== null && adminToken.length < MIN_ADMIN_TOKEN_CHARS) {
    // Never echo a token, not even a short one.
    throw new ConfigError('ADMIN_TOKEN', `ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_CHARS} characters (e.g. openssl rand -base64 32)`);
  }
  const eventsAllowedOrigins = (text(env, 'EVENTS_ALLOWED_ORIGINS') ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const origin = normaliseOrigin(entry);
      if (origin === null) {
        throw new ConfigError('EVENTS_ALLOWED_ORIGINS', `EVENTS_ALLOWED_ORIGINS entries must be origins like https://hooks.example.com[:port] (no path), got '${entry.slice(0, 200)}'`);
      }
      return origin;
    });
  const workerMetricsHost = text(env, 'WORKER_METRICS_HOST') ?? '127.0.0.1';
  if (isIP(workerMetricsHost) === 0 && !/^[A-Za-z0-9.-]{1,253}$/.test(workerMetricsHost)) {
    throw new ConfigError('WORKER_METRICS_HOST', `WORKER_METRICS_HOST must be an IP address or a host name, got '${workerMetricsHost.slice(0, 200)}'`);
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
    accountId,
    rateLimitKey,
    egressId,
    egressRatePerSecond: integer(env, 'EGRESS_RATE_LIMIT_PER_SECOND', CONFIG_DEFAULTS.egressRatePerSecond, 1, API_IP_LIMIT_PER_SECOND),
    workerConcurrency: integer(env, 'WORKER_CONCURRENCY', CONFIG_DEFAULTS.workerConcurrency, 1, 1_000),
    maxAttempts: integer(env, 'MAX_ATTEMPTS', CONFIG_DEFAULTS.maxAttempts, 1, 100),
    retryBaseMs,
    retryMaxMs,
    jobLockMs: integer(env, 'JOB_LOCK_MS', CONFIG_DEFAULTS.jobLockMs, 1_000, 600_000),
    highWaterJobs: integer(env, 'QUEUE_HIGH_WATER_JOBS', CONFIG_DEFAULTS.highWaterJobs, 100, 10_000_000),
    retentionDays: integer(env, 'RESULT_RETENTION_DAYS', CONFIG_DEFAULTS.retentionDays, 1, 3_650),
    adminToken,
    adminTokensFile: text(env, 'ADMIN_TOKENS_FILE') ?? null,
    webhookSecrets,
    webhookSendersFile: text(env, 'WEBHOOK_SENDERS_FILE') ?? null,
    trustProxy: trustProxy(env),
    eventsAllowedOrigins,
    eventsAllowPrivate: oneOf(env, 'EVENTS_ALLOW_PRIVATE', 'false', ['true', 'false'] as const) === 'true',
    workerMetricsHost,
    breakerMinOutcomes: integer(env, 'BREAKER_NOT_FOUND_MIN_OUTCOMES', 100, 0, 10_000_000),
    breakerNotFoundPercent: integer(env, 'BREAKER_NOT_FOUND_PERCENT', 50, 1, 100),
    eventsUrl,
    eventsSecret,
    eventsRetryBaseMs: integer(env, 'EVENTS_RETRY_BASE_MS', 5_000, 10, 3_600_000),
    workerMetricsPort: text(env, 'WORKER_METRICS_PORT') === undefined ? null : integer(env, 'WORKER_METRICS_PORT', 0, 1, 65_535),
    // Only the path: the key is read (and checked) by the command that signs.
    reportSigningKeyFile: text(env, 'REPORT_SIGNING_KEY_FILE') ?? null,
    logLevel: oneOf(env, 'LOG_LEVEL', CONFIG_DEFAULTS.logLevel, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  };
}
