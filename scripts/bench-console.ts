/**
 * Measurements of the incident console (docs/CONSOLE.md), separate from the tests:
 *
 *   npm run bench:console                      # both parts
 *   npm run bench:console -- page --devices 1000000
 *   npm run bench:console -- workers --devices 15000 --viewers 5 --rounds 3
 *
 * `page`: builds a batch of N devices in Redis through the project's own stores (BatchStore,
 * ResultStore REGISTER and FINALIZE, InputOrder), mostly finished with a few rare outcomes, then
 * times the batch page as a browser asks for it: the first page, a deep page, an exact search, the
 * outcome filters (rare and common), the overview, and the evidence tally of the finished batch.
 *
 * `workers`: runs the emulator and one worker as their own processes and revokes N devices at the
 * full rate (one egress group, 280/s), once with nobody watching and once with V headless
 * Chromium pages on the batch page; reports the worker's CPU per device (from /proc), the rate,
 * Redis' CPU, and this process's (the server's) CPU.
 *
 * Needs Redis (REDIS_URL) and, for `workers`, Chromium (CHROMIUM_PATH, default /usr/bin/chromium).
 * Everything it writes is under its own key prefixes, removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { chromium } from 'playwright-core';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { resolveConfig } from '../src/config/config.js';
import { DEFAULT_EMULATOR_CA_SN, DEFAULT_EMULATOR_INSTANCE, generateDevices } from '../src/emulator/index.js';
import type { InputItem } from '../src/producer/device-request.js';
import { Enqueuer } from '../src/producer/enqueuer.js';
import { revocationJobId } from '../src/queue/job-id.js';
import { InputOrder } from '../src/results/input-order.js';
import type { Outcome, ResultRecord } from '../src/results/result-record.js';
import { pendingPlaceholder } from '../src/results/result-store.js';
import { openContext, type Context } from '../src/runtime/context.js';
import { buildServer } from '../src/server/build-server.js';
import { BATCH_DEVICES_DEFAULTS, BatchDevices } from '../src/server/console/batch-devices.js';
import { benchEnv, cpuMsOf, removePrefix, REDIS_URL, sleep, spawnEmulator, spawnWorker, stopProcess, waitForWorkerStart } from './bench/bench-support.js';

const TOKEN = `bench-console-${randomBytes(16).toString('hex')}`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

interface Flags {
  parts: Set<string>;
  devices: number | null;
  viewers: number;
  /** Pairs of runs (nobody watching, then V viewers) of the workers part. */
  rounds: number;
}

function parseFlags(argv: string[]): Flags {
  const parts = new Set<string>();
  let devices: number | null = null;
  let viewers = 5;
  let rounds = 2;
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index];
    if (arg === '--devices') devices = Number(argv[++index]);
    else if (arg === '--rounds') rounds = Number(argv[++index]);
    else if (arg === '--viewers') viewers = Number(argv[++index]);
    else if (arg === 'page' || arg === 'workers') parts.add(arg);
  }
  if (parts.size === 0) parts.add('page').add('workers');
  return { parts, devices, viewers, rounds };
}

function silentLogger() {
  return pino({ level: 'warn' }, new Writable({ write: (_chunk, _encoding, done) => done() }));
}

