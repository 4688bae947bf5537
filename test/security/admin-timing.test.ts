/**
 * The admin API, /metrics and the dashboard under wrong credentials (issue 7, "Admin API"): every
 * route answers 401 without a token, with a wrong one and with one differing in a single
 * character, changes nothing, and takes about as long to refuse a nearly-right token as a
 * completely wrong one.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILED_AUTH_DEFAULTS } from '../../src/server/failed-auth-limiter.js';
import { enqueueDevices } from '../helpers/pipeline.js';
import { startTestServer, type TestServer } from '../server/server-test-helpers.js';

const ADMIN_TOKEN = `Adm1n-${randomBytes(24).toString('base64url')}`;
/** Same length, every character different from the admin token's. */
function completelyWrong(token: string): string {
  return Array.from(token, (char) => (char === 'x' ? 'y' : 'x')).join('');
}
const WRONG_TOKEN = completelyWrong(ADMIN_TOKEN);
/** Same length, only the last character differs. */
const NEAR_TOKEN = `${ADMIN_TOKEN.slice(0, -1)}${ADMIN_TOKEN.endsWith('A') ? 'B' : 'A'}`;
/** Same length, only the first character differs. */
const NEAR_FIRST_TOKEN = `${ADMIN_TOKEN.startsWith('B') ? 'C' : 'B'}${ADMIN_TOKEN.slice(1)}`;
const INSTANCE = 'mqtt-cn-hostile03';
const CA = 'ca00000000hostile03';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

