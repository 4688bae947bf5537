/**
 * Pure pieces of Alibaba Cloud's V3 request signature (`ACS3-HMAC-SHA256`), as the onsmqtt
 * gateway checks it. Written from the algorithm in DESIGN.md §1, not from the SDK's code, so a
 * test through the real SDK is a real cross-check of both.
 *
 * Canonical request =
 *   METHOD \n "/" \n canonical query \n canonical headers (each "name:value\n") \n
 *   signed header names joined by ";" \n hex sha256 of the body
 * String to sign = "ACS3-HMAC-SHA256\n" + hex sha256(canonical request)
 * Signature      = hex HMAC-SHA256(raw AccessKey secret, string to sign)
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The only algorithm the emulator accepts (the SDK's default for these APIs). */
export const ACS3_ALGORITHM = 'ACS3-HMAC-SHA256';

/** Headers in this form: what node:http gives (`IncomingMessage.headers`) or a plain map. */
export type HeaderMap = Readonly<Record<string, string | readonly string[] | undefined>>;

/** A parsed `Authorization` header. */
export interface ParsedAuthorization {
  algorithm: string;
  accessKeyId: string;
  /** Lower-cased header names, in the order the client listed them. */
  signedHeaders: string[];
  signature: string;
}

/** Everything the signature covers, taken from the request as it arrived. */
export interface SignedRequestParts {
  method: string;
  /** Path without the query string, e.g. "/". */
  pathname: string;
  /** The raw query string as it came over the wire, without the leading "?". */
  rawQuery: string;
  headers: HeaderMap;
  /** Names of the headers to canonicalise (lower-case). */
  signedHeaders: readonly string[];
  /** Hex sha256 of the body, as the client declared it in x-acs-content-sha256. */
  hashedPayload: string;
}

/**
 * encodeURIComponent plus the five characters it leaves alone that RFC 3986 reserves
 * (`!'()*`), which is the percent-encoding the V3 canonical query uses.
 */
export function acsPercentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Decodes one query component the way a form decoder does ("+" is a space). */
function decodeQueryComponent(component: string): string {
  const spaced = component.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // A malformed escape (e.g. "%zz") stays as sent: the signature check then fails cleanly
    // instead of the server throwing.
    return spaced;
  }
}

/**
 * Splits a wire query string into decoded `[key, value]` pairs, in wire order. A key without
 * "=" has the value "".
 */
export function parseQueryPairs(rawQuery: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (rawQuery === '') return pairs;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    pairs.push([decodeQueryComponent(key), decodeQueryComponent(value)]);
  }
  return pairs;
}

/**
 * The canonical query string: the DECODED pairs sorted by key (UTF-16 code-unit order, which
 * is what a JavaScript client's `sort()` produces), each `key=encode(value)`, joined by "&".
 * Keys are left as they are: the V3 clients do not encode them (parameter names are ASCII).
 */
export function canonicalQueryString(pairs: ReadonlyArray<readonly [string, string]>): string {
  const sorted = [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sorted.map(([key, value]) => `${key}=${acsPercentEncode(value)}`).join('&');
}

/** True for the header names a V3 client signs: host, content-type and every x-acs-*. */
export function isSignableHeader(lowerName: string): boolean {
  return lowerName === 'host' || lowerName === 'content-type' || lowerName.startsWith('x-acs-');
}

function headerValues(headers: HeaderMap, lowerName: string): string[] {
  const values: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() !== lowerName || value === undefined) continue;
    if (typeof value === 'string') values.push(value);
    else values.push(...value);
  }
  return values;
}

/**
 * Canonical header block: for each named header (lower-cased, sorted), one line
 * `name:value\n` with the value trimmed (several values of one header are sorted and joined by
 * ","). An absent header contributes an empty value, so naming a header that was not sent
 * fails the signature rather than being skipped.
 */
