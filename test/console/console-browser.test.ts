/**
 * The incident console in a real browser: Debian's Chromium, driven by playwright-core with
 * `executablePath` (nothing downloads a browser), against the emulator with a worker running in
 * this process. An operator signs in, starts a batch from a CSV (plan with rejected lines, then
 * apply), pauses it with the keyboard alone and resumes it, watches the progress bar reach 100 %
 * without a reload, searches a serial and downloads the signed report; the page notices a lost
 * stream and reconnects by itself. A `read` session sees no controls and its POSTs get 403. No
 * token or cookie value appears in any URL the browser asked for, and the CSP reports nothing.
 * Screenshots of the overview and of the batch page go to docs/images/.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices } from '../../src/emulator/index.js';
import { verifyReport } from '../../src/report/report-verifier.js';
import { waitFor } from '../helpers/redis.js';
import { CA_SN, INSTANCE, OPERATE_TOKEN, READ_TOKEN, startConsole, type ConsoleEnv } from './console-test-helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IMAGES = join(import.meta.dirname, '..', '..', 'docs', 'images');
const DEVICES = 300;

// Skipped only where no Chromium is installed: .ci/run installs Debian's package, so CI runs it.
// The skipped test's name says why, in the run's output.
if (!existsSync(CHROMIUM)) it.skip(`needs Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`, () => undefined);

describe.skipIf(!existsSync(CHROMIUM))('incident console in headless Chromium', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let dir: string;
  let csvFile: string;
  const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_SN, count: DEVICES, prefix: 'console' });
  const urls: string[] = [];
  const violations: string[] = [];

  async function openContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, reducedMotion: 'reduce' });
    context.on('request', (request) => urls.push(request.url()));
    // Reported from the page as they happen (the binding survives navigations).
    await context.exposeBinding('reportCspViolation', (_source, text: string) => {
      violations.push(text);
    });
    // A string: the test is compiled without the DOM's types; this runs in the page.
    await context.addInitScript({
      content: "document.addEventListener('securitypolicyviolation', (event) => window.reportCspViolation(event.violatedDirective + ' ' + event.blockedURI + ' ' + event.sourceFile + ':' + event.lineNumber));",
    });
    return context;
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${env.url}/console`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await page.getByLabel('Admin token').fill(token);
    await Promise.all([page.waitForURL(`${env.url}/console`), page.getByRole('button', { name: 'Sign in' }).click()]);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revoker-console-browser-'));
    const keyFile = join(dir, 'signing.pem');
    await writeFile(keyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    csvFile = join(dir, 'leaked-devices.csv');
    // Line 1 header; lines 2.. devices; two bad rows (lines 4 and 7) and one device never registered.
    const rows = devices.map((device) => device.deviceSn);
    rows.splice(2, 0, 'has a space');
    rows.splice(5, 0, '');
    rows.push('ffffffffffffffffnotregistered01');
    await writeFile(csvFile, `DeviceSn,CaSn\n${rows.map((serial, index) => (index === 5 ? `,${CA_SN}` : `${serial},${CA_SN}`)).join('\n')}\n`);
    env = await startConsole('console-browser', {
      // 60 calls/s: the batch runs for about 5 s, long enough to pause it on the way.
      pipeline: { devices, latency: { medianMs: 2, p99Ms: 10 } },
      env: { EGRESS_RATE_LIMIT_PER_SECOND: '60', REPORT_SIGNING_KEY_FILE: keyFile },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--font-render-hinting=none'],
    });
    mkdirSync(IMAGES, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await env?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('starts, steers and follows a revocation from a CSV, then hands over the signed report', async () => {
    const context = await openContext();
    const page = await context.newPage();
    await signIn(page, OPERATE_TOKEN);

    // Start: upload, read the plan (rejected rows with their lines), apply.
    await page.getByRole('link', { name: 'Start a revocation' }).first().click();
    await page.getByLabel('Instance id for rows without one').fill(INSTANCE);
    await page.getByLabel('Batch name').first().fill('INC-42 leaked CA');
    await page.getByLabel('Reason', { exact: false }).first().fill('INC-42');
    await page.locator('#csv-file').setInputFiles(csvFile);
    await Promise.all([page.waitForURL(/\/console\/drafts\/d-/), page.getByRole('button', { name: 'Check the file and show the plan' }).click()]);
    await page.getByText('Estimated duration').waitFor();
    const rejected = page.locator('table.rejected tbody tr');
    expect(await rejected.count()).toBe(2);
    expect(await rejected.nth(0).locator('td').first().textContent()).toBe('4');
    expect(await rejected.nth(1).locator('td').first().textContent()).toBe('7');
    const apply = page.locator('#apply');
    expect(await apply.textContent()).toBe(`Delete ${DEVICES + 1} device certificates now`);
    await Promise.all([page.waitForURL(/\/console\/batches\/b-/), apply.click()]);
    const batchId = /\/console\/batches\/([^?#]+)/.exec(page.url())?.[1] ?? '';
    const progress = page.locator(`#progress-${batchId}`);

    // Pause with the keyboard alone: focus the control, open the dialog, type a reason, confirm.
    await waitFor(async () => (await env.context.batches.get(batchId))?.state === 'running', 'the batch running', 10_000);
    await page.locator('#steer-pause').waitFor();
    for (let presses = 0; presses < 80 && (await page.evaluate<string | undefined>('document.activeElement?.id')) !== 'steer-pause'; presses += 1) await page.keyboard.press('Tab');
    expect(await page.evaluate<string | undefined>('document.activeElement?.id')).toBe('steer-pause');
    expect(await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle')).not.toBe('none');
    await page.keyboard.press('Enter');
    const dialog = page.locator('#confirm-dialog');
    await dialog.locator('#confirm-go').waitFor();
    expect(await page.evaluate<boolean>("document.getElementById('confirm-dialog').contains(document.activeElement)")).toBe(true);
    expect(await dialog.locator('#confirm-go').textContent()).toMatch(/^Pause: stop calls for [\d,]+ devices not yet revoked$/);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.insertText('INC-42 checking the CA serial');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string | undefined>('document.activeElement?.id')).toBe('confirm-go');
    await Promise.all([page.waitForURL(/done=pause/), page.keyboard.press('Enter')]);
    expect(await env.context.batches.get(batchId)).toMatchObject({ state: 'paused', reason: 'INC-42 checking the CA serial' });
    await page.locator('.summary .state-paused').waitFor();
    // Paused means no more calls: what is done stays done (a few calls in flight may land).
    const pausedAt = (await env.context.batches.get(batchId))!.done;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await env.context.batches.get(batchId))!.done - pausedAt).toBeLessThanOrEqual(3);
    expect(pausedAt).toBeLessThan(DEVICES);

    // Resume with the mouse, through the same dialog; Escape would have closed it.
    await page.locator('#steer-resume').click();
    await dialog.locator('#confirm-go').waitFor();
    await Promise.all([page.waitForURL(/done=resume/), dialog.locator('#confirm-go').click()]);

    // From here the page is never reloaded: the progress bar fills from the event stream.
    await page.evaluate(() => {
      (globalThis as unknown as { sameDocument: string }).sameDocument = 'yes';
    });
    const startValue = Number(await progress.getAttribute('value'));
    const max = Number(await progress.getAttribute('max'));
    expect(max).toBe(DEVICES + 1);
    expect(startValue).toBeLessThan(max);
    await page.locator('.summary .big-number', { hasText: '100 %' }).waitFor({ timeout: 30_000 });
    expect(Number(await progress.getAttribute('value'))).toBe(max);
    expect(await page.evaluate(() => (globalThis as unknown as { sameDocument?: string }).sameDocument)).toBe('yes');
    await page.locator('.summary .state-completed').waitFor();
    const batch = (await env.context.batches.get(batchId))!;
    expect(batch).toMatchObject({ state: 'completed', accepted: DEVICES + 1, rejected: 2, done: DEVICES + 1, counts: { deleted: DEVICES, not_found: 1 } });

    // The stream drops: the page says so, and reconnects by itself once the server answers again.
    await page.route('**/console/stream/**', (route) => route.abort());
    env.console.hub.closeAll();
    const banner = page.locator('#connection-lost');
    await banner.waitFor({ state: 'visible', timeout: 10_000 });
    expect(await banner.textContent()).toContain('Connection lost, reconnecting');
    await page.unroute('**/console/stream/**');
    await banner.waitFor({ state: 'hidden', timeout: 20_000 });
    await page.locator('#live[data-state="live"]').waitFor();

    // Screenshot of the batch page (top: summary and outcomes), for the README.
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: join(IMAGES, 'console-batch.png'), animations: 'disabled' });

    // Search a serial: exact, through the form.
    const wanted = devices[123]!.deviceSn;
    const serialBox = page.getByRole('textbox', { name: 'Serial' });
    await serialBox.fill(wanted);
    await Promise.all([page.waitForURL(/serial=/), serialBox.press('Enter')]);
    const rows = page.locator('table.devices tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(wanted);
    expect(await rows.first().textContent()).toContain('deleted');
    expect(await rows.first().locator('td').first().textContent()).toBe('127');

    // Download the report: sealed, signed (the batch has finished and a key is configured), intact.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#report-csv').click()]);
    const reportText = await readFile(await download.path(), 'utf8');
    expect(reportText).toContain(wanted);
    const verification = await verifyReport(Readable.from([reportText]));
    expect(verification.problems).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(verification.signature.status).toBe('valid');
    expect(verification.batchId).toBe(batchId);

    // The overview, with the budgets and their charts, for the README.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Overview' }).click();
    await page.locator(`#open-${batchId}`).waitFor();
    await page.locator('#charts figure.chart').first().waitFor();
    await page.setViewportSize({ width: 1280, height: 1240 });
    await page.screenshot({ path: join(IMAGES, 'console-overview.png'), animations: 'disabled' });
    await context.close();
  });

  it('shows a read session no controls, and answers its POSTs 403', async () => {
    const batches = await env.context.batches.list(1);
    const batchId = batches[0]!.id;
    const context = await openContext();
    const page = await context.newPage();
    await signIn(page, READ_TOKEN);
    expect(await page.getByRole('link', { name: 'Start a revocation' }).count()).toBe(0);
    await page.goto(`${env.url}/console/batches/${batchId}`);
    await page.locator('.summary').waitFor();
    expect(await page.locator('.controls, [data-confirm], #steer-priority').count()).toBe(0);
    // Straight from the page, as a script on it would: refused, and nothing changes.
    const statuses = await page.evaluate(async (id) => {
      const out: number[] = [];
      for (const action of ['pause', 'cancel', 'redrive']) out.push((await fetch(`/console/batches/${id}/${action}`, { method: 'POST' })).status);
      out.push((await fetch('/console/new/ca', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'instance=mqtt-cn-x&caSn=ca1' })).status);
      return out;
    }, batchId);
    expect(statuses).toEqual([403, 403, 403, 403]);
    const direct = await page.request.post(`${env.url}/console/batches/${batchId}/cancel`, { form: { reason: 'no' }, maxRedirects: 0 });
    expect(direct.status()).toBe(403);
    expect((await env.context.batches.get(batchId))?.state).toBe('completed');
    await context.close();
  });

  it('never put a token or a cookie value in a URL, and the CSP reported nothing', () => {
    expect(urls.length).toBeGreaterThan(10);
    for (const url of urls) {
      expect(url).not.toContain(OPERATE_TOKEN);
      expect(url).not.toContain(READ_TOKEN);
      expect(url).not.toMatch(/token=|revoker_dashboard/);
    }
    // A session value is `<expiry>.<name>.<hmac>`: no URL carries one.
    expect(urls.filter((url) => /\d{10}\.(admin|viewer)\./.test(decodeURIComponent(url)))).toEqual([]);
    expect(violations).toEqual([]);
  });
});
