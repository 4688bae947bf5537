/**
 * Opens the rate budgets for a process that calls the API (a worker, `enqueue-ca`, `ca`,
 * `verify`): works out which account the credentials belong to, then builds the `BudgetGate`.
 */
import type { Logger } from 'pino';
import type { CertificateApi } from '../cloud/certificate-api.js';
import { resolveRateLimitKey } from '../config/config.js';
import { BudgetGate } from '../limiter/budget-gate.js';
import type { Context } from './context.js';

/** The gate and the account key it budgets for. */
export interface OpenedBudgetGate {
  gate: BudgetGate;
  /** Key of the account budgets, account pause and adaptive rate. */
  rateKey: string;
}

/**
 * Builds the gate. Throws `ConfigError` (ALIBABA_CLOUD_ACCOUNT_ID) for temporary credentials
 * without an account id.
 */
export async function openBudgetGate(context: Context, api: Pick<CertificateApi, 'identity'>, log: Logger): Promise<OpenedBudgetGate> {
  const { config } = context;
  const rateKey = config.rateLimitKey ?? resolveRateLimitKey(config, await api.identity());
  const gate = new BudgetGate(
    context.redis,
    context.keys,
    {
      accountKey: rateKey,
      accountRatePerSecond: config.ratePerSecond,
      egressId: config.egressId,
      egressRatePerSecond: config.egressRatePerSecond,
      // Requests to this host are the calls whose send delays the jitter allowance follows.
      apiHost: apiHostOf(config.apiEndpoint),
    },
    log,
  );
  return { gate, rateKey };
}

/** The host name of a host[:port] endpoint (MQTT_API_ENDPOINT), as Node's `request.host` has it. */
export function apiHostOf(endpoint: string): string {
  return endpoint.replace(/:\d+$/, '');
}
