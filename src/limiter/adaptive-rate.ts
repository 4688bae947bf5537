/**
 * Adaptive account-wide rate. Another client of the same account can eat part of the quota:
 * when calls come back throttled, the shared rate drops multiplicatively for every process, and
 * climbs back additively to the configured cap once throttling stops.
 *
 * Coordination: workers count throttled responses in Redis; once a second one process (whoever
 * takes the tick lock) reads and resets the count, computes the next rate with `nextRate`, stores
 * it in the shared key that the slot reservation script of every process reads.
 */
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { Logger } from 'pino';
import type { Keys } from '../queue/keys.js';
import type { RateGate } from './rate-gate.js';

/** Options of the adaptive controller. */
export interface AdaptiveRateOptions {
  /** The configured cap (RATE_LIMIT_PER_SECOND): never exceeded. */
  capPerSecond: number;
  /** Factor applied on a throttled second. */
  decreaseFactor: number;
  /** Floor, as a fraction of the cap: a storm never stops the work entirely. */
  floorFraction: number;
  /** Climb per tick far below the rate where throttling last began, as a fraction of the cap. */
  fastStepFraction: number;
  /** Climb per tick near that rate: probe slowly where the quota is. */
  slowStepFraction: number;
  /** After this long without throttling, forget where it began and climb fast again. */
  ceilingMemoryMs: number;
  /** Tick period. */
  tickMs: number;
  /** How often call counts are added to the shared counters (a fraction of the tick). */
  flushMs: number;
}

/** Defaults of `AdaptiveRateOptions`. */
export const ADAPTIVE_RATE_DEFAULTS: Omit<AdaptiveRateOptions, 'capPerSecond'> = {
  decreaseFactor: 0.8,
  floorFraction: 0.05,
  fastStepFraction: 0.05,
  slowStepFraction: 0.005,
  ceilingMemoryMs: 30_000,
  tickMs: 1_000,
  flushMs: 200,
};

/** State the controller keeps between ticks. */
export interface RateState {
  rate: number;
  /** Rate at which throttling last began, or null. */
  ceiling: number | null;
  /** When throttling was last seen (ms since epoch), or 0. */
  lastThrottleAtMs: number;
}

/**
 * The next rate, from the current state and the last tick's counts. Pure.
 *
 * On throttling, when the tick's total call count is known, the rate drops straight to just under
 * what the API admitted (rate × admitted fraction × 0.97, at most × 0.95): one tick instead of
 * several multiplicative steps, each of which costs a second of throttled calls. Without the
 * count it falls back to `decreaseFactor`.
 */
export function nextRate(state: RateState, throttledCount: number, nowMs: number, options: AdaptiveRateOptions, callCount = 0): RateState {
  const cap = options.capPerSecond;
  const floor = Math.max(1, cap * options.floorFraction);
  if (throttledCount > 0) {
    const admittedFraction = callCount >= throttledCount && callCount > 0 ? 1 - throttledCount / callCount : null;
    const target = admittedFraction === null ? state.rate * options.decreaseFactor : Math.min(state.rate * 0.95, state.rate * admittedFraction * 0.97);
    const decreased = Math.max(floor, target);
    // The ceiling is the rate at which throttling began; taking the minimum with the old one
    // ratcheted it down a little on every throttled tick (measured: 0.87 of a 300/s quota).
    return { rate: decreased, ceiling: state.rate, lastThrottleAtMs: nowMs };
  }
  const ceiling = state.ceiling !== null && nowMs - state.lastThrottleAtMs < options.ceilingMemoryMs ? state.ceiling : null;
  const nearCeiling = ceiling !== null && state.rate >= ceiling * 0.95;
  const step = cap * (nearCeiling ? options.slowStepFraction : options.fastStepFraction);
  const climbed = ceiling !== null && !nearCeiling ? Math.min(state.rate + step, ceiling * 0.95) : state.rate + step;
  return { rate: Math.min(cap, climbed), ceiling, lastThrottleAtMs: state.lastThrottleAtMs };
}

