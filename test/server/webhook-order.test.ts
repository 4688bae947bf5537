/**
 * A webhook batch's report lists its devices in body order (issue 14, part 3): the intake records
 * each entry's index in `deviceSns`, refused entries at theirs. Before the one intake path, a
 * webhook batch had no recorded order and its report came out sorted by serial.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { newWebhookSecret, startTestServer, type TestServer } from './server-test-helpers.js';

const ADMIN_TOKEN = 'admin-token-for-webhook-order-tests-01';
const INSTANCE = 'mqtt-cn-whorder01';
const CA = 'ca0000000whorder01';

describe('webhook batches in reports', () => {
  const secret = newWebhookSecret();
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('webhook-order', { adminToken: ADMIN_TOKEN, webhookSecrets: [secret] });
  });
  afterAll(async () => {
    await server?.close();
  });

  async function deliver(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const id = `msg_order_${Date.now()}`;
    const payload = JSON.stringify(body);
    const date = new Date();
    const headers = {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(date.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, date, payload),
    };
    const response = await fetch(`${server.url}/v1/revocations`, { method: 'POST', headers, body: payload });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }

  it('lists the devices in body order, refused entries at their index, in the admin API report', async () => {
    // Neither sorted nor reverse-sorted; two entries are refused (a space, an empty serial).
    const deviceSns = ['ZULU-9', 'alpha-1', 'MIKE 5', 'bravo-2', 'yankee-8', '', 'charlie-3', 'x-ray-7'];
    const answer = await deliver({ mqttInstanceId: INSTANCE, caSn: CA, deviceSns, action: 'delete' });
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ accepted: 6, duplicates: 0 });
    const batchId = answer.json.batchId as string;

    const response = await fetch(`${server.url}/v1/batches/${batchId}/report?format=ndjson`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(response.status).toBe(200);
    const lines = (await response.text())
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { line: number; outcome: string; deviceSn?: string });
    expect(lines.map((line) => [line.line, line.outcome, line.deviceSn ?? null])).toEqual([
      [0, 'pending', 'ZULU-9'],
      [1, 'pending', 'alpha-1'],
      [2, 'rejected', 'MIKE 5'],
      [3, 'pending', 'bravo-2'],
      [4, 'pending', 'yankee-8'],
      [5, 'rejected', null],
      [6, 'pending', 'charlie-3'],
      [7, 'pending', 'x-ray-7'],
    ]);
  });
});
