/**
 * `POST /v1/revocations` over a real socket, signed by the `standardwebhooks` package acting as
 * the sender, against a real Redis. No worker runs: accepted jobs just wait on the queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { revocationJobId } from '../../src/queue/job-id.js';
import { openContext } from '../../src/runtime/context.js';
import { resolveConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/logging/logger.js';
import { buildServer } from '../../src/server/build-server.js';
import { bodyHash, WebhookDeliveries } from '../../src/server/webhook-deliveries.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';
import { newWebhookSecret, startTestServer, type TestServer } from './server-test-helpers.js';

const ADMIN_TOKEN = 'admin-token-for-webhook-tests-0001';
const INSTANCE = 'mqtt-cn-webhook01';
const CA = 'ca00000000webhook01';

interface Delivery {
  secret?: string;
  id?: string;
  /** Seconds added to now for the webhook-timestamp. */
  skewSeconds?: number;
  contentType?: string;
  /** Sign this text instead of the body sent (a tampered body). */
  signedPayload?: string;
  omitHeaders?: boolean;
}

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

let counter = 0;
function deliveryId(): string {
  counter += 1;
  return `msg_test_${Date.now()}_${counter}`;
}

describe('webhook', () => {
  const oldSecret = newWebhookSecret();
  const newSecret = newWebhookSecret();
  let server: TestServer;
  let small: TestServer;

  beforeAll(async () => {
    server = await startTestServer('webhook', { adminToken: ADMIN_TOKEN, webhookSecrets: [oldSecret, newSecret] });
    small = await startTestServer('webhook-small', { adminToken: ADMIN_TOKEN, webhookSecrets: [newSecret], options: { maxBodyBytes: 16 * 1024, maxDevicesPerRequest: 50 } });
  });
  afterAll(async () => {
    await server?.close();
    await small?.close();
  });

  async function deliver(target: TestServer, body: unknown, delivery: Delivery = {}): Promise<Answer & { id: string }> {
    const id = delivery.id ?? deliveryId();
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    const date = new Date(Date.now() + (delivery.skewSeconds ?? 0) * 1000);
    const signature = new Webhook(delivery.secret ?? newSecret).sign(id, date, delivery.signedPayload ?? payload);
    const headers: Record<string, string> = { 'content-type': delivery.contentType ?? 'application/json' };
    if (delivery.omitHeaders !== true) {
      // Mixed case on purpose: header names are case-insensitive.
      headers['Webhook-Id'] = id;
      headers['WEBHOOK-TIMESTAMP'] = String(Math.floor(date.getTime() / 1000));
      headers['webhook-signature'] = signature;
    }
    const response = await fetch(`${target.url}/v1/revocations`, { method: 'POST', headers, body: payload });
    const text = await response.text();
    return { id, status: response.status, headers: response.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  function body(deviceSns: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { mqttInstanceId: INSTANCE, caSn: CA, deviceSns, action: 'delete', reason: 'key leak drill', ...extra };
  }

  function serials(label: string, count: number): string[] {
    return Array.from({ length: count }, (_, index) => `${label}${String(index).padStart(6, '0')}`);
  }

  const waiting = (target: TestServer) => target.context.queue.getJobCountByTypes('wait', 'prioritized');
  const batchCount = async (target: TestServer) => (await target.context.batches.list(1_000)).length;

  it('accepts a signed delivery: a webhook batch, one job per device, counters right', async () => {
    const devices = serials('GOOD', 3);
    const before = await waiting(server);
    const answer = await deliver(server, body(devices));
    expect(answer.status).toBe(202);
    expect(answer.json).toEqual({ batchId: expect.any(String) as unknown, accepted: 3, rejected: [], duplicates: 0 });
    const batchId = answer.json.batchId as string;
    for (const deviceSn of devices) {
      const job = await server.context.queue.getJob(`${revocationJobId({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn }, 'delete')}-1`);
      expect(job?.data).toMatchObject({ batchId, mqttInstanceId: INSTANCE, caSn: CA, deviceSn, action: 'delete' });
    }
    expect(await waiting(server)).toBe(before + 3);
    const batch = await server.context.batches.get(batchId);
    // The creator is the sender the secret belongs to (WEBHOOK_SECRETS: `default`), never a value the sender chose.
    expect(batch).toMatchObject({ source: 'webhook', createdBy: 'webhook:default', name: `webhook ${answer.id}`, action: 'delete', accepted: 3, rejected: 0, duplicates: 0, enqueued: true, state: 'running' });
  });

  it('takes the action and the batch name from the body and counts duplicates', async () => {
    const [first, second] = serials('NAMED', 2) as [string, string];
    const answer = await deliver(server, body([first, second, first], { action: 'inactivate', name: 'decommission lot 7' }));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 2, duplicates: 1, rejected: [] });
    const batch = await server.context.batches.get(answer.json.batchId as string);
    expect(batch).toMatchObject({ name: 'decommission lot 7', action: 'inactivate', duplicates: 1 });
    expect(await server.context.queue.getJob(`${revocationJobId({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: first }, 'inactivate')}-1`)).toBeDefined();
  });

  it('refuses a wrong secret with 401 and enqueues nothing, and remembers nothing for that id', async () => {
    const before = { waiting: await waiting(server), batches: await batchCount(server) };
    const id = deliveryId();
    const refused = await deliver(server, body(serials('WRONG', 2)), { secret: newWebhookSecret(), id });
    expect(refused.status).toBe(401);
    expect(refused.json).toEqual({ error: { code: 'invalid_signature', message: expect.any(String) as unknown } });
    expect(await waiting(server)).toBe(before.waiting);
    expect(await batchCount(server)).toBe(before.batches);
    // An unauthenticated request must not poison the id for the real sender.
    expect((await deliver(server, body(serials('WRONG', 2)), { id })).status).toBe(202);
  });

  it('refuses a tampered body, missing headers and a garbage signature with 401', async () => {
    const before = await waiting(server);
    const sent = body(serials('TAMPER', 1));
    const tampered = await deliver(server, sent, { signedPayload: JSON.stringify(body(serials('OTHER', 1))) });
    expect(tampered.status).toBe(401);
    const missing = await deliver(server, sent, { omitHeaders: true });
    expect(missing.status).toBe(401);
    expect(missing.json).toMatchObject({ error: { code: 'invalid_signature' } });
    const garbage = await fetch(`${server.url}/v1/revocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': deliveryId(), 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA v2,BBBB' },
      body: JSON.stringify(sent),
    });
    expect(garbage.status).toBe(401);
    expect(await waiting(server)).toBe(before);
  });

  it('accepts either secret during a rotation', async () => {
    expect((await deliver(server, body(serials('ROTOLD', 1)), { secret: oldSecret })).status).toBe(202);
    expect((await deliver(server, body(serials('ROTNEW', 1)), { secret: newSecret })).status).toBe(202);
    // The small server only has the new secret: the old one is refused there.
    expect((await deliver(small, body(serials('ROTGONE', 1)), { secret: oldSecret })).status).toBe(401);
  });

  it('refuses timestamps 10 minutes old or ahead with 401', async () => {
    const before = await waiting(server);
    const stale = await deliver(server, body(serials('STALE', 1)), { skewSeconds: -600 });
    expect(stale.status).toBe(401);
    expect(stale.json).toMatchObject({ error: { code: 'stale_timestamp' } });
    const ahead = await deliver(server, body(serials('AHEAD', 1)), { skewSeconds: 600 });
    expect(ahead.status).toBe(401);
    // Within the 5-minute tolerance: accepted.
    expect((await deliver(server, body(serials('SKEWOK', 1)), { skewSeconds: -240 })).status).toBe(202);
    expect(await waiting(server)).toBe(before + 1);
  });

  it('answers a repeated webhook-id with the first answer, and the same id with another body 409; enqueues nothing again', async () => {
    const id = deliveryId();
    const first = await deliver(server, body(serials('REPLAY', 4)), { id });
    expect(first.status).toBe(202);
    const state = { waiting: await waiting(server), batches: await batchCount(server) };
    const again = await deliver(server, body(serials('REPLAY', 4)), { id });
    expect(again.status).toBe(first.status);
    expect(again.json).toEqual(first.json);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // A different body under the same id (signed, so from the sender) is not silently given the first answer.
    const different = await deliver(server, body(serials('REPLAYX', 9)), { id, secret: oldSecret });
    expect(different.status).toBe(409);
    expect(different.json).toMatchObject({ error: { code: 'webhook_id_reused', message: expect.stringContaining(id) as unknown } });
    expect(await waiting(server)).toBe(state.waiting);
    expect(await batchCount(server)).toBe(state.batches);
  });

  it('answers 409 while the same delivery is being processed, then processes it once', async () => {
    const id = deliveryId();
    const deliveries = new WebhookDeliveries(server.context.redis, server.context.keys, { answerSeconds: 60, processingSeconds: 60 });
    const claim = await deliveries.claim('default', id, bodyHash(JSON.stringify(body(serials('BUSY', 1)))));
    expect(claim.kind).toBe('claimed');
    const busy = await deliver(server, body(serials('BUSY', 1)), { id });
    expect(busy.status).toBe(409);
    expect(busy.json).toMatchObject({ error: { code: 'delivery_in_progress' } });
    if (claim.kind === 'claimed') await deliveries.release('default', id, claim.token);
    expect((await deliver(server, body(serials('BUSY', 1)), { id })).status).toBe(202);
  });

  it('lets only one of several concurrent deliveries of one id enqueue', async () => {
    const id = deliveryId();
    const before = { waiting: await waiting(server), batches: await batchCount(server) };
    const devices = serials('RACE', 2_000);
    const answers = await Promise.all(Array.from({ length: 5 }, () => deliver(server, body(devices), { id })));
    const accepted = answers.filter((answer) => answer.status === 202);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    for (const answer of answers) expect([202, 409]).toContain(answer.status);
    // Every 202 is the same answer (the first, or its replay).
    for (const answer of accepted) expect(answer.json).toEqual(accepted[0]?.json);
    expect(await batchCount(server)).toBe(before.batches + 1);
    expect(await waiting(server)).toBe(before.waiting + 2_000);
  });

  it('refuses malformed JSON with 400 and replays that answer for the same id', async () => {
    const id = deliveryId();
    const before = await batchCount(server);
    const answer = await deliver(server, '{"deviceSns": [', { id });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: { code: 'malformed_json' } });
    expect((await deliver(server, '{"deviceSns": [', { id })).json).toEqual(answer.json);
    expect(await batchCount(server)).toBe(before);
  });

  it('refuses invalid bodies with the validation code, creating no batch', async () => {
    const before = { waiting: await waiting(server), batches: await batchCount(server) };
    const unknownAction = await deliver(server, body(serials('BADACT', 1), { action: 'explode' }));
    expect(unknownAction.status).toBe(400);
    expect(unknownAction.json).toMatchObject({ error: { code: 'invalid_action' } });
    const noDevices = await deliver(server, { mqttInstanceId: INSTANCE, caSn: CA });
    expect(noDevices.json).toMatchObject({ error: { code: 'missing_devices' } });
    const notObject = await deliver(server, '[1,2]');
    expect(notObject.status).toBe(400);
    expect(await waiting(server)).toBe(before.waiting);
    expect(await batchCount(server)).toBe(before.batches);
  });

  it('refuses an oversized body with 413 body_too_large', async () => {
    const before = await waiting(small);
    const answer = await deliver(small, body(serials('X'.repeat(100), 200)));
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: { code: 'body_too_large' } });
    // The default limit is 1 MiB.
    const huge = await deliver(server, body(serials('H'.repeat(100), 11_000)));
    expect(huge.status).toBe(413);
    expect(await waiting(small)).toBe(before);
  });

  it('accepts a large delivery within the limits (the smaller admin body limit does not apply)', async () => {
    const devices = serials(`LARGE${'L'.repeat(40)}`, 9_000);
    const answer = await deliver(server, body(devices));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 9_000, rejected: [] });
  });

  it('refuses more devices than allowed with 413 too_many_devices', async () => {
    const before = { waiting: await waiting(small), batches: await batchCount(small) };
    const answer = await deliver(small, body(serials('MANY', 51)));
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: { code: 'too_many_devices' } });
    expect(await waiting(small)).toBe(before.waiting);
    expect(await batchCount(small)).toBe(before.batches);
    expect((await deliver(small, body(serials('MANY', 50)))).status).toBe(202);
  });

  it('accepts the good serials of a delivery and lists the bad one in rejected', async () => {
    const [a, b] = serials('MIXED', 2) as [string, string];
    const answer = await deliver(server, body([a, 'bad serial', b, 42]));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({
      accepted: 2,
      duplicates: 0,
      rejected: [
        { index: 1, reason: expect.stringContaining('whitespace') as unknown, deviceSn: 'bad serial' },
        { index: 3, reason: expect.any(String) as unknown },
      ],
    });
    const batch = await server.context.batches.get(answer.json.batchId as string);
    expect(batch).toMatchObject({ accepted: 2, rejected: 2 });
    const rows = [];
    for await (const row of server.context.batches.rejectedRows(answer.json.batchId as string)) rows.push(row);
    expect(rows.map((row) => row.line)).toEqual([1, 3]);
  });

  it('refuses other content types with 415', async () => {
    const before = await waiting(server);
    const answer = await deliver(server, body(serials('TEXT', 1)), { contentType: 'text/plain' });
    expect(answer.status).toBe(415);
    expect(answer.json).toMatchObject({ error: { code: 'unsupported_media_type' } });
    const form = await deliver(server, 'deviceSns=a', { contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(await waiting(server)).toBe(before);
    // A charset parameter is still JSON.
    expect((await deliver(server, body(serials('CHARSET', 1)), { contentType: 'application/json; charset=utf-8' })).status).toBe(202);
  });

  it('does not let __proto__ keys pollute prototypes or supply fields', async () => {
    const raw = `{"__proto__":{"polluted":"yes","caSn":"${CA}"},"mqttInstanceId":"${INSTANCE}","deviceSns":[{"deviceSn":"PROTO000001","__proto__":{"caSn":"${CA}"}}]}`;
    const answer = await deliver(server, raw);
    expect(answer.status).toBe(202);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('caSn');
    // The CaSn hidden in __proto__ was not taken: the only entry is refused for lacking one.
    expect(answer.json).toMatchObject({ accepted: 0, rejected: [{ index: 0, reason: expect.stringContaining('CaSn is missing') as unknown }] });
  });

  it('never logs signatures or secrets', () => {
    const log = server.logLines.join('');
    expect(log).toContain('webhook delivery enqueued');
    for (const secret of [oldSecret, newSecret, oldSecret.slice(6), newSecret.slice(6)]) expect(log).not.toContain(secret);
    expect(log).not.toMatch(/v1,[A-Za-z0-9+/]{20,}/);
  });
});

describe('server configuration', () => {
  it('answers 503 webhooks_not_configured without WEBHOOK_SECRETS, and serves the rest', async () => {
    const server = await startTestServer('webhook-none', { adminToken: ADMIN_TOKEN });
    try {
      const secret = newWebhookSecret();
      const payload = JSON.stringify({ mqttInstanceId: INSTANCE, caSn: CA, deviceSns: ['NOSECRET01'] });
      const id = deliveryId();
      const date = new Date();
      const response = await fetch(`${server.url}/v1/revocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(date.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, date, payload) },
        body: payload,
      });
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ error: { code: 'webhooks_not_configured' } });
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect(await server.context.queue.getJobCountByTypes('wait', 'prioritized')).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('refuses to build without ADMIN_TOKEN', async () => {
    const prefix = uniquePrefix('webhook-noadmin');
    const context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, WEBHOOK_SECRETS: newWebhookSecret() }), 'test-noadmin');
    try {
      await expect(buildServer({ context, logger: createLogger('silent', 'test') })).rejects.toThrow('ADMIN_TOKEN must be set to start the server');
    } finally {
      await context.close();
      await removePrefix(prefix);
    }
  });
});
