/**
 * The one decision table from API outcome to worker action (DESIGN.md §1). Everything that
 * needs to know "what now?" after a call asks `classifyFailure`; nothing else inspects codes.
 */
import type { ApiFailure } from './api-failure.js';

/** What the worker does after a failed call. */
export type FailureAction =
  /** Transient: retry with backoff; counts as an attempt. */
  | 'retry'
  /** Throttled: retry with backoff and slow the account-wide rate; not an attempt. */
  | 'throttle'
  /** The certificate is not registered: terminal, no retry. */
  | 'not_found'
  /** Wrong for this device only: dead-letter. */
  | 'permanent'
  /** Wrong for the whole instance: pause the batch, dead-letter nothing. */
  | 'fatal_for_batch'
  /** The credentials are unusable: pause every batch of the account, dead-letter nothing. */
  | 'fatal_for_credentials';

/** The classifier's verdict. */
export interface FailureClass {
  action: FailureAction;
  /**
   * True when the call may have been applied although it failed (a read timeout, a connection
   * lost after sending, an ambiguous 5xx). A later `not_found` for the same device then means
   * "deleted, confirmed by absence", never "was not registered".
   */
  uncertain: boolean;
}

const BY_CODE: Record<string, FailureAction> = {
  ParameterFieldCheckFailed: 'permanent',
  FindDeviceBySnError: 'not_found',
  MqttInstanceNotFound: 'fatal_for_batch',
  MqttOwnerCheckError: 'fatal_for_batch',
  Throttling: 'throttle',
  'Throttling.User': 'throttle',
  'Throttling.Api': 'throttle',
  'Throttling.System': 'throttle',
  ServiceUnavailable: 'retry',
  InternalError: 'retry',
  SignatureNonceUsed: 'retry',
  'InvalidAccessKeyId.NotFound': 'fatal_for_credentials',
  'InvalidAccessKeyId.Inactive': 'fatal_for_credentials',
  InvalidAccessKeyId: 'fatal_for_credentials',
  SignatureDoesNotMatch: 'fatal_for_credentials',
  'InvalidTimeStamp.Expired': 'fatal_for_credentials',
  'InvalidSecurityToken.Expired': 'fatal_for_credentials',
  'InvalidSecurityToken.Malformed': 'fatal_for_credentials',
  'InvalidSecurityToken.MismatchWithAccessKey': 'fatal_for_credentials',
  IncompleteSignature: 'fatal_for_credentials',
  MissingAuthorization: 'fatal_for_credentials',
};

/** Codes whose failure proves nothing was applied, although they arrive as 5xx. */
const NOT_APPLIED = new Set(['ServiceUnavailable', 'MqttInstanceNotFound', 'MqttOwnerCheckError', 'FindDeviceBySnError']);

/** Maps a normalised failure to what the worker does next. Pure. */
export function classifyFailure(failure: ApiFailure): FailureClass {
  switch (failure.kind) {
    case 'read_timeout':
    case 'connection_lost':
    case 'non_json':
    case 'unknown':
      return { action: 'retry', uncertain: true };
    case 'connect':
      return { action: 'retry', uncertain: false };
    case 'api':
      break;
  }
  const known = BY_CODE[failure.code];
  if (known !== undefined) {
    const uncertain = known === 'retry' && (failure.httpStatus ?? 0) >= 500 && !NOT_APPLIED.has(failure.code);
    return { action: known, uncertain };
  }
  // Families the gateway uses across products.
  if (failure.code.startsWith('Throttling') || failure.httpStatus === 429) return { action: 'throttle', uncertain: false };
  if (failure.code.startsWith('Forbidden')) return { action: 'fatal_for_credentials', uncertain: false };
  if (failure.code.startsWith('InvalidAccessKeyId') || failure.code.startsWith('InvalidSecurityToken')) {
    return { action: 'fatal_for_credentials', uncertain: false };
  }
  if ((failure.httpStatus ?? 0) >= 500) return { action: 'retry', uncertain: failure.httpStatus !== 503 };
  // An undocumented 4xx is about this request: retrying will not help, a person must look.
  return { action: 'permanent', uncertain: false };
}
