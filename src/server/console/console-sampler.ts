/**
 * What the console shows live, sampled once a second in the server process: every rate budget's
 * calls in the last second against its limit (ten minutes kept in a ring), the adaptive account
 * rate and whether the API throttled or the account is paused, and the open and recent batches
 * with the rate each is getting and its ETA.
 *
 * One sample serves every viewer: the cost to Redis is a handful of round trips a second whether
 * nobody or fifty people watch (see docs/CONSOLE.md for the measurement).
 *
 * Throttled calls are marked per second, not counted: workers add them to a counter that the
 * adaptive controller resets every second (`rate:<key>:throttled`), so a second reader would race
 * it. What survives is the controller's ceiling (`rate:<key>:ceiling`, `atMs` of the last
 * throttled tick): a new `atMs` means the API throttled during that second. Refused calls (a
 * blocked IP, refused credentials) pause the account (`account:<key>:pause`): that is marked too.
 */
import type { Batch } from '../../batches/batch.js';
import { parseBatch } from '../../batches/batch-store.js';
import { readBudgetRates } from '../../limiter/budget-status.js';
import type { Keys } from '../../queue/keys.js';
import type { RedisClient as Redis } from '../../redis/redis-connection.js';
import { RingBuffer } from './ring-buffer.js';

/** Options of `ConsoleSampler`. */
export interface ConsoleSamplerOptions {
  /** How often to sample. */
  intervalMs: number;
  /** How many samples the chart keeps (600 at 1 s: the last ten minutes). */
  historySamples: number;
  /** Recent batches shown besides the open ones. */
  recentBatches: number;
  /** Most batch ids looked at for open ones (newest first). */
  indexScanLimit: number;
  /** The rate a batch is getting is averaged over this many samples. */
  rateWindowSamples: number;
}

/** Defaults of `ConsoleSamplerOptions`. */
export const CONSOLE_SAMPLER_DEFAULTS: ConsoleSamplerOptions = {
  intervalMs: 1_000,
  historySamples: 600,
  recentBatches: 20,
  // A deployment with more open batches than this has other problems; the index is newest first.
  indexScanLimit: 2_000,
  // 10 s: long enough to smooth the slot spacing, short enough to show a pause within seconds.
  rateWindowSamples: 10,
};

/** One budget in one sample. */
export interface BudgetPoint {
  /** `account:<key>:<Operation>` or `egress:<id>`. */
  name: string;
  kind: 'account' | 'egress';
  /** The operation (account budgets) or the egress id. */
  label: string;
  /** The account key of an account budget; null for egress budgets. */
  accountKey: string | null;
  /** Calls in the last second. */
  calls: number;
  /** Configured rate per second. */
  limit: number;
  /** The adaptive account rate when it is below the limit (throttling lowered it); else null. */
  adaptive: number | null;
  /** The API throttled the account during this second. */
  throttled: boolean;
  /** The account is paused: calls are refused (blocked IP, credentials) until an operator resumes it. */
  refused: boolean;
}

/** The budgets at one second. */
export interface RateSample {
  atMs: number;
  budgets: BudgetPoint[];
}

/** An account's state. */
export interface AccountState {
  key: string;
  adaptivePerSecond: number | null;
  /** Why the account is paused, or null. */
  pausedReason: string | null;
  /** When the API last throttled it (ms), or null. */
  lastThrottleAtMs: number | null;
}

/** A batch with what the samples say about its speed. */
export interface BatchProgress {
  batch: Batch;
  /** Devices finished per second over the last samples; null until two samples exist. */
  ratePerSecond: number | null;
  /** Seconds left at that rate; null when not running or no rate yet. */
  etaSeconds: number | null;
}

/** Everything one tick read. */
export interface ConsoleSnapshot {
  atMs: number;
  rates: RateSample;
  accounts: AccountState[];
  batches: BatchProgress[];
}

const OPEN_STATES = new Set(['enqueuing', 'running', 'paused']);

/** The account key inside an account budget name `account:<key>:<Operation>` (keys may hold ':'). */
export function accountKeyOf(budgetName: string): string | null {
  if (!budgetName.startsWith('account:')) return null;
  const last = budgetName.lastIndexOf(':');
  return last > 'account:'.length ? budgetName.slice('account:'.length, last) : null;
}

/** Devices per second between the oldest and newest of `points` (null with fewer than two). */
export function progressRate(points: readonly { atMs: number; done: number }[]): number | null {
  if (points.length < 2) return null;
  const first = points[0];
  const last = points[points.length - 1];
  if (first === undefined || last === undefined || last.atMs <= first.atMs) return null;
  return Math.max(0, ((last.done - first.done) * 1000) / (last.atMs - first.atMs));
}

