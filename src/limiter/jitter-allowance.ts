/**
 * How much later than its slot a call of this process may reach the API: the jitter allowance of
 * the rate budgets (budget-gate.ts). Budgets count slots over 1000 ms plus the allowance, so calls
 * that reach the API up to that much after their slots never put more than a budget into one
 * second there. It costs rate·allowance/(1000 + allowance) of throughput, so it follows what is
 * measured rather than a fixed guess (docs/DESIGN.md, "Slots on Redis' clock"):
 *
 * - **Send delays** (send-delays.ts): from each call's slot to its request handed to the OS. The
 *   base covers `coveredSendDelayMs` of them (a caller may call up to that late: the gate's
 *   `lateToleranceMs`; a later one is moved or refused by the budgets) and leaves the rest for
 *   the network and the receiver; a worse delay in the last `sendMemorySeconds` adds what it
 *   exceeds by.
 * - **Event-loop lag**, as a backstop for a host starved of CPU: a stall there can also hold up a
 *   receiver on the same host (the emulator in tests), which then takes a burst at once. A stall of
 *   `lagMarginMs` beyond the allowance fits in the 20 calls between an egress budget of 280 and the
 *   block at 300, so only lag beyond that grows the allowance.
 *
 * Measured on 2 cores (session 5): send delays stay under 10–16 ms while the event loop lags
 * 20–60 ms from garbage collection and long turns, which never delay a send (a late wake-up is
 * moved or refused by the budgets, see retime-slot.lua). Following the lag cost 3–6 % of the rate
 * for nothing; following the sends does not.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Options of `JitterAllowance`. */
export interface JitterAllowanceOptions {
  /** The allowance of a process whose calls leave on time (BudgetGateOptions.jitterAllowanceMs). */
  baseMs: number;
  /** The send delay the base covers. */
  coveredSendDelayMs: number;
  /** Event-loop lag beyond the allowance that the egress margin (280 of 300) absorbs. */
  lagMarginMs: number;
  /** The allowance never grows beyond this (1000 / (1000 + maxMs) of a budget is still used). */
  maxMs: number;
  /** How long a late send keeps the allowance up, in seconds (one sample a second). */
  sendMemorySeconds: number;
  /** How long a lag spike keeps the allowance up, in seconds. */
  lagMemorySeconds: number;
  /**
   * The send delay assumed for a new process's first `sendMemorySeconds`: its first calls leave
   * late (code not yet compiled, connections being opened: up to 47 ms measured) before any has
   * been measured, so the allowance starts wide and narrows as the sends show it may.
   */
  warmupSendDelayMs: number;
}

/** Defaults of `JitterAllowanceOptions`. */
export const JITTER_ALLOWANCE_DEFAULTS: JitterAllowanceOptions = {
  baseMs: 20,
  coveredSendDelayMs: 10,
  lagMarginMs: 70,
  maxMs: 250,
  sendMemorySeconds: 10,
  lagMemorySeconds: 10,
  warmupSendDelayMs: 60,
};

/** The sampling resolution of the event-loop delay histogram, ms (its values include it). */
const RESOLUTION_MS = 10;

/** Where the worst send delay of each second comes from (SendDelays, or a test's stand-in). */
export interface SendDelaySource {
  takeWorst(): number;
}

/** The worst values of the last few seconds. */
class RecentWorst {
  private readonly values: number[] = [];
  constructor(private readonly seconds: number) {}
  add(value: number): void {
    this.values.push(value);
    while (this.values.length > this.seconds) this.values.shift();
  }
  worst(): number {
    return this.values.length === 0 ? 0 : Math.max(...this.values);
  }
}

/** The jitter allowance of one process, from its recent send delays and event-loop lag. */
export class JitterAllowance {
  private readonly options: JitterAllowanceOptions;
  private readonly histogram: IntervalHistogram;
  private readonly sends: RecentWorst;
  private readonly lags: RecentWorst;
  private timer: NodeJS.Timeout | null = null;
  private currentMs: number;
  private samples = 0;

  constructor(
    private readonly sendDelays: SendDelaySource,
    options: Partial<JitterAllowanceOptions> = {},
  ) {
    this.options = { ...JITTER_ALLOWANCE_DEFAULTS, ...options };
    this.sends = new RecentWorst(this.options.sendMemorySeconds);
    this.sends.add(this.options.warmupSendDelayMs);
    this.lags = new RecentWorst(this.options.lagMemorySeconds);
    this.currentMs = this.allowanceNow();
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

  /** Whether the warm-up's assumed send delay is still remembered (nothing measured has replaced it). */
  warmingUp(): boolean {
    return this.samples < this.options.sendMemorySeconds;
  }

  /** The worst send delay remembered, ms. */
  recentSendDelayMs(): number {
    return this.sends.worst();
  }

  /** The worst event-loop lag remembered, ms. */
  recentLagMs(): number {
    return this.lags.worst();
  }

  /** Takes this second's worst send delay and lag (also called by tests). */
  sample(): void {
    this.samples += 1;
    this.sends.add(this.sendDelays.takeWorst());
    this.lags.add(this.histogram.count === 0 ? 0 : Math.max(0, this.histogram.max / 1e6 - RESOLUTION_MS));
    this.histogram.reset();
    this.currentMs = this.allowanceNow();
  }

  private allowanceNow(): number {
    const { baseMs, coveredSendDelayMs, lagMarginMs, maxMs } = this.options;
    const forSends = baseMs + Math.max(0, this.sends.worst() - coveredSendDelayMs);
    const forLag = this.lags.worst() - lagMarginMs;
    return Math.min(maxMs, Math.max(baseMs, Math.ceil(Math.max(forSends, forLag))));
  }
}
