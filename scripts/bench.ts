/**
 * `npm run bench`: measures revoker against the emulator (its own process) and a real Redis, and
 * writes docs/BENCHMARKS.md. Separate from the tests; numbers are ratios to the configured cap
 * measured in this one run.
 *
 *   BENCH_QUICK=1 npm run bench   # smaller sizes, for a smoke run
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { once } from 'node:events';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { apiCallerOver } from '../src/cli/api-caller.js';
import { listPages } from '../src/cli/ca-listing.js';
import { CertificateApi } from '../src/cloud/certificate-api.js';
import { resolveConfig } from '../src/config/config.js';
import { DEMO_ACCOUNT, generateDevices } from '../src/emulator/index.js';
import { pino } from 'pino';
import { openBudgetGate } from '../src/runtime/open-budget-gate.js';
import { readDeviceCsv } from '../src/producer/csv-source.js';
import { Enqueuer } from '../src/producer/enqueuer.js';
import { REVOCATION_QUEUE } from '../src/queue/keys.js';
import { openContext, type Context } from '../src/runtime/context.js';
import { spawnTs } from '../test/helpers/processes.js';
import {
  ProgressSampler,
  benchEnv,
  busiestForActionAt,
  busiestWindow,
  perIpSummary,
  cpuMsOf,
  gateSummary,
  openRedis,
  peakRss,
  standingApart,
  receiverPriorityNote,
  readSendTraces,
  sendTraceEnv,
  redisUsedMemory,
  removePrefix,
  sleep,
  spawnEmulator,
  spawnForwarder,
  spawnWorker,
  stopProcess,
  useCompiledBuild,
  waitForWorkerStart,
  type EmulatorProcess,
  type EmulatorStatsView,
} from './bench/bench-support.js';

const QUICK = process.env.BENCH_QUICK === '1';
const RATE = 480;
/** EGRESS_RATE_LIMIT_PER_SECOND's default: one source IP's budget. */
const EGRESS_RATE = 280;
/** The API's per-source-IP limit, which the emulator enforces (above it: blocked). */
const IP_LIMIT = 300;
const INSTANCE = 'mqtt-cn-bench00001';
const CA = 'ca0000000000bench';
const rows: string[][] = [];
const notes: string[] = [];

function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

function contextFor(prefix: string, endpoint: string, extra: Record<string, string> = {}): Context {
  return openContext(resolveConfig(benchEnv(prefix, endpoint, extra)), 'bench');
}

async function seed(api: EmulatorProcess, count: number, label: string) {
  const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
  // 5,000 a request: the emulator refuses control bodies over 1 MiB.
  for (let i = 0; i < devices.length; i += 5_000) await api.control('/_emulator/devices', { devices: devices.slice(i, i + 5_000) });
  return devices;
}

/**
 * Runs one batch through worker processes in egress groups (issue 12): one group calls from
 * 127.0.0.1; with several, group i calls through a forwarder bound to 127.0.0.(2+i), so the
 * emulator sees a source IP per group, and each group has its own EGRESS_ID.
 */
