// Validation of the JSON body of `POST /v1/revocations` (DESIGN §3 Webhook). Pure: the server
// verifies the signature and parses JSON, then hands the value here.
import { parsePriority, type BatchPriority } from '../queue/priority.js';
import type { DeviceRequest, RejectedRow, RevocationAction } from './device-request.js';
import { REVOCATION_ACTIONS } from './device-request.js';
import {
  normaliseIdentifier,
  truncateForEcho,
  validateCaSn,
  validateDeviceSn,
  validateInstanceId,
} from './device-validation.js';
import { controlCharacterProblem } from './free-text.js';

/** Options of {@link parseRevocationBody}. */
export interface ParseRevocationOptions {
  /** Most entries one delivery may carry; more is answered 413 `too_many_devices`. */
  maxDevices: number;
}

/** A valid revocation request: the devices to enqueue and the entries refused individually. */
export interface ParsedRevocation {
  /** `delete` when the body has no action. */
  action: RevocationAction;
  /** Free text for the batch record ("key leak 2024-05"); no control characters. */
  reason?: string;
  /** Batch name shown by `status` and the dashboard; no control characters. */
  name?: string;
  /** http(s) URL to notify when the batch finishes. */
  callbackUrl?: string;
  /** `urgent`, `normal` or `bulk`; absent means normal. */
  priority?: BatchPriority;
  /** Accepted devices; `line` is the entry's 0-based index in `deviceSns`. */
  requests: DeviceRequest[];
  /** Entries refused one by one (the delivery is still answered 202 with this list). */
  rejected: RejectedRow[];
}

/** Stable error codes of a refused body, in the answer's `code`. */
export type RevocationBodyErrorCode =
  | 'invalid_body'
  | 'invalid_action'
  | 'missing_devices'
  | 'too_many_devices'
  | 'invalid_field';

/** The outcome of {@link parseRevocationBody}: the parsed request, or the HTTP answer refusing it. */
export type ParseRevocationResult =
  | { ok: true; value: ParsedRevocation }
  | { ok: false; code: RevocationBodyErrorCode; message: string; status: 400 | 413 };

/** Longest accepted free-text fields: enough for a sentence, small enough for every record. */
export const MAX_REASON_CHARS = 1000;
export const MAX_NAME_CHARS = 200;
export const MAX_CALLBACK_URL_CHARS = 2048;

type PlainObject = Record<string, unknown>;

/** Only literal objects (as JSON.parse makes them): never class instances, arrays or exotic prototypes. */
function isPlainObject(value: unknown): value is PlainObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Reads an own property only: `constructor`, `__proto__` or `toString` inherited from
 * Object.prototype must never be mistaken for a field of the body.
 */
