import { FAILED_AUTH_DEFAULTS, type FailedAuthLimiterOptions } from './failed-auth-limiter.js';

/**
 * Options of the HTTP server (`revoker serve`): limits of the webhook, how long delivery answers
 * are remembered, the dashboard session. Defaults in one object; `resolveServerOptions` fills
 * the gaps and refuses values that cannot work.
 */

/** Tunables of `buildServer`. */
export interface ServerOptions {
  /** Largest webhook body read, in bytes; more is answered 413 `body_too_large` unread. */
  maxBodyBytes: number;
  /** Most entries one webhook delivery may carry in `deviceSns`; more is answered 413 `too_many_devices`. */
  maxDevicesPerRequest: number;
  /** How long the answer to a `webhook-id` is remembered (a repeat gets it back, enqueueing nothing). */
  deliveryTtlSeconds: number;
  /**
   * How long the "processing" marker of a delivery holds before it may be taken again. It only
   * outlives its request when the process dies mid-delivery; then the sender's retry after this
   * long is processed instead of being refused for a whole `deliveryTtlSeconds`.
   */
  processingTtlSeconds: number;
  /** Largest admin API body (`{reason}`, `{batchId}`), in bytes. */
  maxAdminBodyBytes: number;
  /** `/readyz` answers 503 when Redis does not answer a PING within this long. */
  readyTimeoutMs: number;
  /** Lifetime of the dashboard cookie set by `/admin/login`. */
  dashboardSessionSeconds: number;
  /**
   * The dashboard shows the queues without buttons that change them. Removing, retrying or
   * cleaning jobs behind revoker's back would leave result records pending forever; operators
   * use the admin API (pause, cancel, redrive) instead.
   */
  dashboardReadOnly: boolean;
  /** Collect prom-client's process metrics (CPU, memory, event loop lag) in the registry. */
  processMetrics: boolean;
  /** Failed admin authentications allowed per client address and window before 429. */
  failedAuth: FailedAuthLimiterOptions;
}

/** Defaults of `ServerOptions`. */
export const SERVER_DEFAULTS: ServerOptions = {
  maxBodyBytes: 1024 * 1024,
  // 10,000 serials of at most 128 bytes stay under the 1 MiB body limit with the JSON around them.
  maxDevicesPerRequest: 10_000,
  // A day covers every retry schedule of Standard Webhooks senders (the longest is about 10 hours).
  deliveryTtlSeconds: 86_400,
  processingTtlSeconds: 300,
  maxAdminBodyBytes: 64 * 1024,
  readyTimeoutMs: 1_000,
  dashboardSessionSeconds: 12 * 3_600,
  dashboardReadOnly: true,
  processMetrics: true,
  failedAuth: FAILED_AUTH_DEFAULTS,
};

function positiveInteger(name: keyof ServerOptions, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`server option ${name} must be a positive integer, got ${String(value)}`);
  }
}

/** Applies the defaults and checks the numbers. */
export function resolveServerOptions(options: Partial<ServerOptions> = {}): ServerOptions {
  const resolved: ServerOptions = { ...SERVER_DEFAULTS, ...options };
  for (const name of ['maxBodyBytes', 'maxDevicesPerRequest', 'deliveryTtlSeconds', 'processingTtlSeconds', 'maxAdminBodyBytes', 'readyTimeoutMs', 'dashboardSessionSeconds'] as const) {
    positiveInteger(name, resolved[name]);
  }
  return resolved;
}