async function runBatch(label: string, options: { groups: number[]; devices: number; emulatorRate: number }) {
  const api = standingApart(await spawnEmulator(['--rate-limit', String(options.emulatorRate), '--ip-limit', String(IP_LIMIT)]));
  const prefix = `{bench-${label}-${Date.now().toString(36)}}`;
  const extra = { RATE_LIMIT_PER_SECOND: String(RATE) };
  const context = contextFor(prefix, api.endpoint, extra);
  // Each forwarder in a process of its own, as a NAT gateway is: in this process it stalled with the producer.
  const forwarders = options.groups.length === 1 ? [] : await Promise.all(options.groups.map(async (_, group) => standingApart(await spawnForwarder(api.endpoint, `127.0.0.${2 + group}`))));
  // Each worker writes when its calls left (send-trace.ts), into its group's directory: the busiest second at the senders.
  const traceDir = await mkdtemp(join(tmpdir(), 'revoker-bench-sent-'));
  const traceDirs = options.groups.map((_, group) => join(traceDir, `group${group}`));
  const traceEnvs = await Promise.all(traceDirs.map((dir) => sendTraceEnv(dir)));
  const workers = options.groups.flatMap((count, group) =>
    Array.from({ length: count }, () =>
      spawnWorker(benchEnv(prefix, forwarders[group]?.endpoint ?? api.endpoint, { ...extra, ...(forwarders.length > 0 ? { EGRESS_ID: `egress-${group}` } : {}), ...traceEnvs[group] })),
    ),
  );
  try {
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const devices = await seed(api, options.devices, label);
    await api.control('/_emulator/reset', {});
    const cpuBefore = await Promise.all(workers.map((worker) => cpuMsOf(worker.child.pid ?? 0)));
    const batchId = await context.batches.create({ name: label, source: 'csv', action: 'delete', createdBy: 'bench' });
    const startedAt = performance.now();
    const items = devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } }));
    const enqueueDone = new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, 'delete', items);
    const sampler = new ProgressSampler();
    for (;;) {
      const batch = await context.batches.get(batchId);
      sampler.add(batch?.done ?? 0);
      if (batch?.state === 'completed' || batch?.state === 'paused') break;
      await sleep(250);
    }
    await enqueueDone;
    const seconds = (performance.now() - startedAt) / 1000;
    const cpuAfter = await Promise.all(workers.map((worker) => cpuMsOf(worker.child.pid ?? 0)));
    const stats = await api.control<EmulatorStatsView>('/_emulator/stats');
    const batch = await context.batches.get(batchId);
    // One more progress line from each worker, with its gate's counters (written every 5 s and at close).
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    const gate = gateSummary(workers.map((worker) => worker.output()));
    // BENCH_WORKER_LOGS=<dir> keeps each worker's output (for a look at its lag, GC or errors).
    const logDir = process.env.BENCH_WORKER_LOGS;
    if (logDir !== undefined) await Promise.all(workers.map((worker, index) => writeFile(join(logDir, `${label}-worker${index + 1}.log`), worker.output())));
    const cpuMs = cpuAfter.reduce((sum, value, index) => sum + value - (cpuBefore[index] ?? 0), 0);
    const sentByGroup = await Promise.all(traceDirs.map((dir) => readSendTraces(dir)));
    const sent = { groups: sentByGroup.map((times) => busiestWindow(times)), all: busiestWindow(sentByGroup.flat()) };
    return { seconds, steady: sampler.steadyRate(options.devices), stats, batch, cpuMsPerDevice: cpuMs / options.devices, gate, sent };
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    for (const forwarder of forwarders) await stopProcess(forwarder.spawned);
    await context.close();
    await stopProcess(api.spawned);
    await removePrefix(prefix);
    await rm(traceDir, { recursive: true, force: true });
  }
}

/**
 * The busiest second at the senders (send-trace.ts): per egress group, and of the account when
 * there are several groups. The budgets govern these; the emulator counts on arrival.
 */
function sentSeen(sent: { groups: number[]; all: number }): string {
  return sent.groups.length === 1 ? `busiest second as sent ${sent.all}` : `busiest second as sent: per group ${sent.groups.join(', ')}, account ${sent.all}`;
}

/** What one run reports about the limits: per source IP, the account's delete budget, blocks. */
function limitsSeen(stats: EmulatorStatsView): string {
  const ip = perIpSummary(stats);
  return `busiest second per IP ${ip.busiest} (${ip.ips}); account DeleteDeviceCertificate busiest ${busiestForActionAt(stats, 'DeleteDeviceCertificate')}; IP blocks ${ip.blocks}; throttled ${stats.throttled}`;
}

