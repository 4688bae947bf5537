/**
 * The console over real HTTP: sign-in (form only, cookie for /admin and /console), roles (a read
 * session gets no controls and 403 on every state change), the same-origin rule for cookie POSTs,
 * the CSP and no inline script or style, the CSV upload (plan with rejected lines, size limit,
 * apply with its audit), the event stream, and no secret in the log.
 */
import { createHash } from 'node:crypto';
import type { ReadableStreamReadResult } from 'node:stream/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { reportStores } from '../../src/report/report-stores.js';
import { enqueueDevices } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';
import { OPERATE_TOKEN, READ_TOKEN, signIn, startConsole, type ConsoleEnv } from './console-test-helpers.js';

let env: ConsoleEnv;
let operateCookie: string;
let readCookie: string;
let batchId: string;

const SAME_ORIGIN = { 'sec-fetch-site': 'same-origin' };

function post(path: string, cookie: string, body: Record<string, string> = {}, headers: Record<string, string> = SAME_ORIGIN): Promise<Response> {
  return fetch(`${env.url}${path}`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body).toString() });
}

beforeAll(async () => {
  env = await startConsole('console-http', { console: { maxUploadBytes: 64 * 1024 } });
  batchId = await enqueueDevices(env.context, [1, 2, 3].map((n) => ({ mqttInstanceId: 'mqtt-cn-http01', caSn: 'ca0000000000http', deviceSn: `httpdevice${n}` })), { name: 'http batch' });
  operateCookie = await signIn(env.url, OPERATE_TOKEN);
  readCookie = await signIn(env.url, READ_TOKEN);
});

afterAll(async () => {
  await env?.close();
});

