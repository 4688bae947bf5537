/**
 * The decision table from SDK error to worker action (DESIGN.md §1), one row per documented code.
 * The error objects are built the way the SDK builds them, so a row fails if either the
 * normalisation (`describeApiFailure`) or the decision (`classifyFailure`) is wrong.
 */
import { describe, it, expect } from 'vitest';
import { describeApiFailure, type ApiFailure, type FailureKind } from '../../src/cloud/api-failure.js';
import { classifyFailure, type FailureAction } from '../../src/cloud/classify.js';

const REQUEST_ID = '5C1E2B8A-0D7E-4F2A-9B11-3A6C0D9E7F21';
const URL = 'http://onsmqtt.cn-hangzhou.aliyuncs.com/?MqttInstanceId=mqtt-1&CaSn=ca-1&DeviceSn=a1b2';

/**
 * An API error as `@alicloud/openapi-client` throws it for a 4xx/5xx answer: it parses the body,
 * adds `statusCode` to it, then `$tea.newError` makes an Error whose message is
 * "<Code>: code: <status>, <Message> request id: <RequestId>", with `code`, `data` and a numeric
 * `statusCode` copied from `data.statusCode`.
 */
function sdkApiError(code: string, httpStatus: number, message = `Message of ${code}.`): Error {
  const data = {
    RequestId: REQUEST_ID,
    HostId: 'onsmqtt.cn-hangzhou.aliyuncs.com',
    Code: code,
    Message: message,
    Recommend: `https://api.aliyun.com/troubleshoot?q=${code}&product=OnsMqtt`,
    statusCode: httpStatus,
  };
  const error = new Error(`${code}: code: ${httpStatus}, ${message} request id: ${REQUEST_ID}`);
  return Object.assign(error, { code, data, description: 'undefined', accessDeniedDetail: undefined, statusCode: httpStatus });
}

/** A Node socket error after httpx appended "<METHOD> <url> failed." to its message. */
function networkError(code: string, message: string, syscall: string): Error {
  const error = Object.assign(new Error(message), { code, syscall, errno: -1 });
  error.message += `POST ${URL} failed.`;
  return error;
}

/** httpx's read timer: `append(err, 'RequestTimeout', 'ReadTimeout(ms)')` then the request suffix. */
function httpxReadTimeout(ms: number): Error {
  const error = new Error();
  error.name = 'RequestTimeoutError';
  error.message = `ReadTimeout(${ms}). POST ${URL} failed.`;
  return error;
}

/** httpx's body-read timer (`makeReadTimeoutError`). */
function httpxBodyReadTimeout(ms: number): Error {
  const error = new Error();
  error.name = 'RequestTimeoutError';
  error.message = `ReadTimeout: ${ms}. POST /?DeviceSn=a1b2 failed.`;
  return error;
}

/** httpx's socket 'timeout' handler: named ConnectTimeout whatever phase the call was in. */
function httpxConnectTimeout(): Error {
  const error = new Error();
  error.name = 'RequestTimeoutError';
  error.message = `ConnectTimeout: Connect ${URL} failed.`;
  return error;
}

/** What the SDK throws when an error status comes with an HTML body: JSON.parse's own error. */
function nonJsonError(): Error {
  try {
    JSON.parse('<html>\r\n<head><title>502 Bad Gateway</title></head></html>');
  } catch (error) {
    return error as Error;
  }
  throw new Error('JSON.parse accepted HTML');
}

interface Row {
  name: string;
  error: unknown;
  action: FailureAction;
  uncertain: boolean;
  kind: FailureKind;
  code: string;
  httpStatus: number | null;
  requestId: string | null;
}

function apiRow(code: string, httpStatus: number, action: FailureAction, uncertain: boolean): Row {
  return { name: `${code} ${httpStatus}`, error: sdkApiError(code, httpStatus), action, uncertain, kind: 'api', code, httpStatus, requestId: REQUEST_ID };
}

/** DESIGN.md §1, first table: onsmqtt's documented errors. */
const ONSMQTT_ROWS: Row[] = [
  apiRow('ParameterFieldCheckFailed', 400, 'permanent', false),
  apiRow('FindDeviceBySnError', 500, 'not_found', false),
  apiRow('MqttInstanceNotFound', 500, 'fatal_for_batch', false),
  apiRow('MqttOwnerCheckError', 500, 'fatal_for_batch', false),
];