async function startServer(context: Context) {
  const app = await buildServer({ context, logger: silentLogger(), registry: new Registry() }, { processMetrics: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { app, url: `http://127.0.0.1:${address.port}` };
}

function contextFor(prefix: string, extra: Record<string, string> = {}): Context {
  return openContext(resolveConfig({ REDIS_URL, REVOKER_PREFIX: prefix, ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...extra }), 'bench-console');
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

/** Part 1: the batch page of an N-device batch. */
async function benchPage(devicesWanted: number): Promise<void> {
  const prefix = `{bench-console-page-${randomBytes(3).toString('hex')}}`;
  const context = contextFor(prefix);
  const order = new InputOrder(context.redis, context.keys);
  try {
    const instance = 'mqtt-cn-benchconsole';
    const cas = ['ca00000000bench01', 'ca00000000bench02'];
    const batchId = await context.batches.create({ name: `${devicesWanted.toLocaleString('en-US')} devices`, source: 'csv', action: 'delete', createdBy: 'bench' });
    const device = (index: number) => ({ mqttInstanceId: instance, caSn: cas[index % 2]!, deviceSn: `benchdev${index.toString(16).padStart(10, '0')}` });
    // Outcomes: 0.1 % failed, 1 % not found, 0.5 % still pending, the rest deleted.
    const outcomeOf = (index: number): Outcome | null => (index % 1000 === 7 ? 'failed' : index % 100 === 3 ? 'not_found' : index % 200 === 11 ? null : 'deleted');
    const built = performance.now();
    const chunk = 500;
    for (let start = 0; start < devicesWanted; start += chunk * 8) {
      const work: Promise<unknown>[] = [];
      for (let offset = start; offset < Math.min(devicesWanted, start + chunk * 8); offset += chunk) {
        const entries = Array.from({ length: Math.min(chunk, devicesWanted - offset) }, (_, i) => {
          const d = device(offset + i);
          return { field: revocationJobId(d, 'delete'), placeholder: pendingPlaceholder({ batchId, ...d, action: 'delete' }), instance, line: offset + i + 2 };
        });
        work.push(context.results.register(batchId, entries), order.record(batchId, entries.map((entry) => ({ field: entry.field, line: entry.line }))));
      }
      await Promise.all(work);
    }
    await context.results.markEnqueued(batchId);
    const registeredAt = performance.now();
    const now = new Date().toISOString();
    for (let start = 0; start < devicesWanted; start += 5_000) {
      const work: Promise<unknown>[] = [];
      for (let index = start; index < Math.min(devicesWanted, start + 5_000); index += 1) {
        const outcome = outcomeOf(index);
        if (outcome === null) continue;
        const d = device(index);
        const record: ResultRecord = { batchId, ...d, action: 'delete', outcome, evidence: 'answer', attempts: 1, requestId: `bench-${index}`, errorCode: outcome === 'deleted' ? null : outcome === 'failed' ? 'ParameterFieldCheckFailed' : 'FindDeviceBySnError', httpStatus: outcome === 'deleted' ? 200 : outcome === 'failed' ? 400 : 500, message: null, firstAttemptAt: now, finishedAt: now };
        work.push(context.results.finalize(revocationJobId(d, 'delete'), record));
      }
      await Promise.all(work);
      if (start % 100_000 === 0) process.stderr.write(`  finalized ${start.toLocaleString('en-US')}\r`);
    }
    const batch = (await context.batches.get(batchId))!;
    process.stderr.write(`built a batch of ${batch.accepted.toLocaleString('en-US')} devices (${batch.done.toLocaleString('en-US')} finished) in ${((performance.now() - built) / 1000).toFixed(0)} s (registration ${((registeredAt - built) / 1000).toFixed(0)} s)\n`);
    const memory = Number((await context.redis.memory('USAGE', context.keys.results(batchId), 'SAMPLES', '1000')) ?? 0) + Number((await context.redis.memory('USAGE', `${context.keys.batch(batchId)}:order`, 'SAMPLES', '1000')) ?? 0);

    const { app, url } = await startServer(context);
    try {
      const headers = { authorization: `Bearer ${TOKEN}` };
      const wanted = device(654_321 % devicesWanted).deviceSn;
      const cases: [string, string][] = [
        ['batch page, first 25 devices', `/console/batches/${batchId}`],
        [`batch page, devices from position ${Math.floor(devicesWanted * 0.9).toLocaleString('en-US')}`, `/console/batches/${batchId}?from=${Math.floor(devicesWanted * 0.9)}`],
        ['batch page, search one serial', `/console/batches/${batchId}?serial=${wanted}`],
        ['batch page, filter failed (0.1 %)', `/console/batches/${batchId}?outcome=failed`],
        ['batch page, filter not found (1 %)', `/console/batches/${batchId}?outcome=not_found`],
        ['batch page, filter not finished (0.5 %)', `/console/batches/${batchId}?outcome=pending`],
        ['batch page, filter deleted (98.4 %)', `/console/batches/${batchId}?outcome=deleted`],
        ['overview', '/console'],
      ];
      const rows: string[] = [];
      for (const [label, path] of cases) {
        const times: number[] = [];
        let body = '';
        for (let run = 0; run < 12; run += 1) {
          const started = performance.now();
          const response = await fetch(`${url}${path}`, { headers });
          body = await response.text();
          if (response.status !== 200) throw new Error(`${path}: HTTP ${response.status}`);
          times.push(performance.now() - started);
        }
        const rowsShown = (body.match(/<tr><td class="num">/g) ?? []).length;
        const examined = /\(([\d,]+) devices looked at for it\)/.exec(body)?.[1] ?? '';
        rows.push(`| ${label} | ${fmt(times[0]!)} | ${fmt(quantile(times.slice(1), 0.5))} | ${fmt(Math.max(...times.slice(1)))} | ${path === '/console' ? '—' : rowsShown}${examined !== '' ? ` (${examined} examined)` : ''} |`);
      }
      const devices = new BatchDevices(context.redis, context.keys);
      // One Lua step alone, at the default size: devices examined for the rare outcome (what holds Redis at a time).
      const stepSize = BATCH_DEVICES_DEFAULTS.examinePerStep;
      const oneStep = new BatchDevices(context.redis, context.keys, { pageSize: 100_000, examinePerStep: stepSize, maxExaminePerRequest: stepSize });
      const stepTimes: number[] = [];
      for (let run = 0; run < 20; run += 1) {
        const started = performance.now();
        await oneStep.filter(batchId, 'failed', String(run * 37_003), 1_000_000);
        stepTimes.push(performance.now() - started);
      }
      const tallyStarted = performance.now();
      await devices.tallyEvidence(batchId);
      const tallyMs = performance.now() - tallyStarted;
      process.stdout.write(`\n### Batch page of a ${devicesWanted.toLocaleString('en-US')}-device batch\n\n`);
      process.stdout.write(`Redis holds ${(memory / 1e6).toFixed(0)} MB for its results hash and input order.\n\n`);
      process.stdout.write('| request | first (ms) | median of 11 (ms) | max of 11 (ms) | rows |\n|---|---|---|---|---|\n');
      process.stdout.write(`${rows.join('\n')}\n\n`);
      process.stdout.write(`One filter step over ${stepSize.toLocaleString('en-US')} devices (Lua, holds Redis), 20 steps spread over the batch: median ${fmt(quantile(stepTimes, 0.5))} ms, max ${fmt(Math.max(...stepTimes))} ms.\n`);
      process.stdout.write(`Evidence tally of the finished batch (background, HSCAN steps of 500): ${(tallyMs / 1000).toFixed(1)} s.\n`);
    } finally {
      await app.close();
    }
  } finally {
    await context.close();
    await removePrefix(prefix);
  }
}

interface WorkerRun {
  viewers: number;
  devices: number;
  seconds: number;
  workerCpuMs: number;
  serverCpuMs: number;
  redisCpuMs: number;
}

async function redisCpuMs(context: Context): Promise<number> {
  const info = await context.redis.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const system = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return (user + system) * 1000;
}

/** Part 2, one run: revoke N devices at the full rate with V pages watching the batch. */
async function workerRun(endpoint: string, devices: ReturnType<typeof generateDevices>, viewers: number): Promise<WorkerRun> {
  const devicesWanted = devices.length;
  const prefix = `{bench-console-w-${randomBytes(3).toString('hex')}}`;
  const env = benchEnv(prefix, endpoint);
  const context = contextFor(prefix, env);
  const worker = spawnWorker(env);
  const browser = viewers > 0 ? await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] }) : null;
  try {
    await waitForWorkerStart(worker);
    const { app, url } = await startServer(context);
    try {
      const batchId = await context.batches.create({ name: `watched by ${viewers}`, source: 'csv', action: 'delete', createdBy: 'bench' });
      // Five browsers on the batch page, signed in through the form, before the first call.
      const pages = [];
      for (let index = 0; index < viewers && browser !== null; index += 1) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${url}/console/login`);
        await page.fill('#token', TOKEN);
        await Promise.all([page.waitForURL(`${url}/console`), page.click('button[type=submit]')]);
        await page.goto(`${url}/console/batches/${batchId}`);
        pages.push(page);
      }
      await sleep(2_000);
      const pid = worker.child.pid!;
      const [workerBefore, serverBefore, redisBefore] = [await cpuMsOf(pid), process.cpuUsage(), await redisCpuMs(context)];
      const started = performance.now();
      const items: InputItem[] = devices.map((device, index) => ({ kind: 'device', request: { ...device, line: index + 2 } }));
      await new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: 50_000 }).enqueue(batchId, 'delete', items);
      for (;;) {
        const batch = await context.batches.get(batchId);
        if (batch !== null && batch.finishedAt !== null) break;
        await sleep(200);
      }
      const seconds = (performance.now() - started) / 1000;
      const server = process.cpuUsage(serverBefore);
      const run = { viewers, devices: devicesWanted, seconds, workerCpuMs: (await cpuMsOf(pid)) - workerBefore, serverCpuMs: (server.user + server.system) / 1000, redisCpuMs: (await redisCpuMs(context)) - redisBefore };
      if (pages.length > 0) {
        // Every page saw the end without a reload.
        for (const page of pages) await page.locator('.summary .big-number', { hasText: '100 %' }).waitFor({ timeout: 10_000 });
      }
      return run;
    } finally {
      await app.close();
    }
  } finally {
    await browser?.close();
    await stopProcess(worker);
    await context.close();
    await removePrefix(prefix);
  }
}

async function benchWorkers(devicesWanted: number, viewers: number, rounds: number): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
  const schedule = Array.from({ length: rounds }, () => [0, viewers]).flat();
  // Each run revokes devices of its own: a device deleted once answers "not found" the next time.
  const all = generateDevices({ mqttInstanceId: DEFAULT_EMULATOR_INSTANCE, caSn: DEFAULT_EMULATOR_CA_SN, count: devicesWanted * schedule.length });
  const emulator = await spawnEmulator(['--devices', String(all.length), '--latency-median-ms', '25', '--latency-p99-ms', '120']);
  try {
    const runs: WorkerRun[] = [];
    for (const [index, watching] of schedule.entries()) {
      runs.push(await workerRun(emulator.endpoint, all.slice(index * devicesWanted, (index + 1) * devicesWanted), watching));
      const last = runs[runs.length - 1]!;
      process.stderr.write(`  ${last.viewers} viewers: ${last.seconds.toFixed(1)} s, worker ${last.workerCpuMs.toFixed(0)} ms CPU\n`);
    }
    process.stdout.write(`\n### Cost to the worker of ${viewers} browsers watching (${devicesWanted.toLocaleString('en-US')} devices at the full rate, one egress group)\n\n`);
    process.stdout.write('| viewers | devices/s | worker CPU per device (µs) | server CPU per device (µs) | Redis CPU per device (µs) |\n|---|---|---|---|---|\n');
    for (const run of runs) {
      const per = (ms: number) => ((ms * 1000) / run.devices).toFixed(0);
      process.stdout.write(`| ${run.viewers} | ${(run.devices / run.seconds).toFixed(0)} | ${per(run.workerCpuMs)} | ${per(run.serverCpuMs)} | ${per(run.redisCpuMs)} |\n`);
    }
  } finally {
    await stopProcess(emulator.spawned);
  }
}

const flags = parseFlags(process.argv.slice(2));
if (flags.parts.has('page')) await benchPage(flags.devices ?? 1_000_000);
if (flags.parts.has('workers')) await benchWorkers(flags.devices !== null && !flags.parts.has('page') ? flags.devices : 15_000, flags.viewers, flags.rounds);
