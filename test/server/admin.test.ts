/**
 * The admin API, /metrics, the probes and the dashboard over real HTTP on 127.0.0.1, against a
 * real Redis. Batches are enqueued directly; no worker runs, so jobs wait on the queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import type { Batch } from '../../src/batches/batch.js';
import { REPORT_COLUMNS } from '../../src/results/report-format.js';
import { DASHBOARD_COOKIE, dashboardSessionValue } from '../../src/server/admin-auth.js';
import { tokenHash } from '../../src/server/admin-tokens.js';
import { FAILED_AUTH_DEFAULTS } from '../../src/server/failed-auth-limiter.js';
import { healthRoutes } from '../../src/server/health-routes.js';
import { createWorkerMetrics } from '../../src/server/metrics.js';
import { BudgetGate } from '../../src/limiter/budget-gate.js';
import { pino } from 'pino';
import { enqueueDevices } from '../helpers/pipeline.js';
import { TEST_REDIS_URL } from '../helpers/redis.js';
import { startTestServer, type TestServer } from './server-test-helpers.js';

const ADMIN_TOKEN = 'Adm1n-token-for-the-admin-suite-0042';
// Same length, one character different: must be refused like any other wrong token.
const NEAR_TOKEN = `${ADMIN_TOKEN.slice(0, -1)}3`;
const INSTANCE = 'mqtt-cn-admin01';
const CA = 'ca000000000admin01';

function devices(label: string, count: number) {
  return Array.from({ length: count }, (_, index) => ({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: `${label}${String(index).padStart(5, '0')}` }));
}

describe('admin API', () => {
  let server: TestServer;
  let reportBatch: string;
  const enqueued = 7;

  beforeAll(async () => {
    // This suite sends hundreds of wrong tokens on purpose: the failed-attempt limit (its own test
    // in test/security/admin-roles.test.ts) is lifted so that every answer here is the guard's.
    server = await startTestServer('admin', { adminToken: ADMIN_TOKEN, options: { failedAuth: { ...FAILED_AUTH_DEFAULTS, maxFailures: 1_000_000 } } });
    reportBatch = await enqueueDevices(server.context, [...devices('RPT', enqueued - 1), { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: '=1+2' }], { name: 'report batch' });
    await server.context.batches.addRejected(reportBatch, [{ line: 9, reason: 'DeviceSn is empty' }]);
  });
  afterAll(async () => {
    await server?.close();
  });

  async function call(method: string, path: string, token: string | null, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${server.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  }

  async function newBatch(label: string): Promise<string> {
    return enqueueDevices(server.context, devices(label, 2), { name: label });
  }

  it('refuses every protected route without the token, with a wrong one, and with one differing in one character', async () => {
    const matrixBatch = await newBatch('MATRIX');
    const routes: [string, string, unknown, number][] = [
      ['GET', '/v1/batches', undefined, 200],
      ['GET', `/v1/batches/${matrixBatch}`, undefined, 200],
      ['GET', '/v1/batches/b-unknown', undefined, 404],
      ['GET', `/v1/batches/${matrixBatch}/report`, undefined, 200],
      ['POST', `/v1/batches/${matrixBatch}/pause`, { reason: 'matrix' }, 200],
      ['POST', `/v1/batches/${matrixBatch}/resume`, undefined, 200],
      ['POST', `/v1/batches/${matrixBatch}/cancel`, undefined, 200],
      ['GET', '/v1/dead-letters', undefined, 200],
      ['POST', '/v1/dead-letters/redrive', {}, 200],
      ['GET', '/metrics', undefined, 200],
      ['GET', '/admin/queues', undefined, 200],
      ['GET', '/admin/queues/api/queues', undefined, 200],
    ];
    for (const [method, path, body] of routes) {
      for (const token of [null, 'wrong', NEAR_TOKEN, `${ADMIN_TOKEN}x`, '']) {
        const response = await call(method, path, token, body);
        expect(response.status, `${method} ${path} with ${token === null ? 'no token' : 'a wrong token'}`).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(await response.json()).toMatchObject({ error: { code: 'unauthorized' } });
      }
      // Another scheme with the right token is not a bearer token.
      expect((await fetch(`${server.url}${path}`, { method, headers: { authorization: `Basic ${ADMIN_TOKEN}` } })).status).toBe(401);
    }
    // Nothing was changed by the refused calls.
    expect((await server.context.batches.get(matrixBatch))?.state).toBe('running');
    for (const [method, path, body, expected] of routes) {
      const response = await call(method, path, ADMIN_TOKEN, body);
      expect(response.status, `${method} ${path} with the token`).toBe(expected);
      await response.arrayBuffer();
    }
    expect((await server.context.batches.get(matrixBatch))?.state).toBe('cancelled');
  });

  it('lists batches most recent first and reads one', async () => {
    const older = await newBatch('LISTA');
    const newer = await newBatch('LISTB');
    const list = (await (await call('GET', '/v1/batches?limit=2', ADMIN_TOKEN)).json()) as { batches: Batch[] };
    expect(list.batches.map((batch) => batch.id)).toEqual([newer, older]);
    const one = (await (await call('GET', `/v1/batches/${older}`, ADMIN_TOKEN)).json()) as { batch: Batch };
    expect(one.batch).toMatchObject({ id: older, name: 'LISTA', accepted: 2, state: 'running' });
    const unknown = await call('GET', '/v1/batches/b-20240101T000000Z-00000000', ADMIN_TOKEN);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'batch_not_found' } });
    expect((await call('GET', '/v1/batches?limit=0', ADMIN_TOKEN)).status).toBe(400);
    expect((await call('GET', '/v1/batches?limit=abc', ADMIN_TOKEN)).status).toBe(400);
  });

  it('pauses, resumes and cancels a batch, with 409 where the state does not allow it', async () => {
    const batchId = await newBatch('CTRL');
    const paused = await call('POST', `/v1/batches/${batchId}/pause`, ADMIN_TOKEN, { reason: 'checking the instance' });
    expect(paused.status).toBe(200);
    expect(await paused.json()).toMatchObject({ batch: { id: batchId, state: 'paused', reason: 'checking the instance' } });
    expect(await server.context.batches.state(batchId)).toEqual({ state: 'paused', reason: 'checking the instance' });

    const resumed = await call('POST', `/v1/batches/${batchId}/resume`, ADMIN_TOKEN);
    expect(resumed.status).toBe(200);
    expect((await server.context.batches.get(batchId))?.state).toBe('running');
    const resumedAgain = await call('POST', `/v1/batches/${batchId}/resume`, ADMIN_TOKEN);
    expect(resumedAgain.status).toBe(409);
    expect(await resumedAgain.json()).toMatchObject({ error: { code: 'invalid_state' } });

    // An empty JSON body is no body.
    const cancelled = await fetch(`${server.url}/v1/batches/${batchId}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '' });
    expect(cancelled.status).toBe(200);
    expect((await server.context.batches.get(batchId))?.state).toBe('cancelled');
    expect((await call('POST', `/v1/batches/${batchId}/cancel`, ADMIN_TOKEN)).status).toBe(409);
    expect((await call('POST', `/v1/batches/${batchId}/pause`, ADMIN_TOKEN)).status).toBe(409);

    expect((await call('POST', '/v1/batches/b-nope/pause', ADMIN_TOKEN)).status).toBe(404);
    const badReason = await call('POST', `/v1/batches/${batchId}/pause`, ADMIN_TOKEN, { reason: 42 });
    expect(badReason.status).toBe(400);
    const malformed = await fetch(`${server.url}/v1/batches/${batchId}/pause`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{"reason":' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'malformed_json' } });
  });

  it('streams the report as CSV with a header line and formula-safe cells', async () => {
    const response = await call('GET', `/v1/batches/${reportBatch}/report?format=csv`, ADMIN_TOKEN);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${reportBatch}.csv"`);
    const lines = (await response.text()).trimEnd().split('\n');
    expect(lines[0]).toBe(REPORT_COLUMNS.join(','));
    // Every device plus the rejected row.
    expect(lines).toHaveLength(1 + enqueued + 1);
    expect(lines.some((line) => line.includes(",'=1+2,"))).toBe(true);
    expect(lines.some((line) => line.includes(',=1+2,'))).toBe(false);
    expect(lines.some((line) => line.includes('rejected') && line.includes('DeviceSn is empty'))).toBe(true);
    // The default format is CSV.
    expect((await call('GET', `/v1/batches/${reportBatch}/report`, ADMIN_TOKEN)).headers.get('content-type')).toMatch(/^text\/csv/);
  });

  it('streams the report as NDJSON, and refuses unknown formats and batches', async () => {
    const response = await call('GET', `/v1/batches/${reportBatch}/report?format=ndjson`, ADMIN_TOKEN);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${reportBatch}.ndjson"`);
    const records = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toHaveLength(enqueued + 1);
    expect(records.some((record) => record.deviceSn === '=1+2')).toBe(true);
    expect((await call('GET', `/v1/batches/${reportBatch}/report?format=xml`, ADMIN_TOKEN)).status).toBe(400);
    expect((await call('GET', '/v1/batches/b-nope/report', ADMIN_TOKEN)).status).toBe(404);
  });

  it('lists and redrives dead letters', async () => {
    const batchId = await newBatch('DLQ');
    const [device] = devices('DLQ', 1);
    const jobId = (await server.context.queue.getJobs(['waiting', 'prioritized'], 0, 10_000)).find((job) => job.data.batchId === batchId && job.data.deviceSn === device?.deviceSn)?.id;
    expect(jobId).toBeDefined();
    // Stand in for a worker giving up on the device: the job leaves the queue, a dead letter appears.
    await server.context.queue.remove(jobId!);
    await server.context.deadLetters.add({ batchId, mqttInstanceId: INSTANCE, caSn: CA, deviceSn: device!.deviceSn, action: 'delete', history: [], firstAttemptAt: null, jobId: jobId!, reason: 'ParameterFieldCheckFailed', deadLetteredAt: new Date().toISOString() });

    const listed = (await (await call('GET', `/v1/dead-letters?batch=${batchId}`, ADMIN_TOKEN)).json()) as { deadLetters: { jobId: string; reason: string }[] };
    expect(listed.deadLetters).toEqual([expect.objectContaining({ jobId, reason: 'ParameterFieldCheckFailed' }) as unknown]);
    const other = (await (await call('GET', '/v1/dead-letters?batch=b-other&limit=5', ADMIN_TOKEN)).json()) as { deadLetters: unknown[] };
    expect(other.deadLetters).toEqual([]);

    const redrive = await call('POST', '/v1/dead-letters/redrive', ADMIN_TOKEN, { batchId });
    expect(redrive.status).toBe(200);
    expect(await redrive.json()).toEqual({ redriven: 1, skipped: 0 });
    expect(await server.context.queue.getJob(jobId!)).toBeDefined();
    expect(await server.context.deadLetters.count()).toBe(0);
  });

  it('exposes queue depths at scrape time, and worker metrics registered in the same registry', async () => {
    const before = await server.context.queue.getJobCountByTypes('wait', 'prioritized');
    await enqueueDevices(server.context, devices('METRICS', 5));
    const workerMetrics = createWorkerMetrics(server.registry);
    workerMetrics.apiCalls.inc({ action: 'DeleteDeviceCertificate', code: 'OK', outcome: 'deleted' });
    workerMetrics.rateLimitPerSecond.set(480);
    const response = await call('GET', '/metrics', ADMIN_TOKEN);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    // Every revocation job is prioritized (batch priorities): that is where waiting jobs are.
    expect(text).toContain(`revoker_queue_jobs{state="prioritized"} ${before + 5}`);
    for (const state of ['active', 'delayed', 'failed']) expect(text).toContain(`revoker_queue_jobs{state="${state}"} 0`);
    expect(text).toContain('revoker_dead_letters 0');
    expect(text).toContain('revoker_api_calls_total{action="DeleteDeviceCertificate",code="OK",outcome="deleted"} 1');
    expect(text).toContain('revoker_rate_limit_per_second 480');
    expect(text).toContain('# TYPE revoker_api_call_duration_seconds histogram');
    expect(text).toContain('revoker_throttled_total 0');
  });

  it('shows each rate budget (egress group, account operation) with its calls in the last second', async () => {
    const gate = new BudgetGate(server.context.redis, server.context.keys, { accountKey: 'acct-metrics', accountRatePerSecond: 480, egressId: 'nat-a', egressRatePerSecond: 280 }, pino({ level: 'silent' }));
    try {
      for (let i = 0; i < 3; i += 1) await gate.acquire('DeleteDeviceCertificate');
      await gate.acquire('ListDeviceCertificateByCaSn');
    } finally {
      await gate.close();
    }
    const text = await (await call('GET', '/metrics', ADMIN_TOKEN)).text();
    expect(text).toContain('revoker_budget_calls_last_second{budget="egress:nat-a",kind="egress",label="nat-a"} 4');
    expect(text).toContain('revoker_budget_calls_last_second{budget="account:acct-metrics:DeleteDeviceCertificate",kind="account",label="DeleteDeviceCertificate"} 3');
    expect(text).toContain('revoker_budget_calls_last_second{budget="account:acct-metrics:ListDeviceCertificateByCaSn",kind="account",label="ListDeviceCertificateByCaSn"} 1');
    expect(text).toContain('revoker_budget_limit_per_second{budget="egress:nat-a",kind="egress",label="nat-a"} 280');
  });

  it('answers the probes without a token', async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('answers unknown routes 404 in the error format', async () => {
    const response = await fetch(`${server.url}/nowhere`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 'not_found' } });
  });

  it('opens the dashboard with a login cookie (POST form) that holds no token and only works there', async () => {
    const form = (token: string) => fetch(`${server.url}/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }).toString() });
    const refused = await form(NEAR_TOKEN);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('set-cookie')).toBeNull();

    const login = await form(ADMIN_TOKEN);
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/queues');
    const setCookie = login.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(new RegExp(`^${DASHBOARD_COOKIE}=`));
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/admin');
    expect(setCookie).not.toContain(ADMIN_TOKEN);
    const cookie = setCookie.split(';')[0]!;

    const page = await fetch(`${server.url}/admin/queues`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const api = await fetch(`${server.url}/admin/queues/api/queues`, { headers: { cookie } });
    expect(api.status).toBe(200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((queue) => queue.name).sort();
    expect(names).toEqual(['dead-letters', 'revocations']);

    // The cookie is not a key to the admin API.
    expect((await fetch(`${server.url}/v1/batches`, { headers: { cookie } })).status).toBe(401);
    // Tampered and expired sessions are refused.
    const tampered = `${cookie.slice(0, -2)}${cookie.endsWith('A') ? 'BB' : 'AA'}`;
    expect((await fetch(`${server.url}/admin/queues`, { headers: { cookie: tampered } })).status).toBe(401);
    const expired = dashboardSessionValue(tokenHash(ADMIN_TOKEN), 'admin', 60, new Date(Date.now() - 3_600_000));
    expect((await fetch(`${server.url}/admin/queues`, { headers: { cookie: `${DASHBOARD_COOKIE}=${expired}` } })).status).toBe(401);
    const otherToken = dashboardSessionValue(tokenHash('some-other-admin-token-0000-0000-0000'), 'admin', 600);
    expect((await fetch(`${server.url}/admin/queues`, { headers: { cookie: `${DASHBOARD_COOKIE}=${otherToken}` } })).status).toBe(401);
  });

  it('keeps the dashboard read-only', async () => {
    const response = await call('PUT', '/admin/queues/api/queues/revocations/pause', ADMIN_TOKEN);
    expect(response.status).toBe(405);
    expect((await call('PUT', '/admin/queues/api/queues/pause', ADMIN_TOKEN)).status).toBe(200);
    expect((await call('PUT', '/admin/queues/api/queues/dead-letters/empty', ADMIN_TOKEN)).status).toBe(405);
    expect(await server.context.queue.isPaused()).toBe(false);
  });

  it('never logs the admin token', () => {
    const log = server.logLines.join('');
    expect(log).toContain('request completed');
    expect(log).not.toContain(ADMIN_TOKEN);
    expect(log).not.toContain(NEAR_TOKEN);
  });
});

describe('readiness', () => {
  it('answers 503 when Redis does not answer', async () => {
    // A real client whose connection is closed: PING fails, as it does while Redis is down.
    const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: null });
    redis.disconnect();
    const app = Fastify();
    await app.register(healthRoutes({ redis, readyTimeoutMs: 200 }));
    try {
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ error: { code: 'redis_unavailable' } });
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
