/**
 * The gateway's per source IP address limit: counts every API request per address in a sliding
 * 1000 ms window and blocks an address that goes above the limit (see `IpLimitOptions` for
 * what counts and why). Enforcement only: the statistics per address are `CallStats`'s, like
 * the per-account rate limit and its statistics.
 */
import { apiError, errorBody } from './api-error.js';
import type { IpLimitOptions } from './emulator-options.js';
import { SlidingWindowCounter } from './sliding-window.js';

/**
 * What the guard decided for one request: `admitted` (passes on to authentication),
 * `newly_blocked` (this request took the address over the limit and starts a block) or
 * `blocked` (the address was blocked already).
 */
export type SourceIpVerdict = 'admitted' | 'newly_blocked' | 'blocked';

/** The answer to a blocked request. */
export interface IpBlockAnswer {
  httpStatus: number;
  /** The code for the call record: the body's `Code` when a custom body has one. */
  code: string;
  /** The JSON body, serialised. */
  body: string;
}

// What node:net reports for an IPv4 peer on a dual-stack (`::`) listener.
const IPV4_MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/**
 * The address a request came from as the limit sees it: IPv4-mapped IPv6 (`::ffff:127.0.0.2`)
 * is the IPv4 address it maps, so one client counts once whichever way the server listens.
 * "unknown" when the socket no longer knows its peer (it was destroyed).
 */
export function normaliseSourceIp(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || remoteAddress === '') return 'unknown';
  return IPV4_MAPPED.exec(remoteAddress)?.[1] ?? remoteAddress;
}

function recordedCode(settings: IpLimitOptions): string {
  if (settings.ipBlockBody === null) return settings.ipBlockCode;
  const parsed: unknown = JSON.parse(settings.ipBlockBody);
  const code = parsed !== null && typeof parsed === 'object' ? (parsed as { Code?: unknown }).Code : undefined;
  return typeof code === 'string' && code !== '' ? code : settings.ipBlockCode;
}

/** Per-address sliding windows and blocks. */
export class SourceIpGuard {
  private readonly windows = new Map<string, SlidingWindowCounter>();
  /** Address → end of its block (ms since the epoch). */
  private readonly blockedUntil = new Map<string, number>();
  private settings: IpLimitOptions;
  private code: string;

  constructor(settings: IpLimitOptions) {
    this.settings = settings;
    this.code = recordedCode(settings);
  }

  /** The settings in force. */
  get options(): IpLimitOptions {
    return { ...this.settings };
  }

  /**
   * Replaces the settings (already checked by `resolveIpLimit`). Turning the limit off lifts
   * every block and forgets the windows: with no limit there is nothing to be blocked for.
   */
  configure(settings: IpLimitOptions): void {
    this.settings = settings;
    this.code = recordedCode(settings);
    if (settings.ipLimitPerSecond === null) this.clear();
  }

  /** Counts one request from `ip` arriving at `nowMs` and decides it. */
  check(ip: string, nowMs: number): SourceIpVerdict {
    const limit = this.settings.ipLimitPerSecond;
    if (limit === null) return 'admitted';
    let window = this.windows.get(ip);
    if (!window) {
      window = new SlidingWindowCounter(1000);
      this.windows.set(ip, window);
    }
    // The window includes this request, so "limit already in the preceding second" is count > limit.
    const count = window.record(nowMs);
    const until = this.blockedUntil.get(ip);
    if (until !== undefined) {
      if (nowMs < until) return 'blocked';
      this.blockedUntil.delete(ip);
    }
    if (count <= limit) return 'admitted';
    this.blockedUntil.set(ip, nowMs + this.settings.ipBlockSeconds * 1000);
    return 'newly_blocked';
  }

  /** Addresses blocked at `nowMs`, with the end of each block (ms since the epoch). */
  blocks(nowMs: number): Map<string, number> {
    const active = new Map<string, number>();
    for (const [ip, until] of this.blockedUntil) if (until > nowMs) active.set(ip, until);
    return active;
  }

  /**
   * Lifts the block of `ip` (every address when omitted) and forgets its recent requests, so
   * that its next request starts a fresh window; returns how many blocks were in force.
   */
  clear(ip?: string, nowMs: number = Date.now()): number {
    const lifted = [...this.blocks(nowMs).keys()].filter((blocked) => ip === undefined || blocked === ip).length;
    if (ip === undefined) {
      this.blockedUntil.clear();
      this.windows.clear();
    } else {
      this.blockedUntil.delete(ip);
      this.windows.delete(ip);
    }
    return lifted;
  }

  /** The answer to a blocked request. */
  answer(requestId: string, hostId: string): IpBlockAnswer {
    const { ipBlockStatus, ipBlockCode, ipBlockBody } = this.settings;
    // The message is the block's whatever the code is set to: it is what the answer means.
    const error = { httpStatus: ipBlockStatus, code: ipBlockCode, message: apiError('Forbidden.IpBlocked').message };
    return { httpStatus: ipBlockStatus, code: this.code, body: ipBlockBody ?? JSON.stringify(errorBody(error, requestId, hostId)) };
  }
}
