/**
 * `RateGate` over rate budgets (docs/DESIGN.md, "Rate budgets"). Every API call takes one slot
 * from two budgets at once, in one script on Redis' clock shared by every process:
 * - its **account budget for that API operation** (RATE_LIMIT_PER_SECOND, ≤ 500: the API
 *   throttles an account above 500 calls/s per operation), lowered by the adaptive rate while
 *   the API throttles;
 * - the **egress budget** of the source IP it leaves from (EGRESS_RATE_LIMIT_PER_SECOND, ≤ 300:
 *   the API blocks a source IP above 300 calls/s), all operations together.
 *
 * In each process, a local priority queue (local-order.ts) orders the callers (urgent
 * revocations, then normal, then bulk, then reads) and lets only a few hold a reserved slot at a
 * time, so a new urgent call waits behind at most those few, not behind every call in flight.
 *
 * A limiter error (Redis down, restarting, failing over) never fails a call: the caller waits a
 * little and asks again. A slot is reserved before the call, never around it, so asking again
 * can never make one call twice.
 */
import type { Logger } from 'pino';
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { READ_ACTIONS, type ApiAction } from './api-action.js';
import { JitterAllowance } from './jitter-allowance.js';
import { LocalOrder } from './local-order.js';
import { RedisClock } from './redis-clock.js';
import { SendDelays } from './send-delays.js';
import type { GateStats, Permit, RateGate } from './rate-gate.js';
import { SlotReservations, type SlotBudget } from './slot-reservations.js';

/** Options of `BudgetGate`. */
export interface BudgetGateOptions {
  /** Key of the account the calls are made for (RATE_LIMIT_KEY / account id). */
  accountKey: string;
  /** Account budget of each API operation, per second (RATE_LIMIT_PER_SECOND). */
  accountRatePerSecond: number;
  /** Egress group: processes whose calls leave from one source IP (EGRESS_ID). */
  egressId: string;
  /** Budget of all calls from that egress together, per second (EGRESS_RATE_LIMIT_PER_SECOND). */
  egressRatePerSecond: number;
  /**
   * Budgets count slots over 1000 ms plus this much: a call reaches the API a little after its
   * slot (waking up, signing, the network), and that spread must not put more than the budget
   * into any one second at the API. Costs rate·allowance/(1000+allowance) of throughput. The
   * base: it grows with this process's measured send delays (jitter-allowance.ts).
   */
  jitterAllowanceMs: number;
  /** The allowance never grows beyond this. */
  maxJitterAllowanceMs: number;
  /** Host name of the API: requests to it are the calls whose send delays are measured (null: every request). */
  apiHost: string | null;
  /**
   * A caller that wakes up more than this late asks to move its slot to now (see retime-slot.lua).
   * The base allowance covers this much send delay. A smaller one narrows it but makes more
   * callers ask, each a Redis round trip whose answer can be read late too: 4 ms measured worse
   * than 10 (docs/DESIGN.md, "Slots on Redis' clock").
   */
  lateToleranceMs: number;
  /**
   * The work a caller does before its call (`acquire`'s `whileWaiting`: the worker's write-ahead
   * intent, one or two Redis round trips) starts this long before the slot, so the call leaves on
   * time; not earlier, since an intent stands for a call that may have been made.
   */
  workLeadMs: number;
  /** Callers of this process that may hold a reserved slot at once. */
  reservationsInFlight: number;
  /** Wait before asking again after a limiter error (doubles up to 2 s). */
  errorRetryMs: number;
}

/** Defaults of `BudgetGateOptions`. */
export const BUDGET_GATE_DEFAULTS = {
  // 1000/(1000+20) caps the steady rate at 0.980 of a budget. It covers 10 ms of measured send
  // delay (a caller may call up to lateToleranceMs after its slot) and 10 ms of network and
  // receiver; more measured delay grows it (jitter-allowance.ts; docs/DESIGN.md, "Slots on Redis' clock").
  jitterAllowanceMs: 20,
  // 1000/1250: a process lagging that much still uses 0.8 of a budget.
  maxJitterAllowanceMs: 250,
  apiHost: null,
  lateToleranceMs: 10,
  workLeadMs: 10,
  reservationsInFlight: 8,
  errorRetryMs: 100,
} as const;

