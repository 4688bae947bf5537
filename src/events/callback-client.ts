/**
 * One POST of a completion event to a receiver, made so that the receiver cannot turn it against
 * the worker that sends it: the connection goes to the address resolved (and checked) once, never
 * to whatever a second lookup would say; redirects are not followed; the answer's body is read
 * to at most `maxResponseBytes` and then the connection is dropped, so a receiver answering
 * gigabytes costs the worker nothing.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { unbracket } from './address-policy.js';

/** Options of `postPinned`. */
export interface PinnedPostOptions {
  /** The address to connect to (already checked). */
  address: string;
  family: 4 | 6;
  /** Whole request, connect to last byte read. */
  timeoutMs: number;
  /** Bytes of the answer read at most before the connection is dropped. */
  maxResponseBytes: number;
}

/** What the receiver answered. */
export interface PinnedPostResult {
  status: number;
  /** Bytes of the answer read (at most `maxResponseBytes`). */
  bytesRead: number;
  /** True when the answer was longer and the connection was dropped. */
  truncated: boolean;
}

/** A failure to get any answer (connect, TLS, timeout). */
export class CallbackRequestError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CallbackRequestError';
  }
}

/**
 * POSTs `body` to `url`, connecting to `options.address` whatever the name resolves to now. TLS
 * still verifies the certificate against the URL's host name (SNI and checks use it).
 */
export function postPinned(url: URL, headers: Record<string, string>, body: string, options: PinnedPostOptions): Promise<PinnedPostResult> {
  const host = unbracket(url.hostname);
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    // Node asks for every address when autoSelectFamily is on: answer in the shape asked for.
    if (typeof lookupOptions === 'object' && lookupOptions.all === true) {
      (callback as unknown as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address: options.address, family: options.family }]);
    } else {
      callback(null, options.address, options.family);
    }
  };
  const payload = Buffer.from(body, 'utf8');
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<PinnedPostResult>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | null, result?: PinnedPostResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error !== null) reject(error);
      else if (result !== undefined) resolve(result);
    };
    const request = send(
      {
        protocol: url.protocol,
        host,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: { ...headers, 'content-length': String(payload.length) },
        lookup: isIP(host) === 0 ? pinned : undefined,
        // A fresh connection per event: a pooled socket could have been opened to an older answer of the resolver.
        agent: false,
        ...(url.protocol === 'https:' && isIP(host) === 0 ? { servername: host } : {}),
      },
      (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        let bytesRead = 0;
        response.on('data', (chunk: Buffer) => {
          bytesRead += chunk.length;
          if (bytesRead > options.maxResponseBytes) {
            // Enough: nothing in the answer matters beyond its status. Drop the connection.
            finish(null, { status, bytesRead: options.maxResponseBytes, truncated: true });
            response.destroy();
            request.destroy();
          }
        });
        response.on('end', () => finish(null, { status, bytesRead, truncated: false }));
        response.on('error', (error) => finish(null, { status, bytesRead: Math.min(bytesRead, options.maxResponseBytes), truncated: error.message === 'aborted' }));
      },
    );
    const timer = setTimeout(() => {
      finish(new CallbackRequestError(`no answer within ${options.timeoutMs} ms`));
      request.destroy();
    }, options.timeoutMs);
    request.on('error', (error) => finish(new CallbackRequestError(`the request failed: ${error.message}`, { cause: error })));
    request.end(payload);
  });
}
