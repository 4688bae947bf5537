/**
 * The queue dashboard in a real browser: Debian's Chromium, driven by playwright-core with
 * `executablePath` (nothing downloads a browser). Logs in with the admin token, then checks that
 * both queues are shown.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueDevices } from '../helpers/pipeline.js';
import { startTestServer, type TestServer } from './server-test-helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN_TOKEN = 'Dashb0ard-browser-test-token-0001-long-enough';

// Skipped only where no Chromium is installed: .ci/run installs Debian's package, so CI runs it.
describe.skipIf(!existsSync(CHROMIUM))('dashboard in headless Chromium', () => {
  let server: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await startTestServer('dashboard', { adminToken: ADMIN_TOKEN });
    await enqueueDevices(server.context, [{ mqttInstanceId: 'mqtt-cn-dash01', caSn: 'ca0000000000dash', deviceSn: 'dashdevice0001' }], { name: 'dashboard batch' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a sandboxless VM, no network beyond loopback: keep Chromium from phoning home.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('refuses a browser without the token, and shows both queues after login', async () => {
    const page = await browser.newPage();
    const refused = await page.goto(`${server.url}/admin/queues`);
    expect(refused?.status()).toBe(401);

    // A token in the URL is refused (it would land in access logs and history).
    const inUrl = await page.goto(`${server.url}/admin/login?token=${encodeURIComponent(ADMIN_TOKEN)}`);
    expect(inUrl?.status()).toBe(400);
    // Sign in as a person does: the form, typed, submitted.
    await page.goto(`${server.url}/admin/login`);
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await Promise.all([page.waitForURL(/\/admin\/queues/), page.getByRole('button', { name: 'Log in' }).click()]);
    expect(new URL(page.url()).pathname).toMatch(/^\/admin\/queues/);
    expect(page.url()).not.toContain(ADMIN_TOKEN);
    await page.getByText('revocations').first().waitFor({ timeout: 20_000 });
    await page.getByText('dead-letters').first().waitFor({ timeout: 20_000 });
    const body = await page.textContent('body');
    expect(body).toContain('revocations');
    expect(body).toContain('dead-letters');
    await page.close();
  });
});
