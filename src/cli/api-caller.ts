/**
 * API calls made by CLI commands themselves (listing a CA, the CA calls, `verify`'s reads): every
 * call takes its slot from the shared rate budgets first, and transient failures are retried
 * with backoff up to MAX_ATTEMPTS. The one place the CLI builds its rate gate.
 */
import type { Logger } from 'pino';
import { describeApiFailure, type ApiFailure } from '../cloud/api-failure.js';
import type { CertificateApi } from '../cloud/certificate-api.js';
import { classifyFailure } from '../cloud/classify.js';
import type { ApiAction } from '../limiter/api-action.js';
import type { RateGate } from '../limiter/rate-gate.js';
import { openBudgetGate } from '../runtime/open-budget-gate.js';
import type { Context } from '../runtime/context.js';

/**
 * Answers that settle a call at once, whatever their HTTP status: the thing is not there, or
 * the instance is wrong. (`FindCaBySnError` is a 500 the classifier does not know yet, which
 * would otherwise be retried as an unknown server error.)
 */
const DEFINITE_CODES = new Set(['FindCaBySnError', 'FindDeviceBySnError', 'MqttInstanceNotFound', 'MqttOwnerCheckError', 'ParameterFieldCheckFailed']);

/** A call that failed for good, with what is known about it. */
export class ApiCallError extends Error {
  constructor(
    readonly what: string,
    readonly failure: ApiFailure,
    /** True when an earlier attempt of this call may have been applied (its answer was lost). */
    readonly earlierUncertain: boolean,
    readonly attempts: number,
  ) {
    super(`${what} failed: ${failure.code} ${failure.message}`);
    this.name = 'ApiCallError';
  }
}

/** Makes rate-limited calls with retries. */
export interface ApiCaller {
  /** Calls `fn` once a slot of `action`'s budgets is granted; retries transient failures. */
  call<T>(action: ApiAction, what: string, fn: () => Promise<T>): Promise<T>;
  /** The rate this process's calls can get (for estimates). */
  ratePerSecond(): number;
  close(): Promise<void>;
}

/** How a caller retries a transient failure (MAX_ATTEMPTS, RETRY_BASE_MS, RETRY_MAX_MS by default). */
export interface RetryPolicy {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

/**
 * Retries of a call that is evidence only and holds back a batch's first call (an existence
 * snapshot): a short look, not the minute the full policy can spend on an unreachable API.
 */
export const EVIDENCE_RETRY: RetryPolicy = { maxAttempts: 3, retryBaseMs: 500, retryMaxMs: 2_000 };

/** Opens the shared rate gate for `api`'s account and returns a caller over it (`retry`: other than the configured policy). */
export async function openApiCaller(context: Context, api: Pick<CertificateApi, 'identity'>, log: Logger, retry?: RetryPolicy): Promise<ApiCaller> {
  const { gate } = await openBudgetGate(context, api, log);
  return apiCallerOver(gate, retry ?? context.config);
}

/** A caller over an existing gate (tests give their own). */
export function apiCallerOver(gate: RateGate, config: RetryPolicy): ApiCaller {
  return {
    async call<T>(action: ApiAction, what: string, fn: () => Promise<T>): Promise<T> {
      let uncertain = false;
      for (let attempt = 1; ; attempt += 1) {
        // Confirmed right before the call: the permit is used now (and its send delay measured).
        await (await gate.acquire(action, 0)).confirm();
        try {
          return await fn();
        } catch (error) {
          const failure = describeApiFailure(error);
          const verdict = classifyFailure(failure);
          const definite = failure.kind === 'api' && DEFINITE_CODES.has(failure.code);
          const transient = !definite && (verdict.action === 'retry' || verdict.action === 'throttle');
          if (!transient || attempt >= config.maxAttempts) throw new ApiCallError(what, failure, uncertain, attempt);
          uncertain ||= verdict.uncertain;
          // Full jitter, as the worker's backoff.
          await new Promise((resolve) => setTimeout(resolve, Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** (attempt - 1)) * Math.random()));
        }
      }
    },
    ratePerSecond: () => gate.ratePerSecond(),
    close: () => gate.close(),
  };
}
