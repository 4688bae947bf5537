/**
 * How late this process's API calls really leave: from a call's slot to the moment its request is
 * handed to the operating system. The jitter allowance (jitter-allowance.ts) follows the worst of
 * these, so that calls leaving late can never bunch into more than a budget in one second at the
 * API (docs/DESIGN.md, "Slots on Redis' clock").
 *
 * A gate says when a call is about to go (`expect`, from `Permit.confirm`); Node's HTTP client
 * announces each request on the `http.client.request.start` diagnostics channel once it has a
 * socket, and its `finish` event says the request was handed to the OS. Calls leave in the order
 * they were confirmed (each goes through the same steps of the SDK), so requests are matched to
 * expectations first in, first out. Requests to other hosts (a credentials endpoint, say) are not
 * API calls and are left out. An expectation that no request followed within `staleMs` (the SDK
 * failed before sending) is dropped rather than matched to a later request, which would make that
 * request look late; a request that really is that late stalls the event loop too, which the
 * allowance also follows.
 *
 * One queue of expectations per process, shared by every gate in it (the console can list two CAs
 * at once, each through a gate of its own): requests cannot tell which gate they belong to, and
 * every call of the process shares its event loop, so each gate hears every delay.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** Node's channel for an HTTP client request that got its socket. */
const REQUEST_START = 'http.client.request.start';

/** The gates' meters listening in this process, and the calls they expect, oldest first. */
const listeners = new Set<SendDelays>();
let due: number[] = [];
let head = 0;

function requestStarted(request: ClientRequest): void {
  let apiCall = false;
  let staleMs = Infinity;
  for (const listener of listeners) {
    if (listener.apiHost === null || listener.apiHost === request.host) apiCall = true;
    staleMs = Math.min(staleMs, listener.staleMs);
  }
  if (!apiCall) return;
  const now = performance.now();
  while (head < due.length && now - (due[head] as number) > staleMs) head += 1;
  if (head >= due.length) return;
  const dueMs = due[head] as number;
  head += 1;
  if (head > 1_024 && head * 2 > due.length) {
    due = due.slice(head);
    head = 0;
  }
  request.once('finish', () => {
    const delayMs = performance.now() - dueMs;
    for (const listener of listeners) listener.record(delayMs);
  });
}

const onStart = (message: unknown): void => requestStarted((message as { request: ClientRequest }).request);

/** One gate's view of the delays from slots to requests on the wire in this process. */
export class SendDelays {
  private worstMs = 0;

  /**
   * @param apiHost the API's host name (without port); null counts every HTTP client request
   * @param staleMs an expectation older than this when a request starts is dropped, not matched
   */
  constructor(
    readonly apiHost: string | null,
    readonly staleMs = 1_000,
  ) {}

  start(): void {
    if (listeners.has(this)) return;
    listeners.add(this);
    if (listeners.size === 1) subscribe(REQUEST_START, onStart);
  }

  stop(): void {
    if (!listeners.delete(this)) return;
    if (listeners.size > 0) return;
    unsubscribe(REQUEST_START, onStart);
    due = [];
    head = 0;
  }

  /** A call whose slot was due at `dueMs` (performance.now() clock) leaves now. */
  expect(dueMs: number): void {
    if (listeners.has(this)) due.push(dueMs);
  }

  /** A request of this process went out `delayMs` after its slot. */
  record(delayMs: number): void {
    this.worstMs = Math.max(this.worstMs, delayMs);
  }

  /** The worst delay of the requests handed to the OS since the last call, ms (then reset). */
  takeWorst(): number {
    const worst = this.worstMs;
    this.worstMs = 0;
    return worst;
  }
}
