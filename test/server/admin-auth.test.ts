/** The pure parts of admin authentication: header and cookie parsing, constant-time comparison, named tokens, sessions, the failed-attempt limiter. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { bearerToken, dashboardSessionIdentity, dashboardSessionValue, readCookie, secretsEqual } from '../../src/server/admin-auth.js';
import { AdminTokens, loadAdminTokens, parseAdminTokens, roleAllows, tokenHash } from '../../src/server/admin-tokens.js';
import { clientKey, FailedAuthLimiter } from '../../src/server/failed-auth-limiter.js';

const TOKEN = 'a-perfectly-good-admin-token-of-40-chars!';
const READER = 'a-read-only-token-for-prometheus-scrapes';

function tokens(): AdminTokens {
  return new AdminTokens(
    loadAdminTokens({ adminToken: TOKEN, adminTokensFile: 'tokens.json' }, () =>
      JSON.stringify({ tokens: [{ name: 'prometheus', sha256: tokenHash(READER).toString('hex'), role: 'read' }] }),
    ),
  );
}

describe('admin auth', () => {
  it('reads bearer tokens case-insensitively and nothing else', () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bearer   ${TOKEN} `)).toBe(TOKEN);
    expect(bearerToken(`Basic ${TOKEN}`)).toBeNull();
    expect(bearerToken('Bearer')).toBeNull();
    expect(bearerToken(`Bearer ${TOKEN} extra`)).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });

  it('compares secrets of any length', () => {
    expect(secretsEqual(TOKEN, TOKEN)).toBe(true);
    expect(secretsEqual(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(secretsEqual('', TOKEN)).toBe(false);
    expect(secretsEqual(TOKEN.replace(/.$/, 'X'), TOKEN)).toBe(false);
  });

  it('reads one cookie among several', () => {
    expect(readCookie('a=1; revoker_dashboard=123.abc; b=2', 'revoker_dashboard')).toBe('123.abc');
    expect(readCookie('xrevoker_dashboard=1', 'revoker_dashboard')).toBeNull();
    expect(readCookie(undefined, 'revoker_dashboard')).toBeNull();
  });

  it('names each token and its role: ADMIN_TOKEN is `admin`, operate; the file gives hashes only', () => {
    const set = tokens();
    expect(set.identify(TOKEN)).toEqual({ name: 'admin', role: 'operate' });
    expect(set.identify(READER)).toEqual({ name: 'prometheus', role: 'read' });
    expect(set.identify(`${READER}x`)).toBeNull();
    expect(set.identify('')).toBeNull();
    expect(roleAllows('read', 'read')).toBe(true);
    expect(roleAllows('read', 'operate')).toBe(false);
    expect(roleAllows('operate', 'read')).toBe(true);
  });

  it('refuses a tokens file that is malformed, without echoing a token pasted where its hash belongs', () => {
    const refused = (text: string): ConfigError => {
      try {
        parseAdminTokens(text);
      } catch (error) {
        if (error instanceof ConfigError) return error;
        throw error;
      }
      throw new Error('not refused');
    };
    const pasted = refused(JSON.stringify({ tokens: [{ name: 'oops', sha256: READER, role: 'read' }] }));
    expect(pasted.variable).toBe('ADMIN_TOKENS_FILE');
    expect(pasted.message).not.toContain(READER);
    expect(refused(JSON.stringify({ tokens: [{ name: 'x', sha256: 'a'.repeat(64), role: 'admin' }] })).message).toMatch(/role/);
    expect(refused('{').message).toMatch(/not valid JSON/);
    // A name used twice (the file may not redefine ADMIN_TOKEN's `admin`), and no token at all.
    expect(() => loadAdminTokens({ adminToken: TOKEN, adminTokensFile: 'f' }, () => JSON.stringify({ tokens: [{ name: 'admin', sha256: 'b'.repeat(64), role: 'read' }] }))).toThrow(/used twice/);
    expect(() => loadAdminTokens({ adminToken: null, adminTokensFile: null })).toThrow('ADMIN_TOKEN must be set to start the server');
  });

  it('accepts a session until it expires, for the token that made it only', () => {
    const set = tokens();
    const now = new Date('2030-01-01T00:00:00Z');
    const reader = set.byName('prometheus')!;
    const value = dashboardSessionValue(reader.hash, reader.name, 600, now);
    expect(value).not.toContain(READER);
    expect(value).not.toContain(reader.hash.toString('hex'));
    expect(dashboardSessionIdentity(value, set, now)).toEqual({ name: 'prometheus', role: 'read' });
    expect(dashboardSessionIdentity(value, set, new Date(now.getTime() + 599_000))).not.toBeNull();
    expect(dashboardSessionIdentity(value, set, new Date(now.getTime() + 600_000))).toBeNull();
    // Claiming another token's name (for its role) breaks the HMAC; so does moving the expiry.
    const [expiry, , signature] = value.split('.') as [string, string, string];
    expect(dashboardSessionIdentity(`${expiry}.admin.${signature}`, set, now)).toBeNull();
    expect(dashboardSessionIdentity(`${Number(expiry) + 3_600}.prometheus.${signature}`, set, now)).toBeNull();
    // A token removed from the configuration ends its sessions.
    expect(dashboardSessionIdentity(value, new AdminTokens(set.tokens.filter((token) => token.name !== 'prometheus')), now)).toBeNull();
    expect(dashboardSessionIdentity('garbage', set, now)).toBeNull();
    expect(dashboardSessionIdentity(null, set, now)).toBeNull();
  });

  it('blocks an address after 10 failures a minute, until the oldest leaves the window; IPv6 by /64', () => {
    const limiter = new FailedAuthLimiter();
    const start = 1_000_000;
    for (let attempt = 0; attempt < 10; attempt += 1) {
      expect(limiter.blockedFor('203.0.113.7', start + attempt)).toBeNull();
      limiter.recordFailure('203.0.113.7', start + attempt);
    }
    expect(limiter.blockedFor('203.0.113.7', start + 10)).toBe(60);
    expect(limiter.blockedFor('203.0.113.8', start + 10)).toBeNull();
    expect(limiter.blockedFor('203.0.113.7', start + 60_000)).toBeNull();
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe(clientKey('2001:db8:1:2:bbbb::9'));
    expect(clientKey('2001:db8:1:2::1')).not.toBe(clientKey('2001:db8:1:3::1'));
    expect(clientKey('::ffff:198.51.100.4')).toBe('198.51.100.4');
    // Memory stays bounded whatever the spread of addresses.
    const small = new FailedAuthLimiter({ maxAddresses: 100 });
    for (let index = 0; index < 1_000; index += 1) small.recordFailure(`10.0.${Math.floor(index / 256)}.${index % 256}`, start);
    expect((small as unknown as { failures: Map<string, number[]> }).failures.size).toBe(100);
  });
});
