/**
 * Webhook senders under least privilege (issue 13, findings 1, 2, 3, 5 and 8), over real HTTP
 * against a real Redis, each with the probe that found it:
 *
 * - a callbackUrl at the review's probes, or at a name resolving inside, is refused with 400
 *   naming the rule, whatever the allow-list says; an allowed origin is accepted;
 * - a sender outside its scope (instance, CA, action, priority, callback origin) gets 403 and
 *   nothing is enqueued; the batch records the sender's name, not a value the sender chose;
 * - over its quota of devices per hour: 429 with Retry-After;
 * - a reused webhook-id with another body: 409, nothing enqueued; replays are answered from a
 *   compact stored answer (a delivery of 2,000 invalid serials stores bytes, not megabytes);
 * - 12 concurrent deliveries against a high-water mark of 100 leave at most 100 waiting;
 * - `name` and `reason` with terminal escape sequences are refused.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostLookup } from '../../src/events/callback-policy.js';
import { newWebhookSecret, startTestServer, type TestServer } from '../server/server-test-helpers.js';

const ADMIN_TOKEN = 'admin-token-for-the-webhook-senders-suite-01';
const FLEET_SECRET = newWebhookSecret();
const OPS_SECRET = newWebhookSecret();
const ALLOWED = 'https://hooks.example.com';
const OTHER_ALLOWED = 'https://audit.example.com';

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

let counter = 0;
function newId(): string {
  counter += 1;
  return `msg_senders_${Date.now()}_${counter}`;
}

async function deliver(server: TestServer, secret: string, body: unknown, id = newId()): Promise<Answer> {
  const payload = JSON.stringify(body);
  const date = new Date();
  const response = await fetch(`${server.url}/v1/revocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(date.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, date, payload) },
    body: payload,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

let serial = 0;
function serials(count: number, label = 'SND'): string[] {
  return Array.from({ length: count }, () => `${label}${String((serial += 1)).padStart(7, '0')}`);
}

const errorCode = (answer: Answer) => (answer.json.error as { code?: string } | undefined)?.code;

describe('webhook senders', () => {
  let dir: string;
  let server: TestServer;
  // Names the review used, resolved by a stand-in resolver (no DNS in tests).
  const lookup: HostLookup = (host) => Promise.resolve(host === 'hooks.internal.example' ? [{ address: '10.0.0.7', family: 4 }] : host.endsWith('.example.com') ? [{ address: '93.184.216.34', family: 4 }] : []);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revoker-senders-'));
    const sendersFile = join(dir, 'senders.json');
    await writeFile(
      sendersFile,
      JSON.stringify({
        senders: [
          { name: 'fleet', secrets: [FLEET_SECRET], instances: ['mqtt-cn-fleet*'], caSns: ['cafleet0001'], actions: ['inactivate'], maxPriority: 'normal', callbackOrigins: [ALLOWED], devicesPerHour: 50 },
          { name: 'ops', secrets: [OPS_SECRET], instances: ['*'], caSns: ['*'], actions: ['delete', 'inactivate'], maxPriority: 'urgent', callbackOrigins: [ALLOWED, OTHER_ALLOWED, 'http://127.0.0.1:19999', 'http://100.100.100.200', 'http://169.254.169.254', 'https://hooks.internal.example'], devicesPerHour: null },
        ],
      }),
    );
    server = await startTestServer('webhook-senders', {
      adminToken: ADMIN_TOKEN,
      env: { WEBHOOK_SENDERS_FILE: sendersFile, EVENTS_ALLOWED_ORIGINS: [ALLOWED, OTHER_ALLOWED, 'http://127.0.0.1:19999', 'http://100.100.100.200', 'http://169.254.169.254', 'https://hooks.internal.example'].join(',') },
      lookup,
    });
  });
  afterAll(async () => {
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const waiting = () => server.context.queue.getJobCountByTypes('wait', 'prioritized');
  const batchCount = async () => (await server.context.batches.list(1_000)).length;

  async function expectNothingEnqueued(send: () => Promise<Answer>, status: number, code: string): Promise<Answer> {
    const before = { waiting: await waiting(), batches: await batchCount() };
    const answer = await send();
    expect(answer.status, JSON.stringify(answer.json)).toBe(status);
    expect(errorCode(answer)).toBe(code);
    expect({ waiting: await waiting(), batches: await batchCount() }).toEqual(before);
    return answer;
  }

  function fleetBody(extra: Record<string, unknown> = {}, count = 2): Record<string, unknown> {
    return { mqttInstanceId: 'mqtt-cn-fleet01', caSn: 'cafleet0001', deviceSns: serials(count, 'FLEET'), action: 'inactivate', ...extra };
  }

  describe('callbackUrl (SSRF)', () => {
    it.each([
      ['http://127.0.0.1:19999/actuator/shutdown?force=true'],
      ['http://2130706433:19999/'],
      ['http://[::ffff:127.0.0.1]:19999/'],
      ['http://100.100.100.200/latest/meta-data/'],
      ['http://169.254.169.254/latest/meta-data/'],
    ])('refuses %s with 400 callback_address_forbidden, though its origin is allowed', async (callbackUrl) => {
      const answer = await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: ['INVALID SERIAL'], callbackUrl }), 400, 'callback_address_forbidden');
      expect(String((answer.json.error as { message: string }).message)).toMatch(/forbidden address/);
    });

    it('refuses a DNS name that resolves to a private address', async () => {
      await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), callbackUrl: 'https://hooks.internal.example/revoker' }), 400, 'callback_address_forbidden');
    });

    it('refuses an origin off the allow-list, and http where https is listed, naming the rule', async () => {
      await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), callbackUrl: 'https://evil.example.net/x' }), 400, 'callback_origin_not_allowed');
      await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), callbackUrl: 'http://hooks.example.com/x' }), 400, 'callback_https_required');
    });

    it('accepts an allowed origin and stores it with the batch', async () => {
      const answer = await deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), callbackUrl: `${ALLOWED}/revoker/events` });
      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      expect(await server.context.redis.hget(server.context.keys.batch(answer.json.batchId as string), 'callbackUrl')).toBe(`${ALLOWED}/revoker/events`);
    });
  });

  describe('scope', () => {
    it('accepts a delivery within scope and records the sender as the batch creator', async () => {
      const answer = await deliver(server, FLEET_SECRET, fleetBody({ callbackUrl: `${ALLOWED}/fleet` }));
      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      expect(await server.context.batches.get(answer.json.batchId as string)).toMatchObject({ createdBy: 'webhook:fleet', accepted: 2, action: 'inactivate' });
    });

    it.each([
      ['another instance', { mqttInstanceId: 'mqtt-cn-other01' }, /instance mqtt-cn-other01/],
      ['another CA', { caSn: 'caother0001' }, /CA caother0001/],
      ['an action it may not ask for', { action: 'delete' }, /action delete/],
      ['a priority above its highest', { priority: 'urgent' }, /priority urgent/],
    ])('refuses %s with 403 outside_scope and enqueues nothing', async (_label, extra, message) => {
      const answer = await expectNothingEnqueued(() => deliver(server, FLEET_SECRET, fleetBody(extra)), 403, 'outside_scope');
      expect((answer.json.error as { message: string }).message).toMatch(message);
    });

    it('refuses the whole delivery when one entry overrides its instance out of scope', async () => {
      const [inside] = serials(1);
      await expectNothingEnqueued(() => deliver(server, FLEET_SECRET, fleetBody({ deviceSns: [inside, { deviceSn: 'FLEETOUT0001', mqttInstanceId: 'mqtt-cn-victim01' }] })), 403, 'outside_scope');
    });

    it('refuses a callback origin allowed to others but not to this sender', async () => {
      await expectNothingEnqueued(() => deliver(server, FLEET_SECRET, fleetBody({ callbackUrl: `${OTHER_ALLOWED}/x` })), 400, 'callback_origin_not_allowed');
    });
  });

  it('answers 429 with Retry-After beyond the sender’s quota of devices per hour', async () => {
    // The fleet quota is 50 an hour, some of it used above: use it up, then one more delivery.
    let answer: Answer;
    do {
      answer = await deliver(server, FLEET_SECRET, fleetBody({}, 10));
    } while (answer.status === 202);
    expect(answer.status, JSON.stringify(answer.json)).toBe(429);
    expect(errorCode(answer)).toBe('quota_exceeded');
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    await expectNothingEnqueued(() => deliver(server, FLEET_SECRET, fleetBody({}, 10)), 429, 'quota_exceeded');
    // Another sender is not held back by it; a delivery larger than a whole hour's quota is 413.
    expect((await deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(3) })).status).toBe(202);
    await expectNothingEnqueued(() => deliver(server, FLEET_SECRET, fleetBody({}, 51)), 413, 'too_many_devices');
  });

  it('answers 409 to a reused webhook-id with another body, and replays the same body from a compact answer', async () => {
    const id = newId();
    // The review's probe: 2,000 invalid serials (its 10,000 stored 3.2 MB, replay answer included).
    const invalid = Array.from({ length: 2_000 }, (_, index) => `bad serial ${index}`);
    const first = await deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: invalid }, id);
    expect(first.status).toBe(202);
    expect((first.json.rejected as unknown[]).length).toBe(2_000);
    const stored = await server.context.redis.get(server.context.keys.webhookDeliveryOf('ops', id));
    expect(stored?.length ?? 0).toBeGreaterThan(0);
    expect(stored!.length).toBeLessThan(400);

    const replay = await deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: invalid }, id);
    expect(replay.status).toBe(202);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.json).toEqual(first.json);

    // The review's probe: same id, another instance and other devices.
    const reused = await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-other02', caSn: 'caops0001', deviceSns: serials(5) }, id), 409, 'webhook_id_reused');
    expect((reused.json.error as { message: string }).message).toContain('different body');
    // Ids are per sender: another sender may use the same one (the ledger is asked before the
    // quota, so even fleet's exhausted quota answering shows the id was free for it).
    const otherSender = await deliver(server, FLEET_SECRET, fleetBody({}, 1), id);
    expect(otherSender.status).not.toBe(409);
    expect(errorCode(otherSender)).not.toBe('webhook_id_reused');
  });

  it('refuses name and reason holding terminal escape sequences', async () => {
    await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), name: 'x\u001b[2K\r[completed] all 50000 devices deleted' }), 400, 'invalid_field');
    await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), reason: 'leak \u001b]52;c;ZWNobyBwd25lZA==\u0007' }), 400, 'invalid_field');
    await expectNothingEnqueued(() => deliver(server, OPS_SECRET, { mqttInstanceId: 'mqtt-cn-ops01', caSn: 'caops0001', deviceSns: serials(1), name: 'evil\u202eexe.txt' }), 400, 'invalid_field');
  });

  it('counts deliveries per sender in the metrics and never logs a sender secret', async () => {
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    expect(metrics).toMatch(/revoker_webhook_deliveries_total\{sender="fleet",status="403"\} [1-9]/);
    expect(metrics).toMatch(/revoker_webhook_deliveries_total\{sender="ops",status="202"\} [1-9]/);
    expect(metrics).toMatch(/revoker_webhook_devices_total\{sender="fleet"\} [1-9]/);
    const log = server.logLines.join('');
    for (const secret of [FLEET_SECRET, OPS_SECRET, FLEET_SECRET.slice(6), OPS_SECRET.slice(6)]) expect(log).not.toContain(secret);
    expect(log).toContain('"sender":"fleet"');
  });
});

describe('high-water mark under concurrent deliveries', () => {
  const secret = newWebhookSecret();
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('webhook-highwater', { adminToken: ADMIN_TOKEN, webhookSecrets: [secret], env: { QUEUE_HIGH_WATER_JOBS: '100' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('reserves room atomically: 12 concurrent deliveries of 25 leave exactly the mark waiting, the rest 503 queue_full', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, index) => deliver(server, secret, { mqttInstanceId: 'mqtt-cn-hw01', caSn: 'cahw0001', deviceSns: serials(25, `HW${index}X`) })));
    const accepted = answers.filter((answer) => answer.status === 202);
    const refused = answers.filter((answer) => answer.status === 503);
    expect(accepted).toHaveLength(4);
    expect(refused).toHaveLength(8);
    for (const answer of refused) {
      expect(errorCode(answer)).toBe('queue_full');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(await server.context.queue.getJobCountByTypes('wait', 'prioritized')).toBe(100);
    expect(await server.context.redis.zcard(server.context.keys.webhookRoom())).toBe(0);
  });

  it('answers the review’s probe (deliveries of 1,000 against a mark of 100) with 413, not an overshoot', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, index) => deliver(server, secret, { mqttInstanceId: 'mqtt-cn-hw01', caSn: 'cahw0001', deviceSns: serials(1_000, `HWB${index}X`) })));
    for (const answer of answers) expect(errorCode(answer)).toBe('too_many_devices');
    expect(await server.context.queue.getJobCountByTypes('wait', 'prioritized')).toBe(100);
  });
});