async function throughput(): Promise<{ oneEgress: number; twoEgress: number }> {
  const devices = QUICK ? 3_000 : 20_000;
  // Two egress groups run at 480/s: with as many devices they would finish in 42 s, and their
  // 20–80 % window would start about 9 s in, while the first seconds' allowance (send delays of
  // 100–150 ms while the producer enqueues and the workers warm up, remembered for 10 s) still
  // holds. As many devices as 71 s at 480/s give every throughput row the same span.
  const twoEgressDevices = Math.round((devices * RATE) / EGRESS_RATE / 1_000) * 1_000;
  let oneEgress = 0;
  let twoEgress = 0;
  // BENCH_SETUPS=1,4,2x2 runs only those setups: N workers in one egress, or 2xN in two groups.
  const setups = new Set((process.env.BENCH_SETUPS ?? '1,2,4,2x1,2x2').split(','));
  // One egress at the defaults: the egress budget (280/s) binds, whatever the worker count.
  for (const workers of [1, 2, 4].filter((count) => setups.has(String(count)))) {
    const result = await runBatch(`cap${workers}`, { groups: [workers], devices, emulatorRate: 500 });
    const ideal = devices / EGRESS_RATE;
    oneEgress = Math.max(oneEgress, result.steady);
    rows.push([
      `throughput, one egress, ${workers} worker${workers > 1 ? 's' : ''}`,
      `${devices} devices; account ${RATE}/s, egress ${EGRESS_RATE}/s`,
      `steady ${fmt(result.steady / EGRESS_RATE)} of the egress budget (${fmt(result.steady, 0)}/s); ${limitsSeen(result.stats)}; ${sentSeen(result.sent)}; ${fmt(result.seconds, 1)} s vs ideal ${fmt(ideal, 1)} s; worker CPU ${fmt(result.cpuMsPerDevice, 3)} ms/device; ${result.gate}`,
      `≥ 0.97, ≤ 300 per IP, 0 blocks, 0 throttled`,
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
  }
  // Two egress groups (two source IPs): the account budget (480/s) binds.
  for (const perGroup of [1, 2].filter((count) => setups.has(`2x${count}`))) {
    const result = await runBatch(`egress2x${perGroup}`, { groups: [perGroup, perGroup], devices: twoEgressDevices, emulatorRate: 500 });
    const ideal = twoEgressDevices / RATE;
    twoEgress = Math.max(twoEgress, result.steady);
    rows.push([
      `throughput, two egress groups, ${perGroup} worker${perGroup > 1 ? 's' : ''} each`,
      `${twoEgressDevices} devices; account ${RATE}/s, egress ${EGRESS_RATE}/s × 2`,
      `steady ${fmt(result.steady / RATE)} of the account budget (${fmt(result.steady, 0)}/s); ${limitsSeen(result.stats)}; ${sentSeen(result.sent)}; ${fmt(result.seconds, 1)} s vs ideal ${fmt(ideal, 1)} s; worker CPU ${fmt(result.cpuMsPerDevice, 3)} ms/device; ${result.gate}`,
      `≥ 0.97, ≤ 300 per IP, ≤ ${RATE} at the API, 0 blocks`,
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
  }
  return { oneEgress, twoEgress };
}

async function sharedQuota(): Promise<void> {
  const devices = QUICK ? 3_000 : 10_000;
  // Another client eats part of the account's quota: the emulator admits 300/s of the account's
  // deletes, revoker is configured at 480/s over two egress groups (560/s of egress).
  const result = await runBatch('quota', { groups: [1, 1], devices, emulatorRate: 300 });
  const finished = result.batch?.counts.deleted ?? 0;
  rows.push([
    'shared quota (emulator 300/s, revoker 480/s, two egress groups)',
    `${devices} devices, 2 workers`,
    `steady ${fmt(result.steady / 300)} of the quota (${fmt(result.steady, 0)}/s); throttled ${fmt((100 * result.stats.throttled) / Math.max(1, result.stats.total), 1)} % of calls; ${finished}/${devices} finished`,
    '≥ 0.90, ≤ 3 %',
  ]);
  process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
}

/**
 * Issue 12: listing 100,000 devices under a CA (ListDeviceCertificateByCaSn, its own account
 * budget, the same egress budget) while a delete batch drains through two workers.
 */
async function listingDuringDeletes(): Promise<void> {
  const listed = QUICK ? 20_000 : 100_000;
  const deletes = QUICK ? 6_000 : 30_000;
  const api = standingApart(await spawnEmulator(['--rate-limit', '500', '--ip-limit', String(IP_LIMIT)]));
  const prefix = `{bench-list-${Date.now().toString(36)}}`;
  const context = contextFor(prefix, api.endpoint, { RATE_LIMIT_PER_SECOND: String(RATE) });
  const workers = [spawnWorker(benchEnv(prefix, api.endpoint)), spawnWorker(benchEnv(prefix, api.endpoint))];
  const listCa = 'ca00000000000listed';
  try {
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const toDelete = await seed(api, deletes, 'listing-deletes');
    const underCa = generateDevices({ mqttInstanceId: INSTANCE, caSn: listCa, count: listed, prefix: 'listing' });
    for (let i = 0; i < underCa.length; i += 5_000) await api.control('/_emulator/devices', { devices: underCa.slice(i, i + 5_000) });
    await api.control('/_emulator/reset', {});
    const batchId = await context.batches.create({ name: 'listing-deletes', source: 'csv', action: 'delete', createdBy: 'bench' });
    const enqueueDone = new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, 'delete', toDelete.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } })));
    const doneNow = async () => (await context.batches.get(batchId))?.done ?? 0;
    while ((await doneNow()) < deletes * 0.15) await sleep(100);
    // Deletes alone, for 5 s.
    const aloneFrom = { at: performance.now(), done: await doneNow() };
    await sleep(5_000);
    const alone = ((await doneNow()) - aloneFrom.done) / ((performance.now() - aloneFrom.at) / 1000);
    // Then list the CA from this process through the same budgets and paging as enqueue-ca.
    const log = pino({ level: 'silent' });
    const client = new CertificateApi({ endpoint: api.endpoint, protocol: 'http', timeoutMs: 5_000, credentials: { accessKeyId: DEMO_ACCOUNT.accessKeyId, accessKeySecret: DEMO_ACCOUNT.accessKeySecret, securityToken: null } });
    const { gate } = await openBudgetGate(context, client, log);
    const listFrom = { at: performance.now(), done: await doneNow() };
    let count = 0;
    await listPages(apiCallerOver(gate, context.config), client, { mqttInstanceId: INSTANCE, caSn: listCa, pageSize: 100 }, (devices) => {
      count += devices.length;
      return Promise.resolve();
    });
    const listSeconds = (performance.now() - listFrom.at) / 1000;
    const during = ((await doneNow()) - listFrom.done) / listSeconds;
    await gate.close();
    await enqueueDone;
    const stats = await api.control<EmulatorStatsView>('/_emulator/stats');
    rows.push([
      'listing a CA while deletes run (one egress)',
      `${count} devices listed (${Math.ceil(listed / 100)} pages) during a ${deletes}-device batch, 2 workers`,
      `listing took ${fmt(listSeconds, 1)} s (${fmt(count / listSeconds, 0)} devices/s, ${fmt(count / 100 / listSeconds, 1)} pages/s); deletes ${fmt(during, 0)}/s while listing vs ${fmt(alone, 0)}/s alone (${fmt(during / alone)}×); ${limitsSeen(stats)}`,
      'deletes keep their rate; ≤ 300 per IP',
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await context.close();
    await stopProcess(api.spawned);
    await removePrefix(prefix);
  }
}

/** Issue "urgent first": how long a 200-device urgent batch takes while a bulk batch drains at the cap. */
async function urgentDuringBulk(): Promise<void> {
  const bulkDevices = QUICK ? 4_000 : 20_000;
  const api = standingApart(await spawnEmulator(['--rate-limit', '500', '--ip-limit', String(IP_LIMIT)]));
  const prefix = `{bench-urgent-${Date.now().toString(36)}}`;
  const extra = { RATE_LIMIT_PER_SECOND: String(RATE) };
  const context = contextFor(prefix, api.endpoint, extra);
  const workers = [spawnWorker(benchEnv(prefix, api.endpoint, extra)), spawnWorker(benchEnv(prefix, api.endpoint, extra))];
  try {
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const bulk = await seed(api, bulkDevices, 'urgent-bulk');
    const urgent = await seed(api, 200, 'urgent-urgent');
    const bulkId = await context.batches.create({ name: 'bulk', source: 'csv', action: 'delete', createdBy: 'bench', priority: 'bulk' });
    const items = (devices: typeof bulk) => devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } }));
    const bulkDone = new Enqueuer(context.queue, context.batches, context.results).enqueue(bulkId, 'delete', items(bulk));
    for (;;) {
      if (((await context.batches.get(bulkId))?.done ?? 0) >= bulkDevices / 4) break;
      await sleep(100);
    }
    const startedAt = performance.now();
    const urgentId = await context.batches.create({ name: 'urgent', source: 'webhook', action: 'delete', createdBy: 'bench', priority: 'urgent' });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(urgentId, 'delete', items(urgent));
    for (;;) {
      if ((await context.batches.get(urgentId))?.state === 'completed') break;
      await sleep(20);
    }
    const tookMs = performance.now() - startedAt;
    await bulkDone;
    for (;;) {
      if ((await context.batches.get(bulkId))?.state === 'completed') break;
      await sleep(250);
    }
    const aloneMs = (200 / EGRESS_RATE) * 1000;
    rows.push(['urgent batch during a bulk batch', `200 urgent devices while ${bulkDevices} bulk drain, 2 workers, one egress`, `urgent batch done in ${fmt(tookMs / 1000, 2)} s (alone at ${EGRESS_RATE}/s: ${fmt(aloneMs / 1000, 2)} s; waited ${fmt((tookMs - aloneMs) / 1000, 2)} s more); the bulk batch then finished`, 'within 2 s of alone']);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);

    // What BullMQ's priority costs at enqueue: the same jobs added prioritized and plain.
    const probe = 20_000;
    const costPrefix = `{bench-prio-${Date.now().toString(36)}}`;
    const costContext = contextFor(costPrefix, api.endpoint);
    const timeAdd = async (priority: boolean): Promise<number> => {
      const startedAdd = performance.now();
      for (let i = 0; i < probe; i += 500) {
        await costContext.queue.addBulk(Array.from({ length: 500 }, (_, k) => ({ name: 'probe', data: { batchId: 'probe', mqttInstanceId: INSTANCE, caSn: CA, deviceSn: `p${priority ? 1 : 0}-${i + k}`, action: 'delete' as const, history: [], firstAttemptAt: null }, opts: { jobId: `p${priority ? 1 : 0}-${i + k}`, ...(priority ? { priority: 1 + ((i + k) % 1000) } : {}) } })));
      }
      return probe / ((performance.now() - startedAdd) / 1000);
    };
    const plain = await timeAdd(false);
    const prioritized = await timeAdd(true);
    await costContext.close();
    await removePrefix(costPrefix);
    rows.push(['cost of BullMQ priority at enqueue', `${probe} jobs, addBulk of 500`, `${fmt(prioritized, 0)} jobs/s prioritized vs ${fmt(plain, 0)} plain (${fmt(prioritized / plain)}×); at the cap a worker needs ${RATE} jobs/s`, 'no cost to the rate']);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await context.close();
    await stopProcess(api.spawned);
    await removePrefix(prefix);
  }
}