describe('console over HTTP', () => {
  it('sends a browser without a session to the sign-in form, which takes a token only by POST', async () => {
    const page = await fetch(`${env.url}/console`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/console/login');
    expect((await fetch(`${env.url}/console/stream/overview`)).status).toBe(401);
    expect((await fetch(`${env.url}/console/login?token=${encodeURIComponent(OPERATE_TOKEN)}`)).status).toBe(400);
    const wrong = await fetch(`${env.url}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=not-a-token-at-all' });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('That is not an admin token.');

    const login = await fetch(`${env.url}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: OPERATE_TOKEN }).toString() });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/console');
    const cookies = login.headers.getSetCookie();
    expect(cookies.map((cookie) => /Path=([^;]+)/.exec(cookie)?.[1])).toEqual(['/admin', '/console']);
    for (const cookie of cookies) {
      expect(cookie).toContain('HttpOnly');
      expect(cookie).toContain('SameSite=Strict');
      expect(cookie).not.toContain(OPERATE_TOKEN);
    }
    // One sign-in opens the queue dashboard too.
    expect((await fetch(`${env.url}/admin/queues`, { headers: { cookie: operateCookie } })).status).toBe(200);
  });

  it('serves pages with a strict CSP and no inline script, style or handler', async () => {
    for (const path of ['/console', `/console/batches/${batchId}`, '/console/new', `/console/batches/${batchId}/confirm/cancel`]) {
      const response = await fetch(`${env.url}${path}`, { headers: { cookie: operateCookie } });
      expect(response.status, path).toBe(200);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("frame-ancestors 'none'");
      expect(response.headers.get('cache-control')).toBe('no-store');
      const text = await response.text();
      expect(text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(text).not.toMatch(/\sstyle=/);
      expect(text).not.toMatch(/\son[a-z]+=/);
      expect(text).not.toContain(OPERATE_TOKEN);
      expect(text).not.toContain(operateCookie.split('=')[1]!);
    }
    const script = await fetch(`${env.url}/console/assets/console.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${env.url}/console/assets/vendor/uPlot.esm.js`)).status).toBe(200);
    expect((await fetch(`${env.url}/console/assets/../../package.json`)).status).toBe(404);
  });

  it('shows a read session no controls and refuses its state changes with 403', async () => {
    const overview = await (await fetch(`${env.url}/console`, { headers: { cookie: readCookie } })).text();
    expect(overview).toContain('viewer');
    expect(overview).not.toContain('Start a revocation');
    const page = await (await fetch(`${env.url}/console/batches/${batchId}`, { headers: { cookie: readCookie } })).text();
    expect(page).toContain('http batch');
    expect(page).not.toMatch(/Pause…|Cancel…|Change priority…/);
    expect((await fetch(`${env.url}/console/new`, { headers: { cookie: readCookie } })).status).toBe(403);
    expect((await fetch(`${env.url}/console/batches/${batchId}/confirm/cancel`, { headers: { cookie: readCookie } })).status).toBe(403);
    for (const action of ['pause', 'resume', 'cancel', 'priority', 'redrive']) {
      expect((await post(`/console/batches/${batchId}/${action}`, readCookie, { priority: 'urgent' })).status, action).toBe(403);
    }
    expect((await fetch(`${env.url}/console/batches/${batchId}/pause`, { method: 'POST', headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(403);
    expect((await post('/console/new/ca', readCookie, { instance: 'mqtt-cn-http01', caSn: 'ca0000000000http' })).status).toBe(403);
    expect((await env.context.batches.get(batchId))?.state).toBe('running');
  });

  it('refuses a cookie POST that did not come from a console page, and audits one that did', async () => {
    expect((await post(`/console/batches/${batchId}/pause`, operateCookie, {}, {})).status).toBe(403);
    expect((await post(`/console/batches/${batchId}/pause`, operateCookie, {}, { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' })).status).toBe(403);
    expect((await post(`/console/batches/${batchId}/pause`, operateCookie, {}, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await env.context.batches.get(batchId))?.state).toBe('running');

    const paused = await post(`/console/batches/${batchId}/pause`, operateCookie, { reason: 'INC-7 looks wrong' });
    expect(paused.status).toBe(303);
    expect(paused.headers.get('location')).toBe(`/console/batches/${batchId}?done=pause`);
    expect(await env.context.batches.get(batchId)).toMatchObject({ state: 'paused', reason: 'INC-7 looks wrong' });
    // Pausing twice is refused with the reason, and changes nothing.
    expect((await post(`/console/batches/${batchId}/pause`, operateCookie)).status).toBe(409);
    // A bearer token needs no same-origin proof (no browser sends it by itself).
    expect((await fetch(`${env.url}/console/batches/${batchId}/resume`, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${OPERATE_TOKEN}` } })).status).toBe(303);
    const trail = await new AuditTrail(env.context.redis, env.context.keys, 1).list(batchId);
    expect(trail.map((entry) => [entry.action, entry.actor, entry.ok])).toEqual([
      ['pause', 'token:admin', true],
      ['pause', 'token:admin', false],
      ['resume', 'token:admin', true],
    ]);
    expect(trail[0]?.args).toMatchObject({ reason: 'INC-7 looks wrong', via: 'console' });
  });

  it('plans an uploaded CSV with its rejected lines, refuses one too large, and applies the plan', async () => {
    const csv = 'DeviceSn,CaSn,MqttInstanceId\nuploaddevice01,ca000000000upload,mqtt-cn-upload01\n,ca000000000upload,mqtt-cn-upload01\nuploaddevice02,ca000000000upload,mqtt-cn-upload01\nuploaddevice03,ca000000000upload,NOT AN INSTANCE\nuploaddevice01,ca000000000upload,mqtt-cn-upload01\n';
    const form = new FormData();
    form.set('name', 'uploaded list');
    form.set('reason', 'INC-9');
    form.set('reasonCode', 'keyCompromise');
    form.set('priority', 'urgent');
    form.set('file', new Blob([csv], { type: 'text/csv' }), 'leaked devices.csv');
    const upload = await fetch(`${env.url}/console/new/csv`, { method: 'POST', redirect: 'manual', headers: { cookie: operateCookie, ...SAME_ORIGIN }, body: form });
    expect(upload.status).toBe(303);
    const draftPath = upload.headers.get('location') ?? '';
    expect(draftPath).toMatch(/^\/console\/drafts\/d-[0-9a-f]{24}$/);
    const plan = await waitFor(async () => {
      const text = await (await fetch(`${env.url}${draftPath}`, { headers: { cookie: operateCookie } })).text();
      return text.includes('Estimated duration') ? text : null;
    }, 'the plan');
    expect(plan).toContain('delete the 2 device certificates listed in leaked devices.csv');
    expect(plan).toMatch(/<td class="num">3<\/td><td class="mono">—<\/td><td>[^<]*DeviceSn/);
    expect(plan).toMatch(/<td class="num">5<\/td><td class="mono">uploaddevice03<\/td><td>[^<]*MqttInstanceId/);
    expect(plan).toContain('Delete 2 device certificates now');
    // The read session cannot see or apply a plan.
    expect((await fetch(`${env.url}${draftPath}`, { headers: { cookie: readCookie } })).status).toBe(403);
    expect((await post(`${draftPath}/apply`, readCookie)).status).toBe(403);

    const applied = await post(`${draftPath}/apply`, operateCookie);
    expect(applied.status).toBe(303);
    const newBatch = /\/console\/batches\/([^?]+)\?done=started/.exec(applied.headers.get('location') ?? '')?.[1] ?? '';
    const batch = await waitFor(async () => {
      const found = await env.context.batches.get(newBatch);
      return found?.enqueued === true ? found : null;
    }, 'the upload enqueued');
    expect(batch).toMatchObject({ name: 'uploaded list', priority: 'urgent', createdBy: 'token:admin', accepted: 2, rejected: 2, duplicates: 1 });
    const facts = await reportStores(env.context).audit.get(newBatch);
    expect(facts).toMatchObject({ reason: 'INC-9', reasonCode: 'keyCompromise', inputFile: 'leaked devices.csv', inputSha256: createHash('sha256').update(csv).digest('hex') });
    const trail = await waitFor(async () => {
      const entries = await new AuditTrail(env.context.redis, env.context.keys, 1).list(newBatch);
      return entries.length >= 2 ? entries : null;
    }, 'the enqueue audited');
    expect(trail.map((entry) => [entry.action, entry.actor, entry.args.status])).toEqual([
      ['enqueue', 'token:admin', 'started'],
      ['enqueue', 'token:admin', 'enqueued'],
    ]);
    // Applying twice starts nothing more.
    expect((await post(`${draftPath}/apply`, operateCookie)).status).toBe(404);

    const big = new FormData();
    big.set('file', new Blob(['DeviceSn\n' + 'x'.repeat(70 * 1024)], { type: 'text/csv' }), 'big.csv');
    const tooBig = await fetch(`${env.url}/console/new/csv`, { method: 'POST', headers: { cookie: operateCookie, ...SAME_ORIGIN }, body: big });
    expect(tooBig.status).toBe(413);
    expect(await tooBig.text()).toContain('larger than');
    const noHeader = new FormData();
    noHeader.set('file', new Blob(['serial\nabc\n'], { type: 'text/csv' }), 'bad.csv');
    const refused = await fetch(`${env.url}/console/new/csv`, { method: 'POST', redirect: 'manual', headers: { cookie: operateCookie, ...SAME_ORIGIN }, body: noHeader });
    const refusedPage = await waitFor(async () => {
      const text = await (await fetch(`${env.url}${refused.headers.get('location') ?? ''}`, { headers: { cookie: operateCookie } })).text();
      return text.includes('cannot be used') ? text : null;
    }, 'the refusal');
    expect(refusedPage).toContain('DeviceSn');
  });

  it('streams live fragments with a tick every second', async () => {
    const controller = new AbortController();
    const response = await fetch(`${env.url}/console/stream/batches/${batchId}`, { headers: { cookie: operateCookie }, signal: controller.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = response.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (text.match(/event: tick/g) ?? []).length < 2) {
      const chunk: ReadableStreamReadResult<Uint8Array> = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    controller.abort();
    expect(text).toMatch(/^retry: 1000/);
    expect(text).toContain('event: summary');
    expect(text).toContain('event: details');
    expect((text.match(/event: tick/g) ?? []).length).toBeGreaterThanOrEqual(2);
    // The summary is sent once, then only when it changes.
    expect((text.match(/event: summary/g) ?? []).length).toBeLessThanOrEqual(2);
  });

  it('never logs a token or a session cookie', () => {
    const log = env.logLines.join('');
    expect(log).toContain('console login');
    expect(log).not.toContain(OPERATE_TOKEN);
    expect(log).not.toContain(READ_TOKEN);
    expect(log).not.toContain(operateCookie.split('=')[1]!);
    expect(log).not.toContain(readCookie.split('=')[1]!);
  });
});
