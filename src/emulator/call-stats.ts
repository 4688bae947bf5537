/**
 * Running statistics of the API calls, updated incrementally per call so that a run of a
 * million calls costs nothing extra at the end.
 */
import { SlidingWindowCounter } from './sliding-window.js';
import type { CallRecord } from './call-log.js';
import type { SourceIpVerdict } from './source-ip-guard.js';

/** Statistics of one source IP address (see `IpLimitOptions`). */
export interface SourceIpStats {
  /** API requests that arrived from the address. */
  calls: number;
  /** Those the source IP check let through (to authentication). */
  admitted: number;
  /** Largest number of requests from the address in any sliding 1000 ms window. */
  busiestSecond: number;
  /** When that window ended (ms since the epoch), null without requests. */
  busiestSecondAtMs: number | null;
  /** Whether the address is blocked now. */
  blocked: boolean;
  /** End of the block in force (ms since the epoch), null when not blocked. */
  blockedUntilMs: number | null;
  /** Requests answered with the block answer (the ones that started a block included). */
  blockedCalls: number;
  /** How many times the address was blocked. */
  blockCount: number;
}

/** Statistics of one action of one account (the unit of the API's 500 calls/s). */
export interface AccountActionStats {
  /** Authenticated calls that reached the account's rate limit. */
  calls: number;
  /** Those it admitted. */
  admitted: number;
  /** Those it refused with Throttling.User. */
  throttled: number;
  /** Largest number of calls in any sliding 1000 ms window (admitted or not). */
  busiestSecond: number;
  /** When that window ended (ms since the epoch), null without calls. */
  busiestSecondAtMs: number | null;
}

/** What `stats()` and `GET /_emulator/stats` return. */
export interface EmulatorStats {
  /** API calls that arrived (control routes excluded). */
  total: number;
  /** Calls answered or deliberately left unanswered so far: total minus those still in flight. */
  completed: number;
  /** Per action, per code ("OK" for success): how many calls. */
  byAction: Record<string, Record<string, number>>;
  /** Per code over all actions. */
  byCode: Record<string, number>;
  /** Per injected fault kind (`none` excluded). */
  byFault: Record<string, number>;
  /** Calls refused with Throttling.User. */
  throttled: number;
  /** Calls that were authenticated and passed the rate limit. */
  admitted: number;
  /** Largest number of arrivals in any sliding 1000 ms window, all keys together. */
  maxCallsInAnySecond: number;
  /** The same per AccessKey id (arrivals whose Authorization named a key). */
  maxCallsInAnySecondByKey: Record<string, number>;
  /** Largest number of ADMITTED calls in any sliding 1000 ms window, all keys together. */
  maxAdmittedInAnySecond: number;
  /** The same per AccessKey id; never above the rate limit that was in force. */
  maxAdmittedInAnySecondByKey: Record<string, number>;
  /** Arrival of the first and last call (ms since the epoch), null before any call. */
  firstAtMs: number | null;
  lastAtMs: number | null;
  /** admitted / (lastAtMs - firstAtMs) in seconds; equals admitted when the span is 0. */
  callsPerSecond: number;
  /** TCP connections the server accepted (keep-alive reuse keeps this small). */
  connectionsAccepted: number;
  /** Per source IP address (IPv4-mapped IPv6 written as IPv4); also counted with the limit off. */
  bySourceIp: Record<string, SourceIpStats>;
  /**
   * Per account (its accountId, else the AccessKey id), per action. Calls refused before the
   * rate limit (authentication, source IP block) are not in it.
   */
  byAccountAction: Record<string, Record<string, AccountActionStats>>;
}

interface SourceIpCounts {
  calls: number;
  admitted: number;
  blockedCalls: number;
  blockCount: number;
  window: SlidingWindowCounter;
}

interface AccountActionCounts {
  calls: number;
  admitted: number;
  throttled: number;
  window: SlidingWindowCounter;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function windowFor(map: Map<string, SlidingWindowCounter>, key: string): SlidingWindowCounter {
  let window = map.get(key);
  if (!window) {
    window = new SlidingWindowCounter(1000);
    map.set(key, window);
  }
  return window;
}

/** Accumulates `EmulatorStats`. */
export class CallStats {
  private total = 0;
  private completed = 0;
  private throttled = 0;
  private admitted = 0;
  private byAction: Record<string, Record<string, number>> = {};
  private byCode: Record<string, number> = {};
  private byFault: Record<string, number> = {};
  private readonly arrivals = new SlidingWindowCounter(1000);
  private readonly admissions = new SlidingWindowCounter(1000);
  private readonly arrivalsByKey = new Map<string, SlidingWindowCounter>();
  private readonly admissionsByKey = new Map<string, SlidingWindowCounter>();
  private firstAtMs: number | null = null;
  private lastAtMs: number | null = null;
  private connectionsAccepted = 0;
  private readonly sourceIps = new Map<string, SourceIpCounts>();
  /** Account → action → counts. */
  private readonly accountActions = new Map<string, Map<string, AccountActionCounts>>();