/**
 * Sleeps until performance.now() reaches `atMs`. A timer counts whole milliseconds of its own clock
 * and fires up to one before its delay on performance.now() (measured: 0.9 ms, in 4 % of timers),
 * so it sleeps again for what is left: a slot placed on this clock must not be called early.
 */
export async function sleepUntil(atMs: number): Promise<void> {
  for (let leftMs = atMs - performance.now(); leftMs > 0; leftMs = atMs - performance.now()) {
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(leftMs)));
  }
}

/**
 * A reserved slot on this process's clock (redis-clock.ts), which knows it within a small error:
 * the caller calls no earlier than the latest it can be, and its send delay counts from the
 * earliest (never less than it really was late).
 */
interface Slot {
  member: string;
  /** When the caller may call (performance.now() clock). */
  dueMs: number;
  /** The earliest the slot can have been: its send delay is measured from here. */
  earliestMs: number;
}

/** Name of an account's budget for one operation. */
export function accountBudgetName(accountKey: string, action: ApiAction): string {
  return `account:${accountKey}:${action}`;
}

/** Name of an egress group's budget. */
export function egressBudgetName(egressId: string): string {
  return `egress:${egressId}`;
}

/** How often an open gate announces its budgets again (see `announce`). */
const ANNOUNCE_EVERY_MS = 30_000;

/** Priority of reads in the local order: after every revocation waiting in this process. */
const READ_PRIORITY = 9;

