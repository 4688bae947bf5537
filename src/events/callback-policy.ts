/**
 * Where completion events may go: only to origins on an allow-list (EVENTS_ALLOWED_ORIGINS, plus
 * the origin of EVENTS_URL), https unless the origin is listed with http, and never to an
 * address that is not public unicast unless EVENTS_ALLOW_PRIVATE says so. The webhook checks a
 * `callbackUrl` with these rules before accepting a delivery (400 naming the rule); the sender of
 * events checks again, after resolving the name, before every POST.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { forbiddenAddressReason, unbracket } from './address-policy.js';

/** The rules a callback URL is held to. */
export interface CallbackPolicy {
  /** Origins (`scheme://host[:port]`, normalised) events may be sent to. */
  allowedOrigins: readonly string[];
  /** EVENTS_ALLOW_PRIVATE: loopback, private, link-local… addresses are allowed (tests, private deployments). */
  allowPrivate: boolean;
}

/** The rule that refused a callback URL: the error code of the webhook's 400 answer. */
export type CallbackRule = 'callback_url_invalid' | 'callback_address_forbidden' | 'callback_https_required' | 'callback_origin_not_allowed';

/** The outcome of a check. */
export type CallbackCheck = { ok: true; url: URL; origin: string } | { ok: false; rule: CallbackRule; message: string };

/**
 * Normalises an allow-list entry to the URL's origin (lower-case host, default port dropped).
 * Null when the entry is not a bare http(s) origin: a path, query, fragment or user info is a
 * mistake worth refusing at start rather than silently ignoring.
 */
export function normaliseOrigin(entry: string): string | null {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return null;
  if (url.pathname !== '/' || !/^[a-z]+:\/\/[^/]+\/?$/i.test(entry.trim())) return null;
  return url.origin;
}

function refuse(rule: CallbackRule, message: string): CallbackCheck {
  return { ok: false, rule, message };
}

/**
 * Checks a callback URL against the policy without any network access: the syntax, an IP
 * literal's address (whatever spelling: `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]` are all
 * normalised by the URL parser first), the scheme and the origin. `allowedOrigins` narrows the
 * policy's list further (a sender's own callback origins).
 */
export function checkCallbackUrl(text: string, policy: CallbackPolicy, allowedOrigins: readonly string[] = policy.allowedOrigins): CallbackCheck {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return refuse('callback_url_invalid', 'callbackUrl is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return refuse('callback_url_invalid', 'callbackUrl must be an http(s) URL');
  if (url.username !== '' || url.password !== '') return refuse('callback_url_invalid', 'callbackUrl must not carry a user name or password');
  const host = unbracket(url.hostname);
  if (isIP(host) !== 0 && !policy.allowPrivate) {
    const reason = forbiddenAddressReason(host);
    if (reason !== null) return refuse('callback_address_forbidden', `callbackUrl points at a forbidden address: ${reason}`);
  }
  const origin = url.origin;
  const allowed = allowedOrigins.filter((entry) => policy.allowedOrigins.includes(entry));
  if (!allowed.includes(origin)) {
    if (url.protocol === 'http:' && allowed.includes(`https://${url.host}`)) {
      return refuse('callback_https_required', `callbackUrl must use https: ${origin} is not listed with http`);
    }
    return refuse('callback_origin_not_allowed', `callbackUrl origin ${origin} is not on the allow-list of callback origins`);
  }
  return { ok: true, url, origin };
}

/** What `resolvePinned` found: the address to connect to, or why none may be used. */
export type ResolvedTarget = { ok: true; address: string; family: 4 | 6 } | { ok: false; message: string };

/** Resolves every address of a host, as the system resolver sees it. Injected in tests. */
export type HostLookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

/** The system resolver (getaddrinfo), every address. */
export const systemLookup: HostLookup = (hostname) => lookup(hostname, { all: true, verbatim: true });

/**
 * Resolves the URL's host once and picks the address to connect to. With private addresses
 * refused, a name with any forbidden address is refused as a whole: a name that answers with
 * both a public and a loopback address is exactly how a rebinding attack looks.
 */
export async function resolvePinned(url: URL, allowPrivate: boolean, resolve: HostLookup = systemLookup): Promise<ResolvedTarget> {
  const host = unbracket(url.hostname);
  const literal = isIP(host);
  const addresses = literal !== 0 ? [{ address: host, family: literal }] : await resolve(host);
  if (!allowPrivate) {
    for (const entry of addresses) {
      const reason = forbiddenAddressReason(entry.address);
      if (reason !== null) return { ok: false, message: `${host} resolves to a forbidden address: ${reason}` };
    }
  }
  const [first] = addresses;
  if (first === undefined) return { ok: false, message: `${host} has no address` };
  return { ok: true, address: first.address, family: first.family === 6 ? 6 : 4 };
}