function own(object: PlainObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function refuse(code: RevocationBodyErrorCode, message: string, status: 400 | 413 = 400): ParseRevocationResult {
  return { ok: false, code, message, status };
}

/** A string field that may be absent; null and "" count as absent. Undefined result with an error message on a wrong type. */
function optionalString(object: PlainObject, key: string): { value?: string; error?: string } {
  const value = own(object, key);
  if (value === undefined || value === null) return {};
  if (typeof value !== 'string') return { error: `${key} must be a string, got ${describeType(value)}` };
  const trimmed = value.trim();
  return trimmed === '' ? {} : { value: trimmed };
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * Validates a webhook body `{"mqttInstanceId","caSn","deviceSns":[…],"action","reason"}` where each
 * entry of `deviceSns` is a serial string or `{deviceSn, caSn?, mqttInstanceId?}` overriding the
 * top-level values. The body as a whole is refused (400, or 413 beyond `maxDevices` entries) when
 * it is not an object, the action is unknown, `deviceSns` is missing or empty, or a top-level field
 * is malformed; a bad entry only lands in `rejected` and the others are accepted. Unknown keys are
 * ignored; nothing from the body is ever merged into another object.
 */
export function parseRevocationBody(body: unknown, options: ParseRevocationOptions): ParseRevocationResult {
  if (!isPlainObject(body)) {
    return refuse('invalid_body', `the body must be a JSON object, got ${describeType(body)}`);
  }

  const rawAction = own(body, 'action');
  let action: RevocationAction = 'delete';
  if (rawAction !== undefined && rawAction !== null) {
    const known = REVOCATION_ACTIONS.find((candidate) => candidate === rawAction);
    if (known === undefined) {
      const shown = typeof rawAction === 'string' ? JSON.stringify(truncateForEcho(rawAction)) : describeType(rawAction);
      return refuse('invalid_action', `action must be "delete" or "inactivate", got ${shown}`);
    }
    action = known;
  }

  const deviceSns = own(body, 'deviceSns');
  if (!Array.isArray(deviceSns) || deviceSns.length === 0) {
    return refuse(
      'missing_devices',
      deviceSns === undefined
        ? 'deviceSns is missing: give a non-empty array of device serial numbers'
        : Array.isArray(deviceSns)
          ? 'deviceSns is empty'
          : `deviceSns must be an array, got ${describeType(deviceSns)}`,
    );
  }
  if (deviceSns.length > options.maxDevices) {
    return refuse(
      'too_many_devices',
      `deviceSns has ${deviceSns.length} entries; at most ${options.maxDevices} are accepted per delivery`,
      413,
    );
  }

  const fields = {
    reason: optionalString(body, 'reason'),
    name: optionalString(body, 'name'),
    callbackUrl: optionalString(body, 'callbackUrl'),
    caSn: optionalString(body, 'caSn'),
    mqttInstanceId: optionalString(body, 'mqttInstanceId'),
  };
  for (const field of Object.values(fields)) {
    if (field.error !== undefined) return refuse('invalid_field', field.error);
  }
  const { reason, name, callbackUrl, caSn, mqttInstanceId } = fields;
  if (reason.value !== undefined && reason.value.length > MAX_REASON_CHARS) {
    return refuse('invalid_field', `reason is longer than ${MAX_REASON_CHARS} characters (${reason.value.length})`);
  }
  if (name.value !== undefined && name.value.length > MAX_NAME_CHARS) {
    return refuse('invalid_field', `name is longer than ${MAX_NAME_CHARS} characters (${name.value.length})`);
  }
  // Both end up on operators' terminals (`revoker status`, `batch list`): no escape sequences.
  for (const [field, value] of [['name', name.value], ['reason', reason.value]] as const) {
    const problem = value === undefined ? null : controlCharacterProblem(field, value);
    if (problem !== null) return refuse('invalid_field', problem);
  }
  if (
    callbackUrl.value !== undefined &&
    (callbackUrl.value.length > MAX_CALLBACK_URL_CHARS || !isHttpUrl(callbackUrl.value))
  ) {
    return refuse('invalid_field', `callbackUrl must be an http(s) URL of at most ${MAX_CALLBACK_URL_CHARS} characters`);
  }
  // Top-level identifiers apply to every entry: a bad one refuses the delivery.
  const caProblem = caSn.value === undefined ? null : validateCaSn(caSn.value);
  if (caProblem !== null) return refuse('invalid_field', `caSn: ${caProblem}`);
  const instanceProblem = mqttInstanceId.value === undefined ? null : validateInstanceId(mqttInstanceId.value);
  if (instanceProblem !== null) return refuse('invalid_field', `mqttInstanceId: ${instanceProblem}`);

  const priorityField = Object.prototype.hasOwnProperty.call(body, 'priority') ? (body as Record<string, unknown>).priority : undefined;
  const priority = priorityField === undefined || priorityField === null ? undefined : parsePriority(priorityField);
  if (priority === null) return refuse('invalid_field', 'priority must be "urgent", "normal" or "bulk"');

  const requests: DeviceRequest[] = [];
  const rejected: RejectedRow[] = [];
  deviceSns.forEach((entry: unknown, index) => {
    const result = readEntry(entry, index, caSn.value, mqttInstanceId.value);
    if ('reason' in result) rejected.push(result);
    else requests.push(result);
  });

  const value: ParsedRevocation = { action, requests, rejected };
  if (reason.value !== undefined) value.reason = reason.value;
  if (name.value !== undefined) value.name = name.value;
  if (callbackUrl.value !== undefined) value.callbackUrl = callbackUrl.value;
  if (priority !== undefined) value.priority = priority;
  return { ok: true, value };
}

function readEntry(
  entry: unknown,
  index: number,
  defaultCaSn: string | undefined,
  defaultInstanceId: string | undefined,
): DeviceRequest | RejectedRow {
  let rawDeviceSn: unknown = entry;
  let entryCaSn: { value?: string; error?: string } = {};
  let entryInstanceId: { value?: string; error?: string } = {};
  if (isPlainObject(entry)) {
    rawDeviceSn = own(entry, 'deviceSn');
    entryCaSn = optionalString(entry, 'caSn');
    entryInstanceId = optionalString(entry, 'mqttInstanceId');
  } else if (typeof entry !== 'string') {
    return {
      line: index,
      reason: `entry must be a device serial string or an object with deviceSn, got ${describeType(entry)}`,
    };
  }
  if (typeof rawDeviceSn !== 'string') {
    return {
      line: index,
      reason:
        rawDeviceSn === undefined ? 'deviceSn is missing' : `deviceSn must be a string, got ${describeType(rawDeviceSn)}`,
    };
  }
  const deviceSn = normaliseIdentifier(rawDeviceSn);
  const problems: string[] = [];
  const deviceProblem = validateDeviceSn(deviceSn);
  if (deviceProblem !== null) problems.push(deviceProblem);
  if (entryCaSn.error !== undefined) problems.push(entryCaSn.error);
  if (entryInstanceId.error !== undefined) problems.push(entryInstanceId.error);
  const caSn = entryCaSn.value ?? defaultCaSn;
  if (caSn === undefined) problems.push('CaSn is missing: give caSn at the top level or on the entry');
  else if (entryCaSn.value !== undefined) {
    const problem = validateCaSn(caSn);
    if (problem !== null) problems.push(problem);
  }
  const mqttInstanceId = entryInstanceId.value ?? defaultInstanceId;
  if (mqttInstanceId === undefined) {
    problems.push('MqttInstanceId is missing: give mqttInstanceId at the top level or on the entry');
  } else if (entryInstanceId.value !== undefined) {
    const problem = validateInstanceId(mqttInstanceId);
    if (problem !== null) problems.push(problem);
  }
  if (problems.length > 0 || caSn === undefined || mqttInstanceId === undefined) {
    const row: RejectedRow = { line: index, reason: problems.join('; ') };
    if (deviceSn !== '') row.deviceSn = truncateForEcho(deviceSn);
    return row;
  }
  return { mqttInstanceId, caSn, deviceSn, line: index };
}
