/**
 * How much later than its slot a call of this process may reach the API: the jitter allowance of
 * the rate budgets (budget-gate.ts), grown with the event loop's lag.
 *
 * Budgets count slots over 1000 ms plus the allowance, so that calls leaving up to that much after
 * their slots never put more than the budget into one second at the API. A process that is starved
 * of CPU (more processes than cores, a GC pause, a noisy neighbour) sends some calls later than
 * that, while other processes send on time: their calls bunch, and the source IP can go over the
 * 300 calls/s that block it. Measured: 4 workers, the emulator and Redis on 2 cores put 304 calls
 * into one second at a 280/s egress budget with a fixed 30 ms allowance. So the allowance follows
 * the worst lag this process saw recently: the base (30 ms) covers 10 ms of lag, and every
 * millisecond of lag beyond that adds one, up to `maxMs`. On a healthy host nothing changes.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Options of `LagAllowance`. */
export interface LagAllowanceOptions {
  /** The allowance of a process without lag (BudgetGateOptions.jitterAllowanceMs). */
  baseMs: number;
  /** Lag the base already covers. */
  coveredLagMs: number;
  /** The allowance never grows beyond this (1000 / (1000 + maxMs) of a budget is still used). */
  maxMs: number;
  /** How long a lag spike keeps the allowance up, in seconds (one sample a second). */
  memorySeconds: number;
}

/** Defaults of `LagAllowanceOptions`. */
export const LAG_ALLOWANCE_DEFAULTS: LagAllowanceOptions = { baseMs: 30, coveredLagMs: 10, maxMs: 250, memorySeconds: 30 };

/** The sampling resolution of the event-loop delay histogram, ms (its values include it). */
const RESOLUTION_MS = 10;

/** The jitter allowance of one process, from its recent event-loop lag. */
export class LagAllowance {
  private readonly options: LagAllowanceOptions;
  private readonly histogram: IntervalHistogram;
  /** The worst lag of each of the last `memorySeconds` seconds, ms, oldest first. */
  private readonly worst: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private currentMs: number;

  constructor(options: Partial<LagAllowanceOptions> = {}) {
    this.options = { ...LAG_ALLOWANCE_DEFAULTS, ...options };
    this.currentMs = this.options.baseMs;
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  }

  start(): void {
    if (this.timer !== null) return;
    this.histogram.enable();
    this.timer = setInterval(() => this.sample(), 1_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.histogram.disable();
  }

  /** The allowance now, ms. */
  current(): number {
    return this.currentMs;
  }

  /** The worst lag remembered, ms (0 before the first sample). */
  recentLagMs(): number {
    return this.worst.length === 0 ? 0 : Math.max(...this.worst);
  }

  /** Takes this second's worst lag (also called by tests). */
  sample(): void {
    const lagMs = this.histogram.count === 0 ? 0 : Math.max(0, this.histogram.max / 1e6 - RESOLUTION_MS);
    this.histogram.reset();
    this.worst.push(lagMs);
    while (this.worst.length > this.options.memorySeconds) this.worst.shift();
    const { baseMs, coveredLagMs, maxMs } = this.options;
    this.currentMs = Math.min(maxMs, Math.max(baseMs, Math.ceil(baseMs + this.recentLagMs() - coveredLagMs)));
  }
}