  /** A request from `ip` was decided by the source IP check (whether the limit is on or off). */
  recordSourceIp(ip: string, atMs: number, verdict: SourceIpVerdict): void {
    let counts = this.sourceIps.get(ip);
    if (!counts) {
      counts = { calls: 0, admitted: 0, blockedCalls: 0, blockCount: 0, window: new SlidingWindowCounter(1000) };
      this.sourceIps.set(ip, counts);
    }
    counts.calls += 1;
    counts.window.record(atMs);
    if (verdict === 'admitted') counts.admitted += 1;
    else counts.blockedCalls += 1;
    if (verdict === 'newly_blocked') counts.blockCount += 1;
  }

  /** An authenticated call met the rate limit of its account and action. */
  recordAccountAction(account: string, action: string, atMs: number, admitted: boolean): void {
    let byAction = this.accountActions.get(account);
    if (!byAction) {
      byAction = new Map();
      this.accountActions.set(account, byAction);
    }
    let counts = byAction.get(action);
    if (!counts) {
      counts = { calls: 0, admitted: 0, throttled: 0, window: new SlidingWindowCounter(1000) };
      byAction.set(action, counts);
    }
    counts.calls += 1;
    counts.window.record(atMs);
    if (admitted) counts.admitted += 1;
    else counts.throttled += 1;
  }

  /** A call arrived (before authentication). */
  recordArrival(atMs: number, accessKeyId: string): void {
    this.total += 1;
    this.firstAtMs ??= atMs;
    this.lastAtMs = Math.max(this.lastAtMs ?? atMs, atMs);
    this.arrivals.record(atMs);
    if (accessKeyId !== '') windowFor(this.arrivalsByKey, accessKeyId).record(atMs);
  }

  /** A call passed authentication and the rate limit. */
  recordAdmission(atMs: number, accessKeyId: string): void {
    this.admitted += 1;
    this.admissions.record(atMs);
    windowFor(this.admissionsByKey, accessKeyId).record(atMs);
  }

  /** A call's outcome is known. */
  recordOutcome(record: CallRecord): void {
    this.completed += 1;
    if (record.code === 'Throttling.User') this.throttled += 1;
    bump((this.byAction[record.action] ??= {}), record.code);
    bump(this.byCode, record.code);
    if (record.fault !== 'none') bump(this.byFault, record.fault);
  }

  recordConnection(): void {
    this.connectionsAccepted += 1;
  }

  /**
   * The statistics now. `blocks` are the source IP blocks in force (address → end in ms), which
   * the guard owns; an address blocked before a reset is listed even with no request since.
   */
  snapshot(blocks: ReadonlyMap<string, number> = new Map()): EmulatorStats {
    const bySourceIp: Record<string, SourceIpStats> = {};
    for (const [ip, counts] of this.sourceIps) {
      const until = blocks.get(ip);
      bySourceIp[ip] = {
        calls: counts.calls,
        admitted: counts.admitted,
        busiestSecond: counts.window.max,
        busiestSecondAtMs: counts.window.maxAt,
        blocked: until !== undefined,
        blockedUntilMs: until ?? null,
        blockedCalls: counts.blockedCalls,
        blockCount: counts.blockCount,
      };
    }
    for (const [ip, until] of blocks) {
      bySourceIp[ip] ??= { calls: 0, admitted: 0, busiestSecond: 0, busiestSecondAtMs: null, blocked: true, blockedUntilMs: until, blockedCalls: 0, blockCount: 0 };
    }
    const byAccountAction: Record<string, Record<string, AccountActionStats>> = {};
    for (const [account, byAction] of this.accountActions) {
      byAccountAction[account] = Object.fromEntries(
        [...byAction].map(([action, c]) => [action, { calls: c.calls, admitted: c.admitted, throttled: c.throttled, busiestSecond: c.window.max, busiestSecondAtMs: c.window.maxAt }]),
      );
    }
    const maxByKey = (map: Map<string, SlidingWindowCounter>): Record<string, number> =>
      Object.fromEntries([...map].map(([key, window]) => [key, window.max]));
    const spanSeconds = this.firstAtMs === null || this.lastAtMs === null ? 0 : (this.lastAtMs - this.firstAtMs) / 1000;
    return {
      total: this.total,
      completed: this.completed,
      byAction: structuredClone(this.byAction),
      byCode: { ...this.byCode },
      byFault: { ...this.byFault },
      throttled: this.throttled,
      admitted: this.admitted,
      maxCallsInAnySecond: this.arrivals.max,
      maxCallsInAnySecondByKey: maxByKey(this.arrivalsByKey),
      maxAdmittedInAnySecond: this.admissions.max,
      maxAdmittedInAnySecondByKey: maxByKey(this.admissionsByKey),
      firstAtMs: this.firstAtMs,
      lastAtMs: this.lastAtMs,
      callsPerSecond: spanSeconds > 0 ? this.admitted / spanSeconds : this.admitted,
      connectionsAccepted: this.connectionsAccepted,
      bySourceIp,
      byAccountAction,
    };
  }

  /** Starts counting afresh (connections included). */
  reset(): void {
    this.total = 0;
    this.completed = 0;
    this.throttled = 0;
    this.admitted = 0;
    this.byAction = {};
    this.byCode = {};
    this.byFault = {};
    this.arrivals.reset();
    this.admissions.reset();
    this.arrivalsByKey.clear();
    this.admissionsByKey.clear();
    this.firstAtMs = null;
    this.lastAtMs = null;
    this.connectionsAccepted = 0;
    this.sourceIps.clear();
    this.accountActions.clear();
  }
}
