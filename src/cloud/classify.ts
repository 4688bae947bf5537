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
  /**
   * Every call of the account would fail the same way (credentials refused, no permission, a
   * request shape the API does not accept): pause every batch of the account, dead-letter nothing.
   */
  | 'fatal_for_account'
  /**
   * The source IP may be blocked for calling too fast: an emergency. Pause every batch of the
   * account, dead-letter nothing, and tell the operator by how much the egress went over.
   */
  | 'ip_blocked';

/** The classifier's verdict. */
export interface FailureClass {
  action: FailureAction;
  /**
   * True when the call may have been applied although it failed (a read timeout, a connection
   * lost after sending, any 5xx that is not a definite answer). A later `not_found` for the same
   * device then cannot mean "was not registered" without other evidence.
   */
  uncertain: boolean;
  /** False for a code the table does not know: the worker watches those for a pattern. */
  documented: boolean;
}

const BY_CODE: Record<string, FailureAction> = {
  ParameterFieldCheckFailed: 'permanent',
  FindDeviceBySnError: 'not_found',
  // The CA calls' "not registered" (GetCaCertificate, the CA containment commands).
  FindCaBySnError: 'not_found',
  MqttInstanceNotFound: 'fatal_for_batch',
  MqttOwnerCheckError: 'fatal_for_batch',
  Throttling: 'throttle',
  'Throttling.User': 'throttle',
  'Throttling.Api': 'throttle',
  'Throttling.System': 'throttle',
  ServiceUnavailable: 'retry',
  InternalError: 'retry',
  SignatureNonceUsed: 'retry',
  'InvalidAccessKeyId.NotFound': 'fatal_for_account',
  'InvalidAccessKeyId.Inactive': 'fatal_for_account',
  InvalidAccessKeyId: 'fatal_for_account',
  SignatureDoesNotMatch: 'fatal_for_account',
  'InvalidTimeStamp.Expired': 'fatal_for_account',
  'InvalidSecurityToken.Expired': 'fatal_for_account',
  'InvalidSecurityToken.Malformed': 'fatal_for_account',
  'InvalidSecurityToken.MismatchWithAccessKey': 'fatal_for_account',
  IncompleteSignature: 'fatal_for_account',
  MissingAuthorization: 'fatal_for_account',
  NoPermission: 'fatal_for_account',
  // Request-shape errors: every call revoker makes is built the same way, so every call fails.
  'InvalidAction.NotFound': 'fatal_for_account',
  InvalidAction: 'fatal_for_account',
  InvalidVersion: 'fatal_for_account',
  MissingParameter: 'fatal_for_account',
  'InvalidTimeStamp.Format': 'fatal_for_account',
  UnsupportedHTTPMethod: 'fatal_for_account',
};

/** 5xx codes that are definite answers: the call was refused, nothing was applied. */
const DEFINITE_5XX = new Set(['MqttInstanceNotFound', 'MqttOwnerCheckError', 'FindDeviceBySnError', 'FindCaBySnError']);

/**
 * How a gateway may say that the source IP is blocked. The real answer is not documented
 * (DESIGN.md §1, "Rate limits"), so any code naming the IP together with a block, a deny or a
 * limit counts, and so does a 403 whose message says the address is blacklisted.
 */
export function isIpBlockAnswer(code: string, httpStatus: number | null, message: string): boolean {
  if (/ip/i.test(code) && /block|black|deny|denied|ban|limit|forbid/i.test(code)) return true;
  return httpStatus === 403 && /black-?list|ip (address )?(is |has been )?(blocked|banned)/i.test(message);
}

/** Maps a normalised failure to what the worker does next. Pure. */
export function classifyFailure(failure: ApiFailure): FailureClass {
  switch (failure.kind) {
    case 'read_timeout':
    case 'connection_lost':
    case 'non_json':
    case 'unknown':
      return { action: 'retry', uncertain: true, documented: true };
    case 'connect':
      return { action: 'retry', uncertain: false, documented: true };
    case 'api':
      break;
  }
  const status = failure.httpStatus ?? 0;
  // Any 5xx may come from a layer behind which the call was applied, unless it is a definite answer.
  const uncertain = status >= 500 && !DEFINITE_5XX.has(failure.code);
  if (isIpBlockAnswer(failure.code, failure.httpStatus, failure.message)) return { action: 'ip_blocked', uncertain, documented: true };
  const known = BY_CODE[failure.code];
  if (known !== undefined) return { action: known, uncertain: known === 'retry' || known === 'throttle' ? uncertain : false, documented: true };
  // Families the gateway uses across products.
  if (failure.code.startsWith('Throttling') || status === 429) return { action: 'throttle', uncertain, documented: true };
  if (failure.code.startsWith('Forbidden') || failure.code.startsWith('InvalidAccessKeyId') || failure.code.startsWith('InvalidSecurityToken')) {
    return { action: 'fatal_for_account', uncertain: false, documented: true };
  }
  if (status >= 500) return { action: 'retry', uncertain: true, documented: false };
  // An undocumented 4xx is about this request: retrying will not help, a person must look. The
  // worker pauses the account when the same one hits several devices in a row.
  return { action: 'permanent', uncertain: false, documented: false };
}