async function ingest(): Promise<void> {
  const count = QUICK ? 100_000 : 1_000_000;
  const dir = await mkdtemp(join(tmpdir(), 'revoker-bench-'));
  const file = join(dir, 'devices.csv');
  const out = createWriteStream(file);
  out.write('DeviceSn,CaSn,MqttInstanceId\n');
  for (let i = 0; i < count; i += 1) {
    if (!out.write(`dev${i.toString(16).padStart(12, '0')},${CA},${INSTANCE}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const redis = openRedis();
  try {
    // Without flow control: the producer's own speed and memory.
    const prefix = `{bench-ingest-${Date.now().toString(36)}}`;
    const before = await redisUsedMemory(redis);
    // The producer's own speed: no existence snapshot (it would list the CA first, at the rate).
    const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--json', '--yes', '--snapshot', 'never'], benchEnv(prefix, '127.0.0.1:1', { QUEUE_HIGH_WATER_JOBS: '10000000' }));
    const startedAt = performance.now();
    const rss = await peakRss(child.child.pid ?? 0, child.exited);
    const seconds = (performance.now() - startedAt) / 1000;
    const after = await redisUsedMemory(redis);
    const summary = JSON.parse(child.output().trim().split('\n').at(-1) ?? '{}') as { accepted?: number };
    rows.push([
      'ingest, flow control off',
      `${count} CSV rows, \`--snapshot never\``,
      `${fmt(count / seconds, 0)} rows/s (${summary.accepted ?? 0} accepted, ${fmt(seconds, 1)} s incl. process start); producer peak RSS ${fmt(rss / 1e6, 0)} MB; Redis +${fmt((after - before) / count, 0)} bytes per waiting job incl. its pending record`,
      '≥ 20,000 rows/s, ≤ 200 MB',
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
    await removePrefix(prefix);

    // With flow control: a no-op consumer drains as fast as Redis allows; Redis must stay bounded.
    const flowCount = QUICK ? 50_000 : 200_000;
    const highWater = 10_000;
    const flowPrefix = `{bench-flow-${Date.now().toString(36)}}`;
    const drain = new Worker(REVOCATION_QUEUE, () => Promise.resolve(), { connection: openRedis(), prefix: flowPrefix, concurrency: 50 });
    const baseline = await redisUsedMemory(redis);
    const flowFile = join(dir, 'flow.csv');
    const flowOut = createWriteStream(flowFile);
    flowOut.write('DeviceSn\n');
    for (let i = 0; i < flowCount; i += 1) if (!flowOut.write(`flow${i.toString(16).padStart(10, '0')}\n`)) await once(flowOut, 'drain');
    flowOut.end();
    await once(flowOut, 'finish');
    const context = contextFor(flowPrefix, '127.0.0.1:1');
    let peakWaiting = 0;
    let peakMemory = 0;
    const batchId = await context.batches.create({ name: 'flow', source: 'csv', action: 'delete', createdBy: 'bench' });
    const running = new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: highWater }).enqueue(batchId, 'delete', readDeviceCsv(createReadStream(flowFile), { defaultCaSn: CA, defaultInstanceId: INSTANCE }));
    let finished = false;
    void running.finally(() => (finished = true));
    while (!finished) {
      peakWaiting = Math.max(peakWaiting, await context.queue.getJobCountByTypes('wait', 'prioritized'));
      peakMemory = Math.max(peakMemory, await redisUsedMemory(redis));
      await sleep(50);
    }
    await drain.close();
    await context.close();
    rows.push([
      'ingest, flow control on',
      `${flowCount} rows, high-water ${highWater}, a no-op consumer`,
      `peak waiting jobs ${peakWaiting} (mark + one chunk = ${highWater + 500}); peak Redis used_memory +${fmt((peakMemory - baseline) / 1e6, 0)} MB over the run's start (pending records of all ${flowCount} devices included)`,
      'bounded by the mark',
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
    await removePrefix(flowPrefix);
  } finally {
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  }
}

async function comparisons(): Promise<void> {
  // The alternatives know nothing of the per-IP limit: measured without it (--ip-limit 0).
  const api = standingApart(await spawnEmulator(['--rate-limit', '100000', '--ip-limit', '0', '--devices', '1000', '--instance', INSTANCE, '--ca-sn', CA]));
  try {
    const listed = await api.control<{ devices: { deviceSn: string }[] }>(`/_emulator/devices?mqttInstanceId=${INSTANCE}&caSn=${CA}`);
    const client = new CertificateApi({ endpoint: api.endpoint, protocol: 'http', timeoutMs: 5_000, credentials: { accessKeyId: DEMO_ACCOUNT.accessKeyId, accessKeySecret: DEMO_ACCOUNT.accessKeySecret, securityToken: null } });
    const seconds = QUICK ? 3 : 10;
    const deadline = performance.now() + seconds * 1000;
    let calls = 0;
    while (performance.now() < deadline) {
      const device = listed.devices[calls % listed.devices.length]!;
      await client.getDevice({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: device.deviceSn });
      calls += 1;
    }
    rows.push(['plain sequential SDK loop', `one process, ${seconds} s`, `${fmt(calls / seconds, 0)} calls/s (${fmt(calls / seconds / RATE)} of the rate)`, 'for comparison']);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);

    await api.control('/_emulator/reset', {});
    const limiterId = `bench-reservoir-${Date.now().toString(36)}`;
    const env = { ...benchEnv('{bench-res}', api.endpoint), RATE: String(RATE), DURATION_MS: String(seconds * 1000), LIMITER_ID: limiterId, INSTANCE, CA_SN: CA, DEVICES: listed.devices.slice(0, 200).map((device) => device.deviceSn).join(',') };
    const clients = [spawnTs('scripts/bench/reservoir-client.ts', [], env), spawnTs('scripts/bench/reservoir-client.ts', [], env)];
    await Promise.all(clients.map((client) => client.exited));
    const stats = await api.control<EmulatorStatsView>('/_emulator/stats');
    const span = ((stats.lastAtMs ?? 0) - (stats.firstAtMs ?? 0)) / 1000;
    rows.push(['Bottleneck reservoir, clustering', `2 processes, reservoir ${RATE}/1 s, ${seconds} s`, `${fmt(stats.total / Math.max(span, 0.001), 0)} calls/s; busiest second ${stats.maxCallsInAnySecond}`, 'why revoker uses spacing']);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
    const redis = openRedis();
    for (const key of await redis.keys(`b_${limiterId}*`)) await redis.del(key);
    redis.disconnect();
  } finally {
    await stopProcess(api.spawned);
  }
}

/**
 * Issue 14: containing a leaked CA with `revoker ca delete` (a listing, one DeleteCaCertificate,
 * a second listing) against per-device deletes of the same devices (`enqueue-ca`: a listing, then
 * one DeleteDeviceCertificate per device through 2 workers), both through the real CLI.
 */
async function caDeleteVsPerDevice(): Promise<void> {
  const count = Number(process.env.BENCH_CA_DEVICES ?? (QUICK ? 10_000 : 100_000));
  const api = standingApart(await spawnEmulator(['--rate-limit', '500', '--ip-limit', String(IP_LIMIT)]));
  const prefix = `{bench-cadel-${Date.now().toString(36)}}`;
  // The workers and the CLI write when their calls left: the busiest second at the sender (one egress).
  const traceDir = await mkdtemp(join(tmpdir(), 'revoker-bench-sent-'));
  const env = benchEnv(prefix, api.endpoint, { RATE_LIMIT_PER_SECOND: String(RATE), ...(await sendTraceEnv(traceDir)) });
  const context = contextFor(prefix, api.endpoint, { RATE_LIMIT_PER_SECOND: String(RATE) });
  const workers = [spawnWorker(env), spawnWorker(env)];
  const seedCa = async (caSn: string) => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn, count, prefix: caSn.slice(-6) });
    for (let i = 0; i < devices.length; i += 5_000) await api.control('/_emulator/devices', { devices: devices.slice(i, i + 5_000) });
  };
  const cli = async (args: string[]) => {
    const started = performance.now();
    const child = spawnTs('src/cli/main.ts', args, env);
    const code = await child.exited;
    if (code !== 0) throw new Error(`revoker ${args.join(' ')} exited ${code}: ${child.output().slice(-2_000)}`);
    return { seconds: (performance.now() - started) / 1000, output: child.output() };
  };
  try {
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const caWhole = 'ca000000000cadelete';
    const caEach = 'ca00000000000device';
    await seedCa(caWhole);
    await seedCa(caEach);
    await api.control('/_emulator/reset', {});
    const whole = await cli(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', caWhole, '--confirm', caWhole, '--json', '--reason', 'bench']);
    const wholeStats = await api.control<EmulatorStatsView>('/_emulator/stats');
    const listCalls = Object.values(wholeStats.byAction.ListDeviceCertificateByCaSn ?? {}).reduce((sum, value) => sum + value, 0);
    await api.control('/_emulator/reset', {});
    const started = performance.now();
    const enqueued = await cli(['enqueue-ca', '--instance', INSTANCE, '--ca-sn', caEach, '--yes', '--json', '--reason', 'bench']);
    const batchId = (JSON.parse(enqueued.output.trim().split('\n').at(-1) ?? '{}') as { batchId?: string }).batchId ?? '';
    for (;;) {
      const batch = await context.batches.get(batchId);
      if (batch === null || batch.state === 'completed' || batch.state === 'paused') break;
      await sleep(500);
    }
    const eachSeconds = (performance.now() - started) / 1000;
    const eachStats = await api.control<EmulatorStatsView>('/_emulator/stats');
    // The workers write their times when they exit; only calls of the per-device batch count (from `started`).
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    const startedAtMs = performance.timeOrigin + started;
    const sentEach = (await readSendTraces(traceDir)).filter((at) => at >= startedAtMs);
    rows.push([
      '`ca delete` vs per-device deletes',
      `${count.toLocaleString('en-US')} devices under one CA, one egress (2 workers for the per-device batch)`,
      `ca delete: ${fmt(whole.seconds, 1)} s (${listCalls} listing calls + 1 DeleteCaCertificate; records written per device); per-device: ${fmt(eachSeconds, 1)} s (${eachStats.total.toLocaleString('en-US')} calls); ${fmt(eachSeconds / whole.seconds, 1)}× longer; ${limitsSeen(eachStats)}; ${sentSeen({ groups: [busiestWindow(sentEach)], all: busiestWindow(sentEach) })}`,
      'ca delete ≈ 2 listings',
    ]);
    process.stdout.write(`${rows.at(-1)?.join(' | ')}\n`);
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await context.close();
    await stopProcess(api.spawned);
    await removePrefix(prefix);
    await rm(traceDir, { recursive: true, force: true });
  }
}