export function canonicalHeaders(headers: HeaderMap, signedHeaders: readonly string[]): string {
  const names = [...new Set(signedHeaders.map((n) => n.toLowerCase()))].sort();
  return names
    .map((name) => `${name}:${headerValues(headers, name).map((v) => v.trim()).sort().join(',')}\n`)
    .join('');
}

/** The names a client would sign for these headers: the signable ones, lower-cased, sorted. */
export function signableHeaderNames(headers: HeaderMap): string[] {
  const names = new Set<string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (isSignableHeader(lower)) names.add(lower);
  }
  return [...names].sort();
}

/** Builds the canonical request string (see the file comment). */
export function canonicalRequest(parts: SignedRequestParts): string {
  const names = [...new Set(parts.signedHeaders.map((n) => n.toLowerCase()))].sort();
  return [
    parts.method.toUpperCase(),
    parts.pathname === '' ? '/' : parts.pathname,
    canonicalQueryString(parseQueryPairs(parts.rawQuery)),
    canonicalHeaders(parts.headers, names),
    names.join(';'),
    parts.hashedPayload,
  ].join('\n');
}

/** Hex sha256 of a string or bytes. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `ACS3-HMAC-SHA256\n` + hex sha256 of the canonical request. */
export function stringToSign(canonical: string): string {
  return `${ACS3_ALGORITHM}\n${sha256Hex(canonical)}`;
}

/** The hex signature a client holding `accessKeySecret` would send for these parts. */
export function computeSignature(parts: SignedRequestParts, accessKeySecret: string): string {
  return createHmac('sha256', accessKeySecret).update(stringToSign(canonicalRequest(parts))).digest('hex');
}

/**
 * Parses `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>`.
 * Returns undefined when the header is not of that shape.
 */
export function parseAuthorization(header: string): ParsedAuthorization | undefined {
  const trimmed = header.trim();
  const space = trimmed.indexOf(' ');
  if (space <= 0) return undefined;
  const algorithm = trimmed.slice(0, space);
  const fields = new Map<string, string>();
  for (const item of trimmed.slice(space + 1).split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) return undefined;
    fields.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  const accessKeyId = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!accessKeyId || !signedHeaders || !signature) return undefined;
  return {
    algorithm,
    accessKeyId,
    signedHeaders: signedHeaders.split(';').map((n) => n.trim().toLowerCase()).filter((n) => n !== ''),
    signature: signature.toLowerCase(),
  };
}

/** Constant-time comparison of the sent and the expected signature. */
export function signaturesMatch(sentHex: string, expectedHex: string): boolean {
  const sent = Buffer.from(sentHex, 'utf8');
  const expected = Buffer.from(expectedHex, 'utf8');
  return sent.length === expected.length && timingSafeEqual(sent, expected);
}

/** What `signRequest` needs: a request about to be sent. */
export interface RequestToSign {
  method: string;
  pathname: string;
  rawQuery: string;
  /** Headers to send; host and every x-acs-* one are signed (x-acs-content-sha256 is added). */
  headers: Record<string, string>;
  body?: string | Buffer;
  accessKeyId: string;
  accessKeySecret: string;
}

/**
 * The inverse of verification, for tests and tools that talk to the emulator without the SDK:
 * returns the headers with `x-acs-content-sha256` and `Authorization` added.
 */
export function signRequest(request: RequestToSign): Record<string, string> {
  const headers: Record<string, string> = { ...request.headers };
  headers['x-acs-content-sha256'] = sha256Hex(request.body ?? '');
  const signedHeaders = signableHeaderNames(headers);
  const signature = computeSignature(
    {
      method: request.method,
      pathname: request.pathname,
      rawQuery: request.rawQuery,
      headers,
      signedHeaders,
      hashedPayload: headers['x-acs-content-sha256'],
    },
    request.accessKeySecret,
  );
  headers.Authorization = `${ACS3_ALGORITHM} Credential=${request.accessKeyId},SignedHeaders=${signedHeaders.join(';')},Signature=${signature}`;
  return headers;
}
