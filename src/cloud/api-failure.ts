/**
 * Normalises whatever the SDK throws into one plain shape, once, so that the classifier, the
 * logs and the result records never have to poke at foreign error objects.
 */

/** How a call failed, independent of which layer produced the failure. */
export type FailureKind =
  /** The API answered with an error body (`Code`, `Message`, `RequestId`). */
  | 'api'
  /** The response did not arrive in time: the call may or may not have been applied. */
  | 'read_timeout'
  /** No connection could be made (refused, DNS, connect timeout): the call was never sent. */
  | 'connect'
  /** The connection broke after the request may have been sent (reset, hang-up). */
  | 'connection_lost'
  /** An error status with a body that is not JSON (a proxy's 502 page). */
  | 'non_json'
  /** Anything else: a bug or an SDK change; treated as transient. */
  | 'unknown';

/** A failed API call, normalised. Holds no secret: only codes, status and the API's message. */
export interface ApiFailure {
  kind: FailureKind;
  /** The API's `Code`, or the network error code (`ECONNRESET`), or a name we give (`ReadTimeout`). */
  code: string;
  /** HTTP status when a response arrived. */
  httpStatus: number | null;
  /** A one-line description, trimmed of the SDK's request dump. */
  message: string;
  /** The API's RequestId when the response carried one: what Alibaba support asks for. */
  requestId: string | null;
}

/** Network error codes that mean the request never left this machine. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Network error codes that mean the connection broke mid-call. */
const BROKEN = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_SOCKET']);

function field(value: unknown, name: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[name] : undefined;
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Keeps messages to one readable line; the SDK appends the whole URL to network errors. */
function oneLine(message: string): string {
  // The SDK appends "<METHOD> <url> failed." to a network error's message without a space.
  const first = (message.split('\n')[0] ?? '').replace(/(\S)((?:GET|POST) https?:\/\/)/, '$1; $2');
  return first.length > 300 ? `${first.slice(0, 300)}…` : first;
}

/** Turns anything thrown by an API call into an `ApiFailure`. */
export function describeApiFailure(error: unknown): ApiFailure {
  const name = str(field(error, 'name')) ?? '';
  const rawMessage = str(field(error, 'message')) ?? String(error);
  const message = oneLine(rawMessage);
  const code = str(field(error, 'code'));
  const data = field(error, 'data');
  const statusCode = field(error, 'statusCode') ?? field(data, 'statusCode');
  const httpStatus = typeof statusCode === 'number' ? statusCode : typeof statusCode === 'string' && /^\d+$/.test(statusCode) ? Number(statusCode) : null;

  if (name === 'SyntaxError') {
    // The SDK parses error bodies as JSON without a guard: an HTML error page surfaces as this.
    return { kind: 'non_json', code: 'NonJsonResponse', httpStatus, message, requestId: null };
  }
  // Only without an HTTP status: an API error whose own Code or Message mentions a timeout is an
  // API answer, and must keep its code, status and RequestId.
  if (httpStatus === null && (name === 'RequestTimeoutError' || /ReadTimeout|RequestTimeout/.test(`${code ?? ''} ${rawMessage}`))) {
    if (/ConnectTimeout/.test(rawMessage)) {
      // httpx names every socket-inactivity timeout "ConnectTimeout", including one on a kept-alive
      // socket after the request was sent: it does not prove the call was never made.
      return { kind: 'connection_lost', code: 'ConnectTimeout', httpStatus: null, message, requestId: null };
    }
    return { kind: 'read_timeout', code: 'ReadTimeout', httpStatus: null, message, requestId: null };
  }
  if (code !== null && NEVER_SENT.has(code)) {
    return { kind: 'connect', code, httpStatus: null, message, requestId: null };
  }
  if ((code !== null && BROKEN.has(code)) || /socket hang up/i.test(rawMessage)) {
    return { kind: 'connection_lost', code: code ?? 'ECONNRESET', httpStatus: null, message, requestId: null };
  }
  if (httpStatus !== null) {
    const apiCode = str(field(data, 'Code')) ?? code ?? `HTTP${httpStatus}`;
    const apiMessage = str(field(data, 'Message'));
    return {
      kind: 'api',
      code: apiCode,
      httpStatus,
      message: apiMessage !== null ? oneLine(apiMessage) : message,
      requestId: str(field(data, 'RequestId')),
    };
  }
  return { kind: 'unknown', code: code ?? (name || 'Error'), httpStatus: null, message, requestId: null };
}
