/**
 * Prometheus metrics: queue depths read from Redis at scrape time (so any number of servers
 * report the same truth, with nothing to keep in sync), and the counters a worker updates.
 * Everything lives in a `Registry` passed in, never prom-client's global one, so tests and
 * several servers in one process do not collide.
 */
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { readBudgetRates, type BudgetRate } from '../limiter/budget-status.js';
import type { Context } from '../runtime/context.js';

/** Job states of the revocation queue reported as `revoker_queue_jobs{state}`. */
export const QUEUE_DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized'] as const;

/** Adds the scrape-time gauges of a context's queues to `registry`. */
export function registerQueueMetrics(registry: Registry, context: Pick<Context, 'queue' | 'deadLetters' | 'redis' | 'keys'>): void {
  const queueJobs = new Gauge({
    name: 'revoker_queue_jobs',
    help: 'Jobs on the revocation queue by state (delayed includes retries in backoff and jobs of paused batches).',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await context.queue.getJobCounts(...QUEUE_DEPTH_STATES);
      for (const state of QUEUE_DEPTH_STATES) queueJobs.set({ state }, counts[state] ?? 0);
    },
  });
  // The rate budgets (docs/DESIGN.md §2), read from Redis at scrape time like the queue depths.
  const budgetLabels = ['budget', 'kind', 'label'] as const;
  const budgetGauge = (name: string, help: string, value: (budget: BudgetRate) => number): Gauge<(typeof budgetLabels)[number]> => {
    const gauge: Gauge<(typeof budgetLabels)[number]> = new Gauge({
      name,
      help,
      labelNames: budgetLabels,
      registers: [registry],
      async collect() {
        gauge.reset();
        for (const budget of await readBudgetRates(context.redis, context.keys)) gauge.set({ budget: budget.name, kind: budget.kind, label: budget.label }, value(budget));
      },
    });
    return gauge;
  };
  budgetGauge(
    'revoker_budget_calls_last_second',
    'Call slots a rate budget handed out in the last second: kind "egress" (label = EGRESS_ID; the API blocks a source IP above 300/s) or "account" (label = API operation; throttled above 500/s).',
    (budget) => budget.lastSecond,
  );
  budgetGauge(
    'revoker_budget_limit_per_second',
    'Configured rate of a rate budget (RATE_LIMIT_PER_SECOND per account and operation, EGRESS_RATE_LIMIT_PER_SECOND per egress group).',
    (budget) => budget.configuredPerSecond,
  );
  const deadLetters = new Gauge({
    name: 'revoker_dead_letters',
    help: 'Devices on the dead-letter queue, waiting for an operator to redrive or purge them.',
    registers: [registry],
    async collect() {
      deadLetters.set(await context.deadLetters.count());
    },
  });
}

/** Adds prom-client's process metrics (CPU, memory, event loop lag, GC) to `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'revoker_' });
}

/** What a worker records about its API calls. */
export interface WorkerMetrics {
  /**
   * `revoker_api_calls_total{action,code,outcome}`: one per API call answered or failed. `action`
   * is the API action (`DeleteDeviceCertificate`…), `code` the API's Code, `OK`, or a network
   * code, `outcome` what the classification decided (`deleted`, `retry`, `throttle`, …).
   */
  apiCalls: Counter<'action' | 'code' | 'outcome'>;
  /** `revoker_api_call_duration_seconds{action}`: time from sending a call to its answer. */
  apiCallDuration: Histogram<'action'>;
  /** `revoker_throttled_total`: calls answered with a Throttling code. */
  throttled: Counter;
  /** `revoker_rate_limit_per_second`: the account-wide rate in force now (lowered while throttled). */
  rateLimitPerSecond: Gauge;
}

/**
 * Creates the worker's metrics in `registry`. Call once per registry: prom-client refuses a
 * second metric with the same name.
 */
export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  return {
    apiCalls: new Counter({
      name: 'revoker_api_calls_total',
      help: 'API calls made, by action, answer code and the outcome revoker decided.',
      labelNames: ['action', 'code', 'outcome'] as const,
      registers: [registry],
    }),
    apiCallDuration: new Histogram({
      name: 'revoker_api_call_duration_seconds',
      help: 'Time from sending an API call to its answer (or failure).',
      labelNames: ['action'] as const,
      // From a fast answer (~20 ms) to the SDK's read timeout range (seconds).
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    throttled: new Counter({
      name: 'revoker_throttled_total',
      help: 'API calls answered with a Throttling code.',
      registers: [registry],
    }),
    rateLimitPerSecond: new Gauge({
      name: 'revoker_rate_limit_per_second',
      help: 'Account-wide call rate in force now (the adaptive rate; at most RATE_LIMIT_PER_SECOND).',
      registers: [registry],
    }),
  };
}