/** Runs the adaptive controller for one account in this process. */
export class AdaptiveRate {
  private readonly options: AdaptiveRateOptions;
  private timer: NodeJS.Timeout | null = null;
  private readonly processId = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  private ticking = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private unflushedCalls = 0;
  private unflushedThrottled = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly rateKey: string,
    private readonly gate: RateGate,
    options: Partial<AdaptiveRateOptions> & Pick<AdaptiveRateOptions, 'capPerSecond'>,
    private readonly log: Logger,
  ) {
    this.options = { ...ADAPTIVE_RATE_DEFAULTS, ...options };
  }

  /** Starts ticking. */
  start(): void {
    this.timer = setInterval(() => {
      if (this.ticking) return;
      this.ticking = true;
      this.tick()
        .catch((error: unknown) => this.log.warn({ err: error }, 'adaptive rate tick failed'))
        .finally(() => {
          this.ticking = false;
        });
    }, this.options.tickMs);
    this.timer.unref();
    this.flushTimer = setInterval(() => {
      this.flush().catch((error: unknown) => this.log.warn({ err: error }, 'adaptive rate counters not flushed'));
    }, this.options.flushMs);
    this.flushTimer.unref();
  }

  /**
   * Counts one answered call, throttled or not. Counted in memory and added to the shared
   * counters every `flushMs` (and before a tick): one Redis write per flush, not per call.
   */
  record(throttled: boolean): void {
    this.unflushedCalls += 1;
    if (throttled) this.unflushedThrottled += 1;
  }

  /** Adds this process's counts since the last flush to the shared counters. */
  async flush(): Promise<void> {
    if (this.unflushedCalls === 0) return;
    const [calls, throttled] = [this.unflushedCalls, this.unflushedThrottled];
    this.unflushedCalls = 0;
    this.unflushedThrottled = 0;
    const pipeline = this.redis.multi().incrby(this.keys.callCount(this.rateKey), calls);
    if (throttled > 0) pipeline.incrby(this.keys.throttled(this.rateKey), throttled);
    await pipeline.exec();
  }

  /** One tick: only the process that takes the lock decides. */
  async tick(nowMs: number = Date.now()): Promise<void> {
    await this.flush();
    const lock = await this.redis.set(this.keys.rateTick(this.rateKey), this.processId, 'PX', this.options.tickMs - 50, 'NX');
    if (lock !== 'OK') {
      // Another process decided: follow its rate so that metrics here are right.
      const shared = await this.redis.get(this.keys.currentRate(this.rateKey));
      if (shared !== null && Number(shared) !== this.gate.ratePerSecond()) await this.gate.setRatePerSecond(Number(shared));
      return;
    }
    const [[, throttledRaw], [, callsRaw], [, rateRaw], [, ceilingRaw]] = (await this.redis
      .multi()
      .getset(this.keys.throttled(this.rateKey), '0')
      .getset(this.keys.callCount(this.rateKey), '0')
      .get(this.keys.currentRate(this.rateKey))
      .get(this.keys.throttleCeiling(this.rateKey))
      .exec()) as [[null, string | null], [null, string | null], [null, string | null], [null, string | null]];
    const throttled = Number(throttledRaw ?? '0');
    const calls = Number(callsRaw ?? '0');
    const rate = rateRaw === null ? this.options.capPerSecond : Math.min(Number(rateRaw), this.options.capPerSecond);
    const ceiling = ceilingRaw === null ? null : (JSON.parse(ceilingRaw) as { rate: number; atMs: number });
    const state: RateState = { rate, ceiling: ceiling?.rate ?? null, lastThrottleAtMs: ceiling?.atMs ?? 0 };
    const next = nextRate(state, throttled, nowMs, this.options, calls);
    const pipeline = this.redis.multi().set(this.keys.currentRate(this.rateKey), String(next.rate), 'EX', 86_400);
    if (next.ceiling === null) pipeline.del(this.keys.throttleCeiling(this.rateKey));
    else pipeline.set(this.keys.throttleCeiling(this.rateKey), JSON.stringify({ rate: next.ceiling, atMs: next.lastThrottleAtMs }), 'EX', 3_600);
    await pipeline.exec();
    if (Math.abs(next.rate - this.gate.ratePerSecond()) >= 0.5 || next.rate !== rate) {
      if (throttled > 0) this.log.warn({ throttled, fromPerSecond: Math.round(rate), toPerSecond: Math.round(next.rate) }, 'throttled by the API: slowing the account-wide rate');
      await this.gate.setRatePerSecond(next.rate);
    }
  }

  /** Stops ticking (what is still counted locally is flushed, best effort). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.timer = null;
    this.flushTimer = null;
    void this.flush().catch(() => undefined);
  }
}
