/**
 * How late this process's API calls really leave: from a call's slot to the moment its request is
 * handed to the operating system. The jitter allowance (jitter-allowance.ts) follows the worst of
 * these, so that calls leaving late can never bunch into more than a budget in one second at the
 * API (docs/DESIGN.md, "Slots on Redis' clock").
 *
 * The gate says when a call is about to go (`expect`, from `Permit.confirm`); Node's HTTP client
 * announces each request on the `http.client.request.start` diagnostics channel once it has a
 * socket, and its `finish` event says the request was handed to the OS. Calls leave in the order
 * they were confirmed (each goes through the same steps of the SDK), so requests are matched to
 * expectations first in, first out. Requests to other hosts (a credentials endpoint, say) are not
 * API calls and are left out. An expectation that no request followed within `staleMs` (the SDK
 * failed before sending) is dropped rather than matched to a later request, which would make that
 * request look late; a request that really is that late stalls the event loop too, which the
 * allowance also follows.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** Node's channel for an HTTP client request that got its socket. */
const REQUEST_START = 'http.client.request.start';

/** Delays from slots to requests on the wire, for one process. */
export class SendDelays {
  private due: number[] = [];
  private head = 0;
  private worstMs = 0;
  private subscribed = false;
  private readonly onStart = (message: unknown): void => this.requestStarted((message as { request: ClientRequest }).request);

  /**
   * @param apiHost the API's host name (without port); null counts every HTTP client request
   * @param staleMs an expectation older than this when a request starts is dropped, not matched
   */
  constructor(
    private readonly apiHost: string | null,
    private readonly staleMs = 1_000,
  ) {}

  start(): void {
    if (this.subscribed) return;
    subscribe(REQUEST_START, this.onStart);
    this.subscribed = true;
  }

  stop(): void {
    if (!this.subscribed) return;
    unsubscribe(REQUEST_START, this.onStart);
    this.subscribed = false;
    this.due = [];
    this.head = 0;
  }

  /** A call whose slot was due at `dueMs` (performance.now() clock) leaves now. */
  expect(dueMs: number): void {
    if (this.subscribed) this.due.push(dueMs);
  }

  /** The worst delay of the requests handed to the OS since the last call, ms (then reset). */
  takeWorst(): number {
    const worst = this.worstMs;
    this.worstMs = 0;
    return worst;
  }

  private requestStarted(request: ClientRequest): void {
    if (this.apiHost !== null && request.host !== this.apiHost) return;
    const now = performance.now();
    while (this.head < this.due.length && now - (this.due[this.head] as number) > this.staleMs) this.head += 1;
    if (this.head >= this.due.length) return;
    const due = this.due[this.head] as number;
    this.head += 1;
    if (this.head > 1_024 && this.head * 2 > this.due.length) {
      this.due = this.due.slice(this.head);
      this.head = 0;
    }
    request.once('finish', () => {
      this.worstMs = Math.max(this.worstMs, performance.now() - due);
    });
  }
}
