// The unit of work the producers hand to the queue, and the shape of an input row they refused.

import type { RevocationAction } from '../cloud/certificate-api.js';

/** What revoker does to a certificate (defined with the API client that performs it). */
export type { RevocationAction };

/** Every action, in a stable order (for validation messages and CLI choices). */
export const REVOCATION_ACTIONS: readonly RevocationAction[] = ['delete', 'inactivate'];

/** One device certificate to revoke, already validated and normalised (trimmed). */
export interface DeviceRequest {
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  /**
   * Where the device came from: for a CSV file, the 1-based physical line on which its record
   * starts; for a webhook body, the 0-based index of its entry in `deviceSns`.
   */
  line: number;
}

/** An input row that was refused; it belongs in the batch's report with outcome `rejected`. */
export interface RejectedRow {
  /** Same meaning as {@link DeviceRequest.line}. */
  line: number;
  /** A short sentence naming the column and the problem; echoed values are cut to 64 characters. */
  reason: string;
  /** The (trimmed, possibly truncated) device serial when one could be read. */
  deviceSn?: string;
}

/** One item of any input, in input order: a device to revoke, or a row refused with its reason. */
export type InputItem = { kind: 'device'; request: DeviceRequest } | { kind: 'rejected'; row: RejectedRow };
