/** The record of every API call the emulator answered (or deliberately did not). */
import type { FaultKind } from './faults.js';

/** One API call as the emulator saw it. */
export interface CallRecord {
  /** Arrival on the server clock (Date.now()), in ms. */
  atMs: number;
  /** x-acs-action as sent ("" if absent). */
  action: string;
  /**
   * Credential from the Authorization header ("" if none could be read). Not verified for a
   * request refused by the source IP block, which is answered before authentication.
   */
  accessKeyId: string;
  /** The address the request came from (IPv4-mapped IPv6 written as IPv4). */
  sourceIp: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  /**
   * Status of the answer. 0 when the connection was dropped or the call was held without an
   * answer (`timeout_before_apply`). For `timeout`, the status of the answer that was held back.
   */
  httpStatus: number;
  /**
   * "OK" for success, else the error code sent; `ConnectionDropped` when the socket was
   * destroyed, `NoResponse` for `timeout_before_apply`, `BadGateway` for the HTML 502.
   */
  code: string;
  requestId: string;
  /** Whether the action ran to success against the registry (a delete happened, a read was served). */
  applied: boolean;
  /** The injected fault, `none` for normal behaviour. */
  fault: FaultKind;
}

/** A bounded, append-only list of call records: the oldest are dropped past `limit`. */
export class CallLog {
  private records: CallRecord[] = [];

  constructor(private readonly limit: number) {}

  append(record: CallRecord): void {
    if (this.limit <= 0) return;
    this.records.push(record);
    // Drop in chunks of 10% so that trimming stays amortised O(1) per call.
    if (this.records.length > this.limit) this.records = this.records.slice(this.records.length - Math.floor(this.limit * 0.9));
  }

  /** A copy of the records kept, oldest first. */
  all(): CallRecord[] {
    return this.records.slice();
  }

  clear(): void {
    this.records = [];
  }
}
