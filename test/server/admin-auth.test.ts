/** The pure parts of admin authentication: header and cookie parsing, constant-time comparison, sessions. */
import { describe, expect, it } from 'vitest';
import { bearerToken, dashboardSessionValue, readCookie, secretsEqual, validDashboardSession } from '../../src/server/admin-auth.js';

const TOKEN = 'a-perfectly-good-admin-token';

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

  it('accepts a session until it expires, for the token that made it only', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const value = dashboardSessionValue(TOKEN, 600, now);
    expect(value).not.toContain(TOKEN);
    expect(validDashboardSession(value, TOKEN, now)).toBe(true);
    expect(validDashboardSession(value, TOKEN, new Date(now.getTime() + 599_000))).toBe(true);
    expect(validDashboardSession(value, TOKEN, new Date(now.getTime() + 600_000))).toBe(false);
    expect(validDashboardSession(value, 'another-admin-token-value', now)).toBe(false);
    // Moving the expiry forward breaks the HMAC.
    const [expiry, signature] = value.split('.') as [string, string];
    expect(validDashboardSession(`${Number(expiry) + 3_600}.${signature}`, TOKEN, now)).toBe(false);
    expect(validDashboardSession('garbage', TOKEN, now)).toBe(false);
    expect(validDashboardSession(null, TOKEN, now)).toBe(false);
  });
});