/** DESIGN.md §1, second table: the gateway errors common to Alibaba Cloud APIs. */
const GATEWAY_ROWS: Row[] = [
  apiRow('Throttling', 400, 'throttle', false),
  apiRow('Throttling', 429, 'throttle', false),
  apiRow('Throttling.User', 400, 'throttle', false),
  apiRow('Throttling.User', 429, 'throttle', false),
  apiRow('Throttling.Api', 400, 'throttle', false),
  apiRow('Throttling.Api', 429, 'throttle', false),
  // Any 5xx that is not a definite answer may have been applied behind the layer that answered.
  apiRow('ServiceUnavailable', 503, 'retry', true),
  // A 500 may come after the backend applied the delete: the result is unknown.
  apiRow('InternalError', 500, 'retry', true),
  apiRow('SomeUndocumentedBackendError', 500, 'retry', true),
  apiRow('SomeUndocumentedGatewayError', 502, 'retry', true),
  apiRow('SignatureNonceUsed', 400, 'retry', false),
  apiRow('InvalidAccessKeyId.NotFound', 404, 'fatal_for_account', false),
  apiRow('InvalidAccessKeyId.Inactive', 400, 'fatal_for_account', false),
  apiRow('SignatureDoesNotMatch', 400, 'fatal_for_account', false),
  apiRow('Forbidden.RAM', 403, 'fatal_for_account', false),
  apiRow('InvalidTimeStamp.Expired', 400, 'fatal_for_account', false),
  // Issue 11: refusals that every call of the account would get pause the account.
  apiRow('NoPermission', 403, 'fatal_for_account', false),
  apiRow('InvalidAction.NotFound', 404, 'fatal_for_account', false),
  apiRow('InvalidVersion', 400, 'fatal_for_account', false),
  apiRow('MissingParameter', 400, 'fatal_for_account', false),
  apiRow('InvalidTimeStamp.Format', 400, 'fatal_for_account', false),
  // Issue 12: a blocked source IP (the emulator's default answer; the real one is undocumented).
  apiRow('Forbidden.IpBlocked', 403, 'ip_blocked', false),
];

const NETWORK_ROWS: Row[] = [
  {
    name: 'ECONNRESET after sending',
    error: networkError('ECONNRESET', 'read ECONNRESET', 'read'),
    action: 'retry',
    uncertain: true,
    kind: 'connection_lost',
    code: 'ECONNRESET',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'socket hang up (Node names it ECONNRESET)',
    error: networkError('ECONNRESET', 'socket hang up', 'read'),
    action: 'retry',
    uncertain: true,
    kind: 'connection_lost',
    code: 'ECONNRESET',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'ECONNREFUSED: never sent',
    error: networkError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9', 'connect'),
    action: 'retry',
    uncertain: false,
    kind: 'connect',
    code: 'ECONNREFUSED',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'ENOTFOUND: never sent',
    error: networkError('ENOTFOUND', 'getaddrinfo ENOTFOUND onsmqtt.nowhere.example', 'getaddrinfo'),
    action: 'retry',
    uncertain: false,
    kind: 'connect',
    code: 'ENOTFOUND',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'read timeout (response timer)',
    error: httpxReadTimeout(500),
    action: 'retry',
    uncertain: true,
    kind: 'read_timeout',
    code: 'ReadTimeout',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'read timeout (body timer)',
    error: httpxBodyReadTimeout(500),
    action: 'retry',
    uncertain: true,
    kind: 'read_timeout',
    code: 'ReadTimeout',
    httpStatus: null,
    requestId: null,
  },
  {
    // httpx reports socket inactivity as ConnectTimeout even on a kept-alive socket after the
    // request went out: it does not prove the call was never made.
    name: 'httpx ConnectTimeout (socket inactivity, possibly after sending)',
    error: httpxConnectTimeout(),
    action: 'retry',
    uncertain: true,
    kind: 'connection_lost',
    code: 'ConnectTimeout',
    httpStatus: null,
    requestId: null,
  },
  {
    name: 'non-JSON error body (SyntaxError)',
    error: nonJsonError(),
    action: 'retry',
    uncertain: true,
    kind: 'non_json',
    code: 'NonJsonResponse',
    httpStatus: null,
    requestId: null,
  },
];

describe('classifyFailure(describeApiFailure(error)) for every documented error', () => {
  it.each(ONSMQTT_ROWS.map((row) => [row.name, row] as const))('onsmqtt %s', (_name, row) => {
    const failure = describeApiFailure(row.error);
    expect(failure).toMatchObject({ kind: row.kind, code: row.code, httpStatus: row.httpStatus, requestId: row.requestId });
    expect(classifyFailure(failure)).toMatchObject({ action: row.action, uncertain: row.uncertain });
  });

  it.each(GATEWAY_ROWS.map((row) => [row.name, row] as const))('gateway %s', (_name, row) => {
    const failure = describeApiFailure(row.error);
    expect(failure).toMatchObject({ kind: row.kind, code: row.code, httpStatus: row.httpStatus, requestId: row.requestId });
    expect(classifyFailure(failure)).toMatchObject({ action: row.action, uncertain: row.uncertain });
  });

  it.each(NETWORK_ROWS.map((row) => [row.name, row] as const))('network: %s', (_name, row) => {
    const failure = describeApiFailure(row.error);
    expect(failure).toMatchObject({ kind: row.kind, code: row.code, httpStatus: row.httpStatus, requestId: row.requestId });
    expect(classifyFailure(failure)).toMatchObject({ action: row.action, uncertain: row.uncertain });
  });
});