describe('admin API authentication', () => {
  let server: TestServer;
  let batchId: string;

  beforeAll(async () => {
    // Hundreds of wrong tokens on purpose: the failed-attempt limit (admin-roles.test.ts) is lifted
    // so that the timing compares the guard's own answers, not 429s.
    server = await startTestServer('admin-timing', { adminToken: ADMIN_TOKEN, options: { failedAuth: { ...FAILED_AUTH_DEFAULTS, maxFailures: 1_000_000 } } });
    batchId = await enqueueDevices(server.context, [{ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'TIMING000001' }], { name: 'auth matrix' });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Every protected route, with what it answers given the right token (so the 401s below mean something). */
  function routes(): [method: string, path: string, body: unknown, withToken: number][] {
    return [
      ['GET', '/v1/batches', undefined, 200],
      ['GET', `/v1/batches/${batchId}`, undefined, 200],
      ['GET', `/v1/batches/${batchId}/report`, undefined, 200],
      // Control routes with the token are tried on an unknown batch: 404 shows the guard let it through.
      ['POST', `/v1/batches/${batchId}/pause`, { reason: 'intruder' }, 404],
      ['POST', `/v1/batches/${batchId}/resume`, undefined, 404],
      ['POST', `/v1/batches/${batchId}/cancel`, { reason: 'intruder' }, 404],
      ['GET', '/v1/dead-letters', undefined, 200],
      ['POST', '/v1/dead-letters/redrive', {}, 200],
      ['GET', '/metrics', undefined, 200],
      ['GET', '/admin/queues', undefined, 200],
      ['GET', '/admin/queues/api/queues', undefined, 200],
    ];
  }

  async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Response> {
    const withType = body === undefined ? headers : { ...headers, 'content-type': 'application/json' };
    return fetch(`${server.url}${path}`, { method, headers: withType, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  }

  it('answers 401 on every route without a token, with a wrong one, and with one differing in one character', async () => {
    const variants: [string, Record<string, string>][] = [
      ['no token', {}],
      ['a wrong token of the same length', { authorization: `Bearer ${WRONG_TOKEN}` }],
      ['the token with its last character changed', { authorization: `Bearer ${NEAR_TOKEN}` }],
      ['the token with its first character changed', { authorization: `Bearer ${NEAR_FIRST_TOKEN}` }],
      ['the token plus one character', { authorization: `Bearer ${ADMIN_TOKEN}x` }],
      ['the token minus its last character', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }],
      ['an empty bearer', { authorization: 'Bearer ' }],
      ['the token under another scheme', { authorization: `Basic ${ADMIN_TOKEN}` }],
      ['the token with no scheme', { authorization: ADMIN_TOKEN }],
      ['the token as a cookie', { cookie: `revoker_dashboard=${ADMIN_TOKEN}` }],
    ];
    for (const [method, path, body] of routes()) {
      for (const [label, headers] of variants) {
        const response = await call(method, path, headers, body);
        expect(response.status, `${method} ${path} with ${label}`).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(await response.json()).toMatchObject({ error: { code: 'unauthorized' } });
      }
      // The token in the query string is not a credential for the API.
      const separator = path.includes('?') ? '&' : '?';
      expect((await call(method, `${path}${separator}token=${ADMIN_TOKEN}`, {}, body)).status, `${method} ${path}?token=`).toBe(401);
    }
    // The dashboard login with a near token sets no cookie (nor does any token in a URL).
    const login = await fetch(`${server.url}/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(NEAR_TOKEN)}` });
    expect(login.status).toBe(401);
    expect(login.headers.get('set-cookie')).toBeNull();
    const inUrl = await fetch(`${server.url}/admin/login?token=${encodeURIComponent(ADMIN_TOKEN)}`, { redirect: 'manual' });
    expect(inUrl.status).toBe(400);
    expect(inUrl.headers.get('set-cookie')).toBeNull();

    // The refused calls changed nothing.
    expect(await server.context.batches.state(batchId)).toEqual({ state: 'running', reason: null });

    // With the token, each route answers: the 401s above came from the guard, not from a missing route.
    for (const [method, path, body, withToken] of routes()) {
      const target = method === 'POST' && path.startsWith('/v1/batches/') ? path.replace(batchId, 'b-unknown-batch') : path;
      const response = await call(method, target, { authorization: `Bearer ${ADMIN_TOKEN}` }, body);
      expect(response.status, `${method} ${target} with the token`).toBe(withToken);
      await response.arrayBuffer();
    }
  });

  it('takes about as long to refuse a token differing in its last character as a completely wrong one', async () => {
    // A sanity check, not a proof: over HTTP on a shared machine the noise (milliseconds) dwarfs
    // what a byte-by-byte comparison would leak (nanoseconds). It catches gross differences, such
    // as a nearly-right token taking a different code path (a lookup, a log line, a second
    // comparison); the constant-time property itself rests on `secretsEqual` comparing SHA-256
    // digests with `timingSafeEqual`.
    const path = `/v1/batches/${batchId}`;
    const timeOne = async (token: string): Promise<number> => {
      const started = performance.now();
      const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      await response.arrayBuffer();
      const elapsed = performance.now() - started;
      expect(response.status).toBe(401);
      return elapsed;
    };
    // Warm-up: JIT, the connection pool, Fastify's route caches.
    for (let round = 0; round < 50; round += 1) {
      await timeOne(WRONG_TOKEN);
      await timeOne(NEAR_TOKEN);
    }
    const wrong: number[] = [];
    const near: number[] = [];
    // Interleaved, alternating which goes first, so drift in machine load hits both series alike.
    for (let round = 0; round < 300; round += 1) {
      if (round % 2 === 0) {
        wrong.push(await timeOne(WRONG_TOKEN));
        near.push(await timeOne(NEAR_TOKEN));
      } else {
        near.push(await timeOne(NEAR_TOKEN));
        wrong.push(await timeOne(WRONG_TOKEN));
      }
    }
    const wrongMedianMs = median(wrong);
    const nearMedianMs = median(near);
    const differenceMs = Math.abs(wrongMedianMs - nearMedianMs);
    // 2 ms, or a quarter of the median on a slow run, whichever is larger.
    const allowedMs = Math.max(2, 0.25 * Math.max(wrongMedianMs, nearMedianMs));
    expect(differenceMs, `medians: wrong ${wrongMedianMs.toFixed(3)} ms, near ${nearMedianMs.toFixed(3)} ms`).toBeLessThan(allowedMs);
  });
});
