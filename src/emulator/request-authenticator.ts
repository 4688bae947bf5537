/**
 * The gateway's authentication of one API request: which AccessKey signed it, whether that
 * key may call, whether the signature, timestamp, payload hash, security token and nonce hold.
 * Stateful (account states, nonces seen, the simulated clock offset); the signature maths
 * itself is in `signature-verifier.ts`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { apiError, type ApiError } from './api-error.js';
import type { EmulatorAccount } from './emulator-options.js';
import {
  ACS3_ALGORITHM,
  computeSignature,
  parseAuthorization,
  sha256Hex,
  signableHeaderNames,
  signaturesMatch,
} from './signature-verifier.js';

/** The parts of a request authentication looks at. */
export interface AuthenticationInput {
  method: string;
  pathname: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Arrival time on the real clock, in ms. */
  nowMs: number;
}

/** The verdict; `accessKeyId` is set whenever the Authorization header named one. */
export type AuthenticationResult = { ok: true; accessKeyId: string } | { ok: false; error: ApiError; accessKeyId: string };

/** Whether an AccessKey may be used. */
export type AccountState = 'active' | 'inactive';

// x-acs-date as the SDK writes it: UTC to the second.
const ACS_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// How long a nonce is remembered: the same 15 minutes as the timestamp tolerance, after which
// a replay is refused as expired anyway.
const NONCE_MEMORY_MS = 15 * 60 * 1000;
// Upper bound on remembered nonces (about 100 MB at most); beyond it the oldest are forgotten
// early. 1,000,000 is more than 15 minutes at the documented 500 calls/s (450,000).
const MAX_REMEMBERED_NONCES = 1_000_000;
// Headers every V3 request must sign.
const REQUIRED_SIGNED_HEADERS = ['host', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce'];

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Verifies requests against a set of accounts. */
export class RequestAuthenticator {
  private readonly accounts = new Map<string, EmulatorAccount>();
  private readonly inactive = new Set<string>();
  /** `${accessKeyId}\n${nonce}` → first-seen time; Map order is arrival order. */
  private readonly nonces = new Map<string, number>();
  /** Added to the real clock before checking x-acs-date (simulates a skewed server clock). */
  clockOffsetMs = 0;

  constructor(
    accounts: readonly EmulatorAccount[],
    private readonly clockSkewToleranceMs: number,
  ) {
    for (const account of accounts) this.addAccount(account);
  }

  /** Adds or replaces an account (active). */
  addAccount(account: EmulatorAccount): void {
    this.accounts.set(account.accessKeyId, { ...account });
    this.inactive.delete(account.accessKeyId);
  }

  /**
   * The account whose budgets a key's calls use: its accountId, else the key itself (a key
   * without an account id is an account of its own).
   */
  accountOf(accessKeyId: string): string {
    return this.accounts.get(accessKeyId)?.accountId ?? accessKeyId;
  }

  /** Enables or disables a key at run time; throws for a key that is not configured. */
  setAccountState(accessKeyId: string, state: AccountState): void {
    if (!this.accounts.has(accessKeyId)) throw new Error(`no emulator account with AccessKey id ${accessKeyId}`);
    if (state === 'inactive') this.inactive.add(accessKeyId);
    else this.inactive.delete(accessKeyId);
  }

  /** Checks one request; on success the nonce is remembered. */
  authenticate(input: AuthenticationInput): AuthenticationResult {
    const header = single(input.headers.authorization);
    if (header === undefined || header.trim() === '') return this.fail('MissingAuthorization', '');
    const auth = parseAuthorization(header);
    if (!auth) return this.fail('IncompleteSignature', '', 'The Authorization header is malformed.');
    const { accessKeyId } = auth;
    if (auth.algorithm !== ACS3_ALGORITHM) return this.fail('IncompleteSignature', accessKeyId, `Unsupported algorithm ${auth.algorithm}.`);
    const account = this.accounts.get(accessKeyId);
    if (!account) return this.fail('InvalidAccessKeyId.NotFound', accessKeyId);
    if (this.inactive.has(accessKeyId)) return this.fail('InvalidAccessKeyId.Inactive', accessKeyId);

    // Every signable header that was sent must be signed, or a proxy could alter it unseen.
    const signed = new Set(auth.signedHeaders);
    for (const name of [...REQUIRED_SIGNED_HEADERS, ...signableHeaderNames(input.headers)]) {
      if (!signed.has(name)) return this.fail('IncompleteSignature', accessKeyId, `Header ${name} must be signed.`);
    }

    const nonce = single(input.headers['x-acs-signature-nonce']);
    if (!nonce) return this.fail('MissingSignatureNonce', accessKeyId);

    const date = single(input.headers['x-acs-date']) ?? '';
    const dateMs = ACS_DATE.test(date) ? Date.parse(date) : Number.NaN;
    if (Number.isNaN(dateMs)) return this.fail('InvalidTimeStamp.Format', accessKeyId);
    if (Math.abs(input.nowMs + this.clockOffsetMs - dateMs) > this.clockSkewToleranceMs) {
      return this.fail('InvalidTimeStamp.Expired', accessKeyId);
    }

    const declaredHash = (single(input.headers['x-acs-content-sha256']) ?? '').toLowerCase();
    if (declaredHash !== sha256Hex(input.body)) {
      return this.fail('SignatureDoesNotMatch', accessKeyId, 'x-acs-content-sha256 is not the sha256 of the body.');
    }

    const expected = computeSignature(
      {
        method: input.method,
        pathname: input.pathname,
        rawQuery: input.rawQuery,
        headers: input.headers,
        signedHeaders: auth.signedHeaders,
        hashedPayload: declaredHash,
      },
      account.accessKeySecret,
    );
    if (!signaturesMatch(auth.signature, expected)) return this.fail('SignatureDoesNotMatch', accessKeyId);

    const token = single(input.headers['x-acs-security-token']);
    if (account.securityToken !== undefined) {
      if (!token) return this.fail('MissingSecurityToken', accessKeyId);
      if (token !== account.securityToken) return this.fail('InvalidSecurityToken.MismatchWithAccessKey', accessKeyId);
    } else if (token) {
      return this.fail('InvalidSecurityToken.MismatchWithAccessKey', accessKeyId, 'This AccessKey takes no security token.');
    }
    const tokenKeyId = single(input.headers['x-acs-accesskey-id']);
    if (tokenKeyId !== undefined && tokenKeyId !== accessKeyId) {
      return this.fail('InvalidSecurityToken.MismatchWithAccessKey', accessKeyId, 'x-acs-accesskey-id differs from the Credential.');
    }

    // Checked last, so a request refused for another reason does not burn its nonce.
    if (!this.rememberNonce(accessKeyId, nonce, input.nowMs)) return this.fail('SignatureNonceUsed', accessKeyId);
    return { ok: true, accessKeyId };
  }

  /** Nonces currently remembered (for tests of the memory bound). */
  get rememberedNonces(): number {
    return this.nonces.size;
  }

  /** Returns false if the nonce was seen for this key within the memory window. */
  private rememberNonce(accessKeyId: string, nonce: string, nowMs: number): boolean {
    const cutoff = nowMs - NONCE_MEMORY_MS;
    // Oldest first: stop at the first one still inside the window.
    for (const [key, seenMs] of this.nonces) {
      if (seenMs > cutoff && this.nonces.size < MAX_REMEMBERED_NONCES) break;
      this.nonces.delete(key);
    }
    const key = `${accessKeyId}\n${nonce}`;
    if (this.nonces.has(key)) return false;
    this.nonces.set(key, nowMs);
    return true;
  }

  private fail(code: string, accessKeyId: string, detail?: string): AuthenticationResult {
    return { ok: false, error: apiError(code, detail), accessKeyId };
  }
}