/** Samples budgets and batches once a second and tells its listeners. */
export class ConsoleSampler {
  private readonly options: ConsoleSamplerOptions;
  private readonly history: RingBuffer<RateSample>;
  private readonly progress = new Map<string, RingBuffer<{ atMs: number; done: number }>>();
  private readonly lastThrottleSeen = new Map<string, number>();
  private readonly listeners = new Set<(snapshot: ConsoleSnapshot) => void>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private current: ConsoleSnapshot | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    options: Partial<ConsoleSamplerOptions> = {},
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    this.options = { ...CONSOLE_SAMPLER_DEFAULTS, ...options };
    this.history = new RingBuffer(this.options.historySamples);
  }

  /** Starts sampling (the first sample is taken at once). */
  start(): void {
    if (this.timer !== null) return;
    const run = (): void => {
      if (this.ticking) return;
      this.ticking = true;
      this.tick()
        .catch(this.onError)
        .finally(() => {
          this.ticking = false;
        });
    };
    this.timer = setInterval(run, this.options.intervalMs);
    this.timer.unref();
    run();
  }

  /** Stops sampling. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Calls `listener` after every sample; returns how to stop. */
  subscribe(listener: (snapshot: ConsoleSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last snapshot, or null before the first. */
  latest(): ConsoleSnapshot | null {
    return this.current;
  }

  /** The rate samples kept, oldest first. */
  rateHistory(): RateSample[] {
    return this.history.toArray();
  }

  /** The progress of one batch as last sampled (null when it is not among the open and recent ones). */
  progressOf(batchId: string): BatchProgress | null {
    return this.current?.batches.find((entry) => entry.batch.id === batchId) ?? null;
  }

  /** Takes one sample, keeps it and tells the listeners. */
  async tick(now: number = Date.now()): Promise<ConsoleSnapshot> {
    const [budgetRates, batches] = await Promise.all([readBudgetRates(this.redis, this.keys), this.readBatches()]);
    const accountKeys = [...new Set(budgetRates.map((budget) => accountKeyOf(budget.name)).filter((key): key is string => key !== null))];
    const accounts = await this.readAccounts(accountKeys);
    const byKey = new Map(accounts.map((account) => [account.key, account]));
    const throttledNow = new Set<string>();
    for (const account of accounts) {
      const seen = this.lastThrottleSeen.get(account.key);
      if (account.lastThrottleAtMs !== null && account.lastThrottleAtMs !== seen) {
        // The first sample after a start only counts a throttle from the last two seconds.
        if (seen !== undefined || now - account.lastThrottleAtMs < 2_000) throttledNow.add(account.key);
        this.lastThrottleSeen.set(account.key, account.lastThrottleAtMs);
      }
    }
    const rates: RateSample = {
      atMs: now,
      budgets: budgetRates.map((budget) => {
        const accountKey = accountKeyOf(budget.name);
        const account = accountKey === null ? undefined : byKey.get(accountKey);
        const adaptive = account?.adaptivePerSecond ?? null;
        return {
          name: budget.name,
          kind: budget.kind,
          label: budget.label,
          accountKey,
          calls: budget.lastSecond,
          limit: budget.configuredPerSecond,
          adaptive: adaptive !== null && adaptive < budget.configuredPerSecond ? Math.round(adaptive * 10) / 10 : null,
          throttled: accountKey !== null && throttledNow.has(accountKey),
          refused: account?.pausedReason != null,
        };
      }),
    };
    this.history.push(rates);
    const snapshot: ConsoleSnapshot = { atMs: now, rates, accounts, batches: this.trackProgress(batches, now) };
    this.current = snapshot;
    for (const listener of this.listeners) {
      try {
        listener(snapshot);
      } catch (error) {
        this.onError(error);
      }
    }
    return snapshot;
  }

  private trackProgress(batches: Batch[], now: number): BatchProgress[] {
    const present = new Set<string>();
    const out = batches.map((batch): BatchProgress => {
      present.add(batch.id);
      let ring = this.progress.get(batch.id);
      if (ring === undefined) {
        ring = new RingBuffer(this.options.rateWindowSamples + 1);
        this.progress.set(batch.id, ring);
      }
      ring.push({ atMs: now, done: batch.done });
      const rate = OPEN_STATES.has(batch.state) ? progressRate(ring.toArray()) : null;
      const remaining = Math.max(0, batch.accepted - batch.done);
      const eta = batch.state === 'running' && rate !== null && rate > 0 && remaining > 0 ? remaining / rate : null;
      return { batch, ratePerSecond: rate, etaSeconds: eta };
    });
    for (const id of this.progress.keys()) if (!present.has(id)) this.progress.delete(id);
    return out;
  }

  /** Open batches (newest first) and the most recent others: three round trips whatever their number. */
  private async readBatches(): Promise<Batch[]> {
    const ids = await this.redis.zrevrange(this.keys.batchIndex(), 0, this.options.indexScanLimit - 1);
    if (ids.length === 0) return [];
    const states = this.redis.pipeline();
    for (const id of ids) states.hget(this.keys.batch(id), 'state');
    const replies = (await states.exec()) ?? [];
    const wanted = ids.filter((_, index) => {
      const state = replies[index]?.[1];
      return typeof state === 'string' && (OPEN_STATES.has(state) || index < this.options.recentBatches);
    });
    if (wanted.length === 0) return [];
    const hashes = this.redis.pipeline();
    for (const id of wanted) hashes.hgetall(this.keys.batch(id));
    return ((await hashes.exec()) ?? []).map(([, hash]) => parseBatch((hash ?? {}) as Record<string, string>)).filter((batch): batch is Batch => batch !== null);
  }

  private async readAccounts(keys: readonly string[]): Promise<AccountState[]> {
    if (keys.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const key of keys) {
      pipeline.get(this.keys.currentRate(key));
      pipeline.get(this.keys.throttleCeiling(key));
      pipeline.hget(this.keys.accountPause(key), 'reason');
    }
    const replies = (await pipeline.exec()) ?? [];
    return keys.map((key, index) => {
      const rate = replies[3 * index]?.[1];
      const ceiling = replies[3 * index + 1]?.[1];
      const reason = replies[3 * index + 2]?.[1];
      let lastThrottleAtMs: number | null = null;
      if (typeof ceiling === 'string') {
        try {
          const parsed = JSON.parse(ceiling) as { atMs?: unknown };
          if (typeof parsed.atMs === 'number') lastThrottleAtMs = parsed.atMs;
        } catch {
          // Not ours to judge: no throttle mark.
        }
      }
      return { key, adaptivePerSecond: typeof rate === 'string' && rate !== '' ? Number(rate) : null, pausedReason: typeof reason === 'string' ? reason : null, lastThrottleAtMs };
    });
  }
}
