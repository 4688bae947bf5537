/**
 * Starting a revocation of everything under a CA from the console, against the emulator: the
 * listing runs through the shared budgets and shows its progress, the plan counts the listed
 * devices, the apply starts a `ca_listing` batch that the worker finishes; an unknown CA ends the
 * plan with the API's answer and starts nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices } from '../../src/emulator/index.js';
import { waitFor } from '../helpers/redis.js';
import { CA_SN, INSTANCE, OPERATE_TOKEN, signIn, startConsole, type ConsoleEnv } from './console-test-helpers.js';

let env: ConsoleEnv;
let cookie: string;
const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_SN, count: 230, prefix: 'ca-listing' });

function post(path: string, body: Record<string, string>): Promise<Response> {
  return fetch(`${env.url}${path}`, { method: 'POST', redirect: 'manual', headers: { cookie, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() });
}

async function planOf(draftPath: string, text: string): Promise<string> {
  return waitFor(async () => {
    const page = await (await fetch(`${env.url}${draftPath}`, { headers: { cookie } })).text();
    return page.includes(text) ? page : null;
  }, `"${text}" on the plan`, 20_000);
}

beforeAll(async () => {
  env = await startConsole('console-ca', { pipeline: { devices, latency: { medianMs: 1, p99Ms: 5 } } });
  cookie = await signIn(env.url, OPERATE_TOKEN);
});

afterAll(async () => {
  await env?.close();
});

describe('console: everything under a CA', () => {
  it('lists the CA, plans it, and starts the batch', async () => {
    const listing = await post('/console/new/ca', { instance: INSTANCE, caSn: CA_SN, action: 'delete', priority: 'urgent', reason: 'INC-77' });
    expect(listing.status).toBe(303);
    const draftPath = listing.headers.get('location') ?? '';
    const plan = await planOf(draftPath, 'Estimated duration');
    expect(plan).toContain(`delete every device certificate under CA ${CA_SN} (230 listed)`);
    expect(plan).toContain('the listing took 4 calls');
    const applied = await post(`${draftPath}/apply`, {});
    expect(applied.status).toBe(303);
    const batchId = /\/console\/batches\/([^?]+)/.exec(applied.headers.get('location') ?? '')?.[1] ?? '';
    const batch = await waitFor(async () => {
      const found = await env.context.batches.get(batchId);
      return found?.state === 'completed' ? found : null;
    }, 'the batch completed', 30_000);
    expect(batch).toMatchObject({ source: 'ca_listing', priority: 'urgent', accepted: 230, createdBy: 'token:admin', counts: { deleted: 230 } });
  });

  it('shows the API\'s answer for a CA that is not there, and starts nothing', async () => {
    const before = (await env.context.batches.list(100)).length;
    const listing = await post('/console/new/ca', { instance: INSTANCE, caSn: 'ca0000000nosuchca', action: 'delete', priority: 'normal' });
    const plan = await planOf(listing.headers.get('location') ?? '', 'could not be made');
    expect(plan).toContain('FindCaBySnError');
    expect(plan).not.toContain('device certificates now');
    expect((await env.context.batches.list(100)).length).toBe(before);
  });
});
