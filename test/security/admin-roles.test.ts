/**
 * Admin tokens with roles, failed-attempt limiting and the dashboard login (issue 13, findings 2,
 * 6 and 7), over real HTTP against a real Redis, each with the probe that found it:
 *
 * - the token Prometheus scrapes with (role `read`) cannot cancel a batch or redrive; `operate` can,
 *   and the audit trail records who, from where, with which arguments;
 * - the 11th failed authentication from one address within a minute is answered 429 (the review
 *   sent 3,000 at ~1,940/s, all 401), even with the right token; another address is unaffected;
 *   each failure is logged with the client address, never the token;
 * - the dashboard login takes the token by POST form only; a token in a URL is refused; the
 *   cookie is Secure over TLS or a trusted proxy; pages carry a CSP with frame-ancestors 'none'.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { tokenHash } from '../../src/server/admin-tokens.js';
import { enqueueDevices } from '../helpers/pipeline.js';
import { startTestServer, type TestServer } from '../server/server-test-helpers.js';

const OPERATE_TOKEN = 'operate-token-for-the-admin-roles-suite-0001';
const READ_TOKEN = 'read-token-of-prometheus-for-the-roles-suite-01';
const INSTANCE = 'mqtt-cn-roles01';
const CA = 'ca0000000roles01';

function form(token: string): RequestInit {
  return { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }).toString() };
}

describe('admin roles, failed attempts and the dashboard login', () => {
  let dir: string;
  let server: TestServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revoker-roles-'));
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify({ tokens: [{ name: 'prometheus', sha256: tokenHash(READ_TOKEN).toString('hex'), role: 'read' }] }));
    // Behind a proxy on 127.0.0.1: X-Forwarded-For names the client, so one test can be many clients.
    server = await startTestServer('admin-roles', { adminToken: OPERATE_TOKEN, env: { ADMIN_TOKENS_FILE: tokensFile, TRUST_PROXY: '127.0.0.1' } });
  });
  afterAll(async () => {
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  function call(method: string, path: string, token: string | null, client: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { 'x-forwarded-for': client };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${server.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  }

  it('lets a read token read but not cancel or redrive; an operate token cancels, and it is audited', async () => {
    const batchId = await enqueueDevices(server.context, [{ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'ROLES0000001' }], { name: 'roles' });
    const client = '198.51.100.10';
    for (const path of ['/v1/batches', `/v1/batches/${batchId}`, `/v1/batches/${batchId}/report`, '/v1/dead-letters', '/metrics']) {
      const response = await call('GET', path, READ_TOKEN, client);
      expect(response.status, path).toBe(200);
      await response.arrayBuffer();
    }
    for (const [path, body] of [[`/v1/batches/${batchId}/cancel`, { reason: 'scraper gone rogue' }], [`/v1/batches/${batchId}/pause`, {}], [`/v1/batches/${batchId}/priority`, { priority: 'urgent' }], ['/v1/dead-letters/redrive', {}]] as const) {
      const response = await call('POST', path, READ_TOKEN, client, body);
      expect(response.status, path).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: 'forbidden', message: expect.stringContaining("'prometheus' has role read") as unknown } });
    }
    expect((await server.context.batches.get(batchId))?.state).toBe('running');

    const cancelled = await call('POST', `/v1/batches/${batchId}/cancel`, OPERATE_TOKEN, client, { reason: 'wrong list' });
    expect(cancelled.status).toBe(200);
    expect((await server.context.batches.get(batchId))?.state).toBe('cancelled');
    const trail = await new AuditTrail(server.context.redis, server.context.keys, 1).list(batchId);
    expect(trail).toEqual([{ at: expect.any(String) as unknown, action: 'cancel', batchId, actor: 'token:admin', from: client, args: { reason: 'wrong list' }, ok: true }]);
    // Refused requests changed nothing, so they left no entry either.
    expect(server.logLines.join('')).toMatch(/"audit":\{[^}]*"action":"cancel"/);
  });

  it('refuses control characters in an operator reason', async () => {
    const batchId = await enqueueDevices(server.context, [{ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'ROLES0000002' }], { name: 'roles reason' });
    const response = await call('POST', `/v1/batches/${batchId}/pause`, OPERATE_TOKEN, '198.51.100.11', { reason: 'ok\u001b[2K\rall good' });
    expect(response.status).toBe(400);
    expect((await server.context.batches.get(batchId))?.state).toBe('running');
  });

  it('answers the 11th failed attempt in a minute from one address 429, even with the right token', async () => {
    const attacker = '203.0.113.66';
    for (let attempt = 1; attempt <= 10; attempt += 1) {
      const response = await call('GET', '/v1/batches', `wrong-token-number-${attempt}-xxxxxxxxxxxxxxxxxxxx`, attacker);
      expect(response.status, `attempt ${attempt}`).toBe(401);
    }
    const eleventh = await call('GET', '/v1/batches', 'wrong-token-number-11-xxxxxxxxxxxxxxxxxxxx', attacker);
    expect(eleventh.status).toBe(429);
    expect(await eleventh.json()).toMatchObject({ error: { code: 'too_many_failed_attempts' } });
    expect(Number(eleventh.headers.get('retry-after'))).toBeGreaterThan(0);
    // Right token from the blocked address: still 429 (the answer must not tell a guesser it won).
    expect((await call('GET', '/v1/batches', OPERATE_TOKEN, attacker)).status).toBe(429);
    expect((await fetch(`${server.url}/admin/login`, { ...form(OPERATE_TOKEN), headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': attacker } })).status).toBe(429);
    // Another client is not held back.
    expect((await call('GET', '/v1/batches', OPERATE_TOKEN, '203.0.113.67')).status).toBe(200);

    const failures = server.logLines.filter((line) => line.includes('admin authentication failed'));
    expect(failures.length).toBeGreaterThanOrEqual(10);
    for (const line of failures.filter((entry) => entry.includes(attacker))) expect(JSON.parse(line)).toMatchObject({ clientAddress: attacker, how: 'bearer token' });
    expect(server.logLines.join('')).not.toMatch(/wrong-token-number/);
    expect(server.logLines.join('')).not.toContain(OPERATE_TOKEN);
  });

  it('takes the dashboard token by POST form only, never in a URL', async () => {
    const client = { 'x-forwarded-for': '198.51.100.20' };
    const inUrl = await fetch(`${server.url}/admin/login?token=${encodeURIComponent(OPERATE_TOKEN)}`, { redirect: 'manual', headers: client });
    expect(inUrl.status).toBe(400);
    expect(await inUrl.json()).toMatchObject({ error: { code: 'token_in_url' } });
    expect(inUrl.headers.get('set-cookie')).toBeNull();

    const page = await fetch(`${server.url}/admin/login`, { headers: client });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<form method="post" action="/admin/login">');
    expect(html).toContain('type="password"');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');

    // Over plain HTTP from a client the proxy did not vouch for: a cookie without Secure.
    const direct = await fetch(`${server.url}/admin/login`, form(READ_TOKEN));
    expect(direct.status).toBe(303);
    expect(direct.headers.get('set-cookie')).not.toMatch(/Secure/);
    // Through the trusted proxy (TLS ends there): Secure.
    const proxied = await fetch(`${server.url}/admin/login`, { ...form(READ_TOKEN), headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '198.51.100.20', 'x-forwarded-proto': 'https' } });
    expect(proxied.status).toBe(303);
    const setCookie = proxied.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).not.toContain(READ_TOKEN);

    // The read token's session opens the (read-only) dashboard, with the CSP on it too.
    const cookie = setCookie.split(';')[0]!;
    const dashboard = await fetch(`${server.url}/admin/queues`, { headers: { cookie, ...client } });
    expect(dashboard.status).toBe(200);
    expect(dashboard.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    await dashboard.arrayBuffer();
    // And never the admin API.
    expect((await fetch(`${server.url}/v1/batches`, { headers: { cookie, ...client } })).status).toBe(401);
  });

  it('does not let a spoofed X-Forwarded-For escape the limit when no proxy is trusted', async () => {
    const direct = await startTestServer('admin-roles-direct', { adminToken: OPERATE_TOKEN });
    try {
      for (let attempt = 0; attempt < 10; attempt += 1) {
        const response = await fetch(`${direct.url}/v1/batches`, { headers: { authorization: 'Bearer not-the-token-xxxxxxxxxxxxxxxxxxxxxxxx', 'x-forwarded-for': `192.0.2.${attempt}` } });
        expect(response.status).toBe(401);
      }
      const blocked = await fetch(`${direct.url}/v1/batches`, { headers: { authorization: `Bearer ${OPERATE_TOKEN}`, 'x-forwarded-for': '192.0.2.99' } });
      expect(blocked.status).toBe(429);
    } finally {
      await direct.close();
    }
  });
});