async function machine(): Promise<string> {
  const redis = openRedis();
  const info = await redis.info('server');
  redis.disconnect();
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
  return `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, Redis ${version}`;
}

async function main(): Promise<void> {
  useCompiledBuild();
  const started = new Date();
  const host = await machine();
  process.stdout.write(`revoker benchmark ${started.toISOString()} on ${host}${QUICK ? ' (quick)' : ''}\n`);
  // BENCH_ONLY=throughput,quota,listing,urgent,ingest,cadelete,comparisons runs a subset (for tuning one thing).
  const only = new Set((process.env.BENCH_ONLY ?? 'throughput,quota,listing,urgent,ingest,cadelete,comparisons').split(','));
  const best = only.has('throughput') ? await throughput() : { oneEgress: EGRESS_RATE, twoEgress: RATE };
  if (only.has('quota')) await sharedQuota();
  if (only.has('listing')) await listingDuringDeletes();
  if (only.has('urgent')) await urgentDuringBulk();
  if (only.has('ingest')) await ingest();
  if (only.has('cadelete')) await caDeleteVsPerDevice();
  if (only.has('comparisons')) await comparisons();
  rows.push(['projection, one egress', '1,000,000 devices', `${fmt(1_000_000 / best.oneEgress / 60, 1)} min at the best measured steady rate (${fmt(best.oneEgress, 0)}/s); ideal at ${EGRESS_RATE}/s: ${fmt(1_000_000 / EGRESS_RATE / 60, 1)} min`, '']);
  rows.push(['projection, two egress groups', '1,000,000 devices', `${fmt(1_000_000 / best.twoEgress / 60, 1)} min at the best measured steady rate (${fmt(best.twoEgress, 0)}/s); ideal at ${RATE}/s: ${fmt(1_000_000 / RATE / 60, 1)} min`, '']);
  process.stdout.write(`${rows.slice(-2).map((row) => row.join(' | ')).join('\n')}\n`);
  const table = ['| scenario | size | measured | target |', '|---|---|---|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
  const doc = `# Benchmarks\n\nMeasured ${started.toISOString().slice(0, 10)} on ${host}${QUICK ? ' (quick run: BENCH_QUICK=1)' : ''} with \`npm run bench\`.\nThe emulator runs as its own process (default latency: median 25 ms, p99 120 ms; per account and API operation cap 500/s unless stated; a source IP above ${IP_LIMIT}/s is blocked); revoker is configured at ${RATE}/s per account and operation and ${EGRESS_RATE}/s per egress group (the defaults). Two egress groups are two TCP forwarders bound to 127.0.0.2 and 127.0.0.3 in front of the emulator.${receiverPriorityNote()} Busiest seconds are counted where the calls arrive (the emulator) and, for the throughput and \`ca delete\` rows, where they left (\`scripts/bench/send-trace.ts\`).\nRates are steady state (between 20 % and 80 % of the batch), as a fraction of the budget that binds, measured in the same run.\n\n${table}\n${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}`;
  await mkdir('docs', { recursive: true });
  await writeFile('docs/BENCHMARKS.md', doc);
  process.stdout.write(`\n${table}\n\nwritten to docs/BENCHMARKS.md\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