describe('describeApiFailure', () => {
  it("takes the API's own Message, not the SDK's composed one", () => {
    const failure = describeApiFailure(sdkApiError('FindDeviceBySnError', 500, 'Failed to find the device certificate by the SN.'));
    expect(failure.message).toBe('Failed to find the device certificate by the SN.');
  });

  it('reads the status from data.statusCode when the error itself has none', () => {
    const error = sdkApiError('ServiceUnavailable', 503) as Error & { statusCode?: number };
    delete error.statusCode;
    expect(describeApiFailure(error)).toMatchObject({ kind: 'api', code: 'ServiceUnavailable', httpStatus: 503 });
  });

  it('keeps one line of a multi-line message and caps its length', () => {
    const error = networkError('ECONNRESET', `read ECONNRESET\n${'x'.repeat(50)}`, 'read');
    expect(describeApiFailure(error).message).toBe('read ECONNRESET');
    const long = describeApiFailure(new Error('y'.repeat(1000)));
    expect(long.message.length).toBeLessThanOrEqual(301);
    expect(long.message.endsWith('…')).toBe(true);
  });

  it('turns a thrown non-Error into an unknown failure that is retried as uncertain', () => {
    const failure = describeApiFailure('something odd');
    expect(failure).toEqual({ kind: 'unknown', code: 'Error', httpStatus: null, message: 'something odd', requestId: null });
    expect(classifyFailure(failure)).toMatchObject({ action: 'retry', uncertain: true });
  });

  it('keeps the code, status and RequestId of an API answer whose Code or Message names a timeout', () => {
    expect(describeApiFailure(sdkApiError('RequestTimeout', 408))).toMatchObject({ kind: 'api', code: 'RequestTimeout', httpStatus: 408, requestId: REQUEST_ID });
    expect(describeApiFailure(sdkApiError('InternalError', 500, 'ReadTimeout talking to backend'))).toMatchObject({ kind: 'api', code: 'InternalError', httpStatus: 500, requestId: REQUEST_ID });
  });

  it('does not mistake an API error whose message mentions a timeout for a read timeout', () => {
    const failure = describeApiFailure(sdkApiError('InvalidTimeStamp.Expired', 400, 'Specified time stamp or date value is expired.'));
    expect(failure.kind).toBe('api');
  });
});

describe('classifyFailure beyond the documented codes', () => {
  const api = (code: string, httpStatus: number | null): ApiFailure => ({ kind: 'api', code, httpStatus, message: '', requestId: null });

  it.each([
    ['Throttling.System', 400, 'throttle', false],
    ['SomethingNew', 429, 'throttle', false],
    ['Throttling.Whatever', 400, 'throttle', false],
    ['Forbidden.AccessKeyDisabled', 403, 'fatal_for_account', false],
    ['InvalidSecurityToken.Expired', 400, 'fatal_for_account', false],
    ['UnknownValidationError', 400, 'permanent', false],
    ['UnknownUnavailable', 503, 'retry', true],
    ['Throttling.IpLimitExceeded', 400, 'ip_blocked', false],
    ['IpBlacklisted', 403, 'ip_blocked', false],
    ['Forbidden.IPDenied', 403, 'ip_blocked', false],
  ] as const)('%s %s → %s', (code, httpStatus, action, uncertain) => {
    expect(classifyFailure(api(code, httpStatus))).toMatchObject({ action, uncertain });
  });

  it('a retryable code that arrives with a 4xx status is certain', () => {
    expect(classifyFailure(api('InternalError', 400))).toMatchObject({ action: 'retry', uncertain: false });
  });

  it('a 403 whose message says the address is blacklisted is an IP block whatever its code', () => {
    const failure: ApiFailure = { kind: 'api', code: 'Forbidden', httpStatus: 403, message: 'Your IP address has been blocked', requestId: null };
    expect(classifyFailure(failure).action).toBe('ip_blocked');
    expect(classifyFailure({ ...failure, message: 'The request source is in the blacklist.' }).action).toBe('ip_blocked');
    expect(classifyFailure({ ...failure, message: 'User not authorized to operate on the specified resource.' }).action).toBe('fatal_for_account');
  });

  it('marks codes outside the table as undocumented, so the worker can watch for a pattern', () => {
    expect(classifyFailure(api('UnknownValidationError', 400)).documented).toBe(false);
    expect(classifyFailure(api('SomeUndocumentedBackendError', 500)).documented).toBe(false);
    expect(classifyFailure(api('ParameterFieldCheckFailed', 400)).documented).toBe(true);
  });
});