/** Shared account and egress budgets for one process. */
export class BudgetGate implements RateGate {
  private readonly options: BudgetGateOptions;
  private readonly slots: SlotReservations;
  private readonly local: LocalOrder;
  private readonly budgets = new Map<ApiAction, SlotBudget[]>();
  private readonly memberPrefix = `${process.pid}-${Math.random().toString(36).slice(2, 8)}-`;
  private counter = 0;
  private adaptiveRate: number;
  private closed = false;
  private lastErrorLogAtMs = 0;
  private announcer: NodeJS.Timeout | null = null;
  private readonly allowance: JitterAllowance;
  private readonly sendDelays: SendDelays;
  private readonly clock = new RedisClock();
  private reportedAllowanceMs: number;
  private stats = { permits: 0, lateMoved: 0, lateGivenUp: 0 };

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    options: Partial<BudgetGateOptions> & Pick<BudgetGateOptions, 'accountKey' | 'accountRatePerSecond' | 'egressId' | 'egressRatePerSecond'>,
    private readonly log: Logger,
  ) {
    this.options = { ...BUDGET_GATE_DEFAULTS, ...options };
    this.adaptiveRate = this.options.accountRatePerSecond;
    this.slots = new SlotReservations(redis);
    this.sendDelays = new SendDelays(this.options.apiHost);
    this.sendDelays.start();
    // The base covers the lateness a caller may call with (more is moved or refused by the budgets).
    this.allowance = new JitterAllowance(this.sendDelays, { baseMs: this.options.jitterAllowanceMs, coveredSendDelayMs: this.options.lateToleranceMs, maxMs: this.options.maxJitterAllowanceMs });
    this.allowance.start();
    this.reportedAllowanceMs = this.options.jitterAllowanceMs;
    this.local = new LocalOrder(this.options.reservationsInFlight);
  }

  /** The two budgets of one operation (account, egress), made once per operation. */
  private budgetsOf(action: ApiAction): SlotBudget[] {
    let budgets = this.budgets.get(action);
    if (budgets === undefined) {
      const account = accountBudgetName(this.options.accountKey, action);
      const egress = egressBudgetName(this.options.egressId);
      budgets = [
        { nextKey: this.keys.budgetNext(account), windowKey: this.keys.budgetWindow(account), adaptiveKey: this.keys.currentRate(this.options.accountKey), ratePerSecond: this.options.accountRatePerSecond },
        // The egress budget is never adapted: its limit is a block, not a throttle. Its adaptive key is never set.
        { nextKey: this.keys.budgetNext(egress), windowKey: this.keys.budgetWindow(egress), adaptiveKey: `${this.keys.budgetNext(egress)}:fixed`, ratePerSecond: this.options.egressRatePerSecond },
      ];
      this.budgets.set(action, budgets);
      this.announce([account, egress]);
    }
    return budgets;
  }

  /**
   * Announces budgets for `revoker status`, /metrics and plans, with the time: a budget no process
   * announced for BUDGET_STALE_MS is left out there (a stopped egress group must not make an
   * estimate optimistic). Best effort; repeated every ANNOUNCE_EVERY_MS while the gate is open.
   */
  private announce(names: string[]): void {
    const rates = names.map((name) => (name.startsWith('egress:') ? this.options.egressRatePerSecond : this.options.accountRatePerSecond));
    const now = Date.now();
    this.redis
      .multi()
      .hset(this.keys.budgetIndex(), ...names.flatMap((name, index) => [name, String(rates[index])]))
      .zadd(this.keys.budgetSeen(), ...names.flatMap((name) => [now, name]))
      .exec()
      .catch(() => undefined);
    if (this.announcer === null) {
      this.announcer = setInterval(() => {
        const all = new Set<string>();
        for (const action of this.budgets.keys()) {
          all.add(accountBudgetName(this.options.accountKey, action));
          all.add(egressBudgetName(this.options.egressId));
        }
        if (all.size > 0) this.announce([...all]);
      }, ANNOUNCE_EVERY_MS);
      this.announcer.unref();
    }
  }

  async acquire(action: ApiAction, priority = 5, whileWaiting?: () => Promise<void>): Promise<Permit> {
    if (this.closed) throw new Error('rate gate closed');
    const budgets = this.budgetsOf(action);
    let slot = await this.local.schedule(READ_ACTIONS.has(action) ? READ_PRIORITY : Math.max(0, Math.min(8, priority)), () => this.takeSlot(budgets, whileWaiting));
    return {
      confirm: async () => {
        if (performance.now() - slot.dueMs <= this.options.lateToleranceMs) {
          this.sendDelays.expect(slot.earliestMs);
          return;
        }
        // The caller's own work took too long: this slot is stale. Move it to now if the windows
        // allow, else give it up and take a new one (never both: the stale slot is not reused).
        try {
          const moved = await this.retimed(budgets, slot.member);
          if (moved !== null) {
            this.stats.lateMoved += 1;
            this.sendDelays.expect(moved.earliestMs);
            return;
          }
        } catch {
          // The budgets do not answer: take a new slot below, which waits until they do.
        }
        this.stats.lateGivenUp += 1;
        slot = await this.takeSlot(budgets);
        this.sendDelays.expect(slot.earliestMs);
      },
    };
  }

  /**
   * Reserves a slot in every budget and waits for it, running `whileWaiting` (once) in the last
   * `workLeadMs` before it; asks again after a limiter error.
   */
  private async takeSlot(budgets: SlotBudget[], whileWaiting?: () => Promise<void>): Promise<Slot> {
    const windowMs = this.windowMs();
    let pending = whileWaiting;
    for (let errors = 0; ; ) {
      if (this.closed) throw new Error('rate gate closed');
      this.counter += 1;
      const member = `${this.memberPrefix}${this.counter}`;
      let slot: Slot;
      try {
        const askedAt = performance.now();
        const { waitMs, redisNowMs } = await this.slots.reserve(budgets, windowMs, member);
        slot = this.onLocalClock(member, redisNowMs + waitMs, redisNowMs, askedAt);
      } catch (error) {
        errors += 1;
        await this.afterLimiterError(error, errors);
        continue;
      }
      const work = pending;
      pending = undefined;
      if (work !== undefined) {
        // The caller's work starts `workLeadMs` before the slot, not at once: a process killed
        // between the worker's intent and its call leaves a lost answer behind (docs/DESIGN.md §3).
        await sleepUntil(slot.dueMs - this.options.workLeadMs);
        // The caller's own error (a lost job lock, say) ends the wait: the slot goes unused.
        await Promise.all([sleepUntil(slot.dueMs), work()]);
      } else {
        await sleepUntil(slot.dueMs);
      }
      try {
        if (performance.now() - slot.dueMs <= this.options.lateToleranceMs) {
          this.stats.permits += 1;
          return slot;
        }
        // Woke too late: calling now is allowed only where the windows around now still hold.
        const moved = await this.retimed(budgets, member, windowMs);
        if (moved !== null) {
          this.stats.permits += 1;
          this.stats.lateMoved += 1;
          return moved;
        }
        this.stats.lateGivenUp += 1;
        errors = 0;
      } catch (error) {
        errors += 1;
        await this.afterLimiterError(error, errors);
      }
    }
  }

  /** Moves a slot to now where the windows allow (the slot then), else gives it up (null). */
  private async retimed(budgets: SlotBudget[], member: string, windowMs = this.windowMs()): Promise<Slot | null> {
    const askedAt = performance.now();
    const redisNowMs = await this.slots.retime(budgets, windowMs, member);
    return redisNowMs === null ? null : this.onLocalClock(member, redisNowMs, redisNowMs, askedAt);
  }

  /** A slot at Redis' time `slotMs`, from an answer that read Redis' clock at `redisNowMs`, asked at `askedAt`. */
  private onLocalClock(member: string, slotMs: number, redisNowMs: number, askedAt: number): Slot {
    const answeredAt = performance.now();
    this.clock.sample(redisNowMs, askedAt, answeredAt);
    const { atMs, errorMs } = this.clock.local(slotMs, answeredAt);
    return { member, dueMs: atMs + errorMs, earliestMs: atMs - errorMs };
  }

  /** Logs a limiter error (at most every 5 s) and waits before asking again (doubling, ≤ 2 s). */
  private async afterLimiterError(error: unknown, errors: number): Promise<void> {
    const now = Date.now();
    if (now - this.lastErrorLogAtMs > 5_000) {
      this.lastErrorLogAtMs = now;
      this.log.warn({ err: error }, 'rate budgets unavailable (Redis); calls wait until they answer');
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, this.options.errorRetryMs * 2 ** Math.min(errors - 1, 5))));
  }

  takeStats(): GateStats {
    const taken = { ...this.stats, allowanceMs: this.allowance.current(), sendDelayMs: Math.round(this.allowance.recentSendDelayMs()), lagMs: Math.round(this.allowance.recentLagMs()) };
    this.stats = { permits: 0, lateMoved: 0, lateGivenUp: 0 };
    return taken;
  }

  /** The span budgets are counted over for this process's next slot; says so when the lag moved it. */
  private windowMs(): number {
    const allowanceMs = this.allowance.current();
    // A new process starts wide (JitterAllowance's warm-up): nothing to tell until it has measured.
    if (this.allowance.warmingUp()) return 1000 + allowanceMs;
    // Told when it grows by 20 ms or more, and when it is back at the base: not every second.
    const base = this.options.jitterAllowanceMs;
    if (allowanceMs >= this.reportedAllowanceMs + 20 || (allowanceMs === base && this.reportedAllowanceMs !== base)) {
      const fields = {
        allowanceMs,
        sendDelayMs: Math.round(this.allowance.recentSendDelayMs()),
        eventLoopLagMs: Math.round(this.allowance.recentLagMs()),
        budgetShare: Math.round((1000 / (1000 + allowanceMs)) * 100) / 100,
      };
      // Info, not warn: nothing is wrong and nothing is to be done; it explains a lower rate.
      this.log.info(fields, allowanceMs > base ? 'calls of this process leave late: they are spaced wider so that they cannot bunch at the API' : 'calls leave on time again: they are spaced as usual');
      this.reportedAllowanceMs = allowanceMs;
    }
    return 1000 + allowanceMs;
  }

  async setRatePerSecond(ratePerSecond: number): Promise<void> {
    // The adaptive rate is read by the reservation script from its shared key; this is the
    // process's view of it, for logs and metrics.
    this.adaptiveRate = Math.min(ratePerSecond, this.options.accountRatePerSecond);
    return Promise.resolve();
  }

  ratePerSecond(): number {
    return Math.min(this.adaptiveRate, this.options.egressRatePerSecond);
  }

  /** The egress group and its budget, for messages. */
  egress(): { egressId: string; ratePerSecond: number } {
    return { egressId: this.options.egressId, ratePerSecond: this.options.egressRatePerSecond };
  }

  close(): Promise<void> {
    this.closed = true;
    this.allowance.stop();
    this.sendDelays.stop();
    if (this.announcer !== null) clearInterval(this.announcer);
    this.local.stop();
    return Promise.resolve();
  }
}
