/**
 * Hostile requests to `POST /v1/revocations` (issue 7, "Bad input"): signature tricks, header
 * case, repeated headers, prototype-pollution keys, deeply nested JSON, wrong content types and
 * bodies that are JSON but not an object. Each is refused cleanly (or, where the request is
 * legitimate, handled normally), nothing is enqueued by a refused request, and afterwards the
 * server still answers a good delivery and its probes.
 *
 * Requests go over a real socket with `node:http`, not fetch: fetch lower-cases header names and
 * cannot send a header twice, and both are what some of these cases are about. Signatures are made
 * by the `standardwebhooks` package, as a real sender would.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { revocationJobId } from '../../src/queue/job-id.js';
import { MAX_JSON_DEPTH } from '../../src/server/json-body.js';
import { newWebhookSecret, startTestServer, type TestServer } from '../server/server-test-helpers.js';

const ADMIN_TOKEN = 'admin-token-for-hostile-webhooks-01';
const INSTANCE = 'mqtt-cn-hostile02';
const CA = 'ca00000000hostile02';

/** Header name → value (or several values: one header line each), names sent with the case given. */
type RawHeaders = Record<string, string | string[]>;

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

let counter = 0;
function newId(): string {
  counter += 1;
  return `msg_hostile_${Date.now()}_${counter}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The `v1,<base64>` signature of a delivery. */
function sign(secret: string, id: string, timestampSeconds: number, payload: string): string {
  return new Webhook(secret).sign(id, new Date(timestampSeconds * 1000), payload);
}

function errorCode(answer: Answer): unknown {
  return (answer.json.error as { code?: unknown } | undefined)?.code;
}

describe('hostile webhook requests', () => {
  const secret = newWebhookSecret();
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('hostile-webhook', { adminToken: ADMIN_TOKEN, webhookSecrets: [secret] });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** POSTs raw bytes with exactly these headers (plus Content-Length). */
  function post(path: string, headers: RawHeaders, body: string | Buffer): Promise<Answer> {
    const url = new URL(server.url);
    const bytes = Buffer.from(body);
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        { host: url.hostname, port: url.port, method: 'POST', path, headers: { ...headers, 'Content-Length': String(bytes.length) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown>;
            try {
              json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
            } catch {
              json = { unparsed: text };
            }
            resolve({ status: response.statusCode ?? 0, json });
          });
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(bytes);
    });
  }

  /** Properly signed headers for this payload, which a case may then alter. */
  function signedHeaders(payload: string, id = newId(), timestampSeconds = nowSeconds()): RawHeaders {
    return {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(timestampSeconds),
      'webhook-signature': sign(secret, id, timestampSeconds, payload),
    };
  }

  function deliver(payload: string, headers: RawHeaders = signedHeaders(payload)): Promise<Answer> {
    return post('/v1/revocations', headers, payload);
  }

  function body(deviceSns: unknown[], extra: Record<string, unknown> = {}): string {
    return JSON.stringify({ mqttInstanceId: INSTANCE, caSn: CA, deviceSns, action: 'delete', ...extra });
  }

  let serial = 0;
  function serials(count: number): string[] {
    return Array.from({ length: count }, () => {
      serial += 1;
      return `HOSTILE${String(serial).padStart(6, '0')}`;
    });
  }

  async function snapshot(): Promise<{ waiting: number; batches: number }> {
    return { waiting: await server.context.queue.getJobCountByTypes('wait', 'prioritized'), batches: (await server.context.batches.list(1_000)).length };
  }

  /** Sends a request that must be refused with `status`, and checks it left no job and no batch. */
  async function expectRefused(send: () => Promise<Answer>, status: number | number[], code?: string): Promise<Answer> {
    const before = await snapshot();
    const answer = await send();
    expect(Array.isArray(status) ? status : [status], JSON.stringify(answer.json)).toContain(answer.status);
    expect(answer.json).toEqual({ error: { code: expect.any(String) as unknown, message: expect.any(String) as unknown } });
    if (code !== undefined) expect(errorCode(answer)).toBe(code);
    expect(await snapshot()).toEqual(before);
    return answer;
  }

  describe('signature tricks', () => {
    it('refuses a v1 signature made with a different secret', async () => {
      const payload = body(serials(1));
      const id = newId();
      const timestamp = nowSeconds();
      const headers = { ...signedHeaders(payload, id, timestamp), 'webhook-signature': sign(newWebhookSecret(), id, timestamp, payload) };
      await expectRefused(() => deliver(payload, headers), 401, 'invalid_signature');
    });

    it('refuses the correct signature of another body', async () => {
      const signedPayload = body(serials(1));
      const sentPayload = body(serials(1));
      await expectRefused(() => deliver(sentPayload, signedHeaders(signedPayload)), 401, 'invalid_signature');
      // One byte of difference is enough: a trailing space.
      await expectRefused(() => deliver(`${signedPayload} `, signedHeaders(signedPayload)), 401, 'invalid_signature');
    });

    it('refuses a signature made for another webhook-id or another timestamp', async () => {
      const payload = body(serials(1));
      const timestamp = nowSeconds();
      const otherId = { ...signedHeaders(payload, newId(), timestamp), 'webhook-signature': sign(secret, newId(), timestamp, payload) };
      await expectRefused(() => deliver(payload, otherId), 401, 'invalid_signature');
      const id = newId();
      const otherTime = { ...signedHeaders(payload, id, timestamp), 'webhook-signature': sign(secret, id, timestamp - 1, payload) };
      await expectRefused(() => deliver(payload, otherTime), 401, 'invalid_signature');
    });

    it('refuses an empty signature, an unknown version, and signatures without a version', async () => {
      const payload = body(serials(1));
      const headers = signedHeaders(payload);
      const value = String(headers['webhook-signature']).slice('v1,'.length);
      for (const signature of ['', ' ', 'v1,', 'v1', `v2,${value}`, `v1a,${value}`, value, `V1,${value}`, `,${value}`]) {
        await expectRefused(() => deliver(payload, { ...headers, 'webhook-signature': signature }), 401, 'invalid_signature');
      }
    });

    it('refuses a correct signature with a stale or future timestamp', async () => {
      const payload = body(serials(1));
      for (const skewSeconds of [-600, 600]) {
        await expectRefused(() => deliver(payload, signedHeaders(payload, newId(), nowSeconds() + skewSeconds)), 401, 'stale_timestamp');
      }
    });

    it('accepts a signature list in which one entry matches, in either order (Standard Webhooks: any match)', async () => {
      for (const goodFirst of [false, true]) {
        const payload = body(serials(2));
        const headers = signedHeaders(payload);
        const good = String(headers['webhook-signature']);
        const bad = `v1,${Buffer.alloc(32, 7).toString('base64')}`;
        const before = await snapshot();
        const answer = await deliver(payload, { ...headers, 'webhook-signature': goodFirst ? `${good} ${bad}` : `${bad} ${good}` });
        expect(answer.status, JSON.stringify(answer.json)).toBe(202);
        expect(answer.json).toMatchObject({ accepted: 2, rejected: [] });
        expect(await snapshot()).toEqual({ waiting: before.waiting + 2, batches: before.batches + 1 });
      }
    });

    it('refuses a list of bad signatures only', async () => {
      const payload = body(serials(1));
      const list = Array.from({ length: 20 }, (_, index) => `v1,${Buffer.alloc(32, index).toString('base64')}`).join(' ');
      await expectRefused(() => deliver(payload, { ...signedHeaders(payload), 'webhook-signature': list }), 401, 'invalid_signature');
    });
  });

  describe('headers', () => {
    it('accepts the signed headers in any letter case (HTTP header names are case-insensitive)', async () => {
      const payload = body(serials(1));
      const id = newId();
      const timestamp = nowSeconds();
      const answer = await deliver(payload, {
        'Content-Type': 'application/json',
        'Webhook-Id': id,
        'webhook-TIMESTAMP': String(timestamp),
        'WEBHOOK-SIGNATURE': sign(secret, id, timestamp, payload),
      });
      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      const batch = await server.context.batches.get(answer.json.batchId as string);
      expect(batch).toMatchObject({ name: `webhook ${id}`, createdBy: 'webhook:default', accepted: 1 });
    });

    it('refuses two webhook-id headers (Node would join them into a third id "a, b") and leaves both ids unused', async () => {
      const payload = body(serials(1));
      const [first, second] = [newId(), newId()];
      const timestamp = nowSeconds();
      // Signed for the first id, for the second, and for the joined value: none may get through.
      for (const signedId of [first, second, `${first}, ${second}`]) {
        const headers = { ...signedHeaders(payload, signedId, timestamp), 'webhook-id': [first, second] };
        await expectRefused(() => deliver(payload, headers), [400, 401]);
      }
      // The same id twice is a repeat too.
      await expectRefused(() => deliver(payload, { ...signedHeaders(payload, first, timestamp), 'webhook-id': [first, first] }), [400, 401]);
      // Neither id was recorded as delivered: each is processed afresh (its own batch), not replayed.
      for (const id of [first, second]) {
        const fresh = body(serials(1));
        const answer = await deliver(fresh, signedHeaders(fresh, id, timestamp));
        expect(answer.status, JSON.stringify(answer.json)).toBe(202);
        expect(answer.json.accepted).toBe(1);
        expect(await server.context.batches.get(answer.json.batchId as string)).toMatchObject({ name: `webhook ${id}` });
      }
    });

    it('refuses a repeated webhook-signature or webhook-timestamp header even when one copy is valid', async () => {
      const payload = body(serials(1));
      const headers = signedHeaders(payload);
      const good = String(headers['webhook-signature']);
      const bad = `v1,${Buffer.alloc(32, 1).toString('base64')}`;
      await expectRefused(() => deliver(payload, { ...headers, 'webhook-signature': [bad, good] }), 400, 'duplicate_header');
      await expectRefused(() => deliver(payload, { ...headers, 'webhook-signature': [good, good] }), 400, 'duplicate_header');
      const timestamp = String(headers['webhook-timestamp']);
      await expectRefused(() => deliver(payload, { ...headers, 'webhook-timestamp': [timestamp, timestamp] }), [400, 401]);
      // The request as sent once is fine.
      expect((await deliver(payload, headers)).status).toBe(202);
    });
  });

  describe('hostile JSON', () => {
    it('ignores __proto__ and constructor.prototype keys: no pollution, no smuggled fields, the rest handled normally', async () => {
      const [plain, withProtoKey] = serials(2) as [string, string];
      // Written by hand: JSON.stringify would not emit a "__proto__" own key from a literal.
      const payload = `{"__proto__":{"polluted":"yes","caSn":"evilca01","isAdmin":true},
        "constructor":{"prototype":{"polluted2":"yes"}},
        "mqttInstanceId":"${INSTANCE}","caSn":"${CA}","action":"delete",
        "deviceSns":["${plain}",{"__proto__":{"deviceSn":"SMUGGLED01"}},{"deviceSn":"${withProtoKey}","__proto__":{"caSn":"evilca02","mqttInstanceId":"mqtt-cn-evil01"}}]}`;
      const before = await snapshot();
      const answer = await deliver(payload);
      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      expect(answer.json).toMatchObject({ accepted: 2, rejected: [{ index: 1, reason: 'deviceSn is missing' }] });
      expect(await snapshot()).toEqual({ waiting: before.waiting + 2, batches: before.batches + 1 });

      const probe: Record<string, unknown> = {};
      expect(probe.polluted).toBeUndefined();
      expect(probe.polluted2).toBeUndefined();
      expect(probe.isAdmin).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(Object.prototype).not.toHaveProperty('caSn');
      // The per-entry values are the top-level ones, not anything planted under __proto__.
      const job = await server.context.queue.getJob(`${revocationJobId({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: withProtoKey }, 'delete')}-1`);
      expect(job?.data).toMatchObject({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: withProtoKey });
    });

    it('does not take caSn from a __proto__ key when the body has none', async () => {
      const payload = `{"__proto__":{"caSn":"evilca01"},"mqttInstanceId":"${INSTANCE}","deviceSns":["${serials(1)[0] ?? ''}"]}`;
      const before = await snapshot();
      const answer = await deliver(payload);
      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      expect(answer.json).toMatchObject({ accepted: 0, rejected: [{ index: 0, reason: 'CaSn is missing: give caSn at the top level or on the entry' }] });
      expect(await server.context.queue.getJobCountByTypes('wait', 'prioritized')).toBe(before.waiting);
      expect(Object.prototype).not.toHaveProperty('caSn');
    });

    it('refuses deeply nested JSON with 400 (or 413 when over the size limit), and stays up', async () => {
      const depth = 100_000;
      const cases = [
        '['.repeat(depth) + ']'.repeat(depth), // valid JSON, absurdly deep
        '['.repeat(depth), // never closed
        '{"a":'.repeat(depth) + '1' + '}'.repeat(depth), // objects, valid
        // Deep inside an otherwise valid body, under an ignored key.
        `{"mqttInstanceId":"${INSTANCE}","caSn":"${CA}","deviceSns":["DEEP0001"],"extra":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      ];
      for (const payload of cases) {
        const answer = await expectRefused(() => deliver(payload), 400, 'malformed_json');
        expect(String((answer.json.error as { message: string }).message)).toMatch(/deeper than/);
      }
      // Just past the limit is refused; a body at a legitimate depth still goes through (below).
      const justPast = '['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1);
      await expectRefused(() => deliver(justPast), 400, 'malformed_json');
      // Brackets inside strings are text, not nesting, escaped quotes and backslashes included.
      const bracketsInText = body(serials(1), { reason: `${'\\"['.repeat(300)}${'{'.repeat(90)}` });
      expect((await deliver(bracketsInText)).status).toBe(202);

      // Over the 1 MiB body limit: refused before it is read.
      const huge = '['.repeat(2 * 1024 * 1024);
      await expectRefused(() => deliver(huge), 413, 'body_too_large');
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    });

    it('refuses a body that is JSON but not an object with 400', async () => {
      for (const payload of ['42', '-1e308', '[]', `[${body(serials(1))}]`, 'null', 'true', '"deviceSns"']) {
        await expectRefused(() => deliver(payload), 400, 'invalid_body');
      }
      for (const payload of ['{', '{"deviceSns":["A"],}', "{'deviceSns':['A']}", 'NaN', '\u0000']) {
        await expectRefused(() => deliver(payload), 400, 'malformed_json');
      }
    });
  });

  describe('content types', () => {
    it('refuses anything but application/json with 415, even when properly signed', async () => {
      const payload = body(serials(1));
      const { 'content-type': _json, ...withoutType } = signedHeaders(payload);
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json-patch+json', 'application/jsonx', 'text/json']) {
        await expectRefused(() => deliver(payload, { ...signedHeaders(payload), 'content-type': contentType }), 415, 'unsupported_media_type');
      }
      await expectRefused(() => deliver(payload, withoutType), 415, 'unsupported_media_type');
    });

    it('accepts application/json with parameters or in capitals (media types are case-insensitive)', async () => {
      for (const contentType of ['application/json; charset=utf-8', 'Application/JSON']) {
        const payload = body(serials(1));
        const answer = await deliver(payload, { ...signedHeaders(payload), 'content-type': contentType });
        expect(answer.status, `${contentType}: ${JSON.stringify(answer.json)}`).toBe(202);
      }
    });
  });

  it('after all of that, still takes a good delivery and answers its probes', async () => {
    const devices = serials(3);
    const before = await snapshot();
    const answer = await deliver(body(devices));
    expect(answer.status, JSON.stringify(answer.json)).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 3, rejected: [], duplicates: 0 });
    expect(await snapshot()).toEqual({ waiting: before.waiting + 3, batches: before.batches + 1 });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});
