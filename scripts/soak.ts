/**
 * `npm run soak`: the long versions of the reliability scenarios, against processes as production
 * runs them, on a Redis of its own (AOF `everysec`, so that it can be crashed):
 * - an emulator process with faults (10 % 503, 5 % timeouts, 1 % drops);
 * - three worker processes, one SIGKILLed at random moments and restarted, four times;
 * - three overlapping batches: A (normal) and B (bulk) enqueued at the same time, C (urgent)
 *   enqueued a little later and cancelled mid-way; B paused for 5 s and resumed;
 * - a throttling storm (quota 100/s for 20 s);
 * - a Redis crash: SIGKILL with its AOF cut back by the last second (what a host crash loses),
 *   restart, then a reconciler sweep;
 * - dead letters redriven at the end.
 * Then the invariants, from the batches' records and what the emulator still has registered, and
 * the counts of each outcome and evidence per batch.
 *
 *   SOAK_DEVICES=20000 npm run soak
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { generateDevices } from '../src/emulator/index.js';
import { resolveConfig } from '../src/config/config.js';
import { Enqueuer } from '../src/producer/enqueuer.js';
import type { BatchPriority } from '../src/queue/priority.js';
import { Reconciler } from '../src/reconcile/reconciler.js';
import { openContext, type Context } from '../src/runtime/context.js';
import type { ResultRecord } from '../src/results/result-record.js';
import { benchEnv, sleep, spawnEmulator, spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from './bench/bench-support.js';

const DEVICES = Number(process.env.SOAK_DEVICES ?? 10_000);
const INSTANCE = 'mqtt-cn-soak00001';
const CA = 'ca00000000000soak';

type Device = { mqttInstanceId: string; caSn: string; deviceSn: string };

/** A redis-server of the soak's own, in a temporary directory, that can be crashed. */
class OwnRedis {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<OwnRedis> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (address === null || typeof address !== 'object') throw new Error('no free port');
    const redis = new OwnRedis(address.port, await mkdtemp(join(tmpdir(), 'revoker-soak-redis-')));
    await redis.run();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async run(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
    for (let tries = 0; tries < 100; tries += 1) {
      const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      const up = await probe.connect().then(() => probe.ping()).then((pong) => pong === 'PONG', () => false);
      probe.disconnect();
      if (up) return;
      await sleep(100);
    }
    throw new Error('the soak Redis did not start');
  }

  /** SIGKILL, with the AOF cut back to where it was `lostMs` before: what a host crash loses. Returns the bytes lost. */
  async crash(lostMs: number): Promise<number> {
    const dir = join(this.dir, 'appendonlydir');
    const newest = (await readdir(dir)).filter((name) => name.endsWith('.incr.aof')).sort().at(-1);
    if (newest === undefined) throw new Error('no incremental AOF file');
    const aof = join(dir, newest);
    const before = (await stat(aof)).size;
    await sleep(lostMs);
    await this.stop('SIGKILL');
    const lost = (await stat(aof)).size - before;
    await truncate(aof, before);
    return lost;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  async remove(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function enqueue(context: Context, name: string, devices: Device[], priority: BatchPriority): Promise<string> {
  const batchId = await context.batches.create({ name, source: 'csv', action: 'delete', createdBy: 'soak', priority });
  // Not awaited: A and B are enqueued at the same time, as two producers would.
  new Enqueuer(context.queue, context.batches, context.results)
    .enqueue(batchId, 'delete', devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } })))
    .catch((error: unknown) => process.stderr.write(`soak: enqueue of ${name} failed: ${String(error)}\n`));
  return batchId;
}

async function main(): Promise<number> {
  const redis = await OwnRedis.start();
  const api = await spawnEmulator(['--fault-503', '0.1', '--fault-timeout', '0.05', '--fault-drop', '0.01', '--latency-median-ms', '25', '--latency-p99-ms', '200']);
  const prefix = `{soak-${Date.now().toString(36)}}`;
  const extra = { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: '480', JOB_LOCK_MS: '3000', MQTT_API_TIMEOUT_MS: '2000', MAX_ATTEMPTS: '12' };
  const env = benchEnv(prefix, api.endpoint, extra);
  const context = openContext(resolveConfig(env), 'soak');
  context.redis.on('error', () => undefined);
  const reconciler = new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results: context.results, deadLetters: context.deadLetters, log: pino({ level: 'silent' }) });
  const workers: Spawned[] = [];
  const problems: string[] = [];
  try {
    for (let i = 0; i < 3; i += 1) workers.push(spawnWorker(env));
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const registered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: DEVICES, prefix: 'soak' });
    const missing = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: Math.ceil(DEVICES / 50), prefix: 'soak-missing' });
    for (let i = 0; i < registered.length; i += 5_000) await api.control('/_emulator/devices', { devices: registered.slice(i, i + 5_000) });
    const at = (fraction: number) => Math.floor(registered.length * fraction);
    const devicesOf = new Map<string, Device[]>();
    const a = await enqueue(context, 'soak A', [...registered.slice(0, at(0.6)), ...missing], 'normal');
    devicesOf.set(a, [...registered.slice(0, at(0.6)), ...missing]);
    const b = await enqueue(context, 'soak B', registered.slice(at(0.4)), 'bulk');
    devicesOf.set(b, registered.slice(at(0.4)));
    process.stdout.write(`soak: batches A ${a} and B ${b} (overlapping), ${registered.length + missing.length} devices, 3 workers, faults on, Redis ${redis.url}\n`);

    let c: string | null = null;
    let kills = 0;
    let stormDone = false;
    let pauseDone = false;
    let crashDone = false;
    let cancelDone = false;
    const total = () => [...devicesOf.values()].reduce((sum, devices) => sum + devices.length, 0);
    for (;;) {
      const batches = await Promise.all([...devicesOf.keys()].map((id) => context.batches.get(id).catch(() => null)));
      if (batches.every((batch) => batch !== null && batch.finishedAt !== null) && c !== null) break;
      const done = batches.reduce((sum, batch) => sum + (batch?.done ?? 0), 0);
      const progress = done / Math.max(1, total());
      if (c === null && progress > 0.1) {
        c = await enqueue(context, 'soak C (cancelled)', registered.slice(at(0.2), at(0.5)), 'urgent');
        devicesOf.set(c, registered.slice(at(0.2), at(0.5)));
        process.stdout.write(`soak: batch C ${c} (urgent, overlapping both)\n`);
      }
      if (c !== null && !cancelDone && progress > 0.3) {
        await context.control.cancel(c, 'soak: cancelled mid-way');
        cancelDone = true;
        process.stdout.write(`soak: cancelled C at ${done} done\n`);
      }
      if (!pauseDone && progress > 0.35) {
        await context.control.pause(b, 'soak: paused for 5 s');
        await sleep(5_000);
        await context.control.resume(b);
        pauseDone = true;
        process.stdout.write('soak: paused B for 5 s and resumed it\n');
      }
      if (kills < 4 && progress > (kills + 1) / 6) {
        const index = Math.floor(Math.random() * workers.length);
        workers[index]?.child.kill('SIGKILL');
        await workers[index]?.exited;
        workers[index] = spawnWorker(env);
        await waitForWorkerStart(workers[index]);
        kills += 1;
        process.stdout.write(`soak: SIGKILLed and restarted a worker at ${done} done\n`);
      }
      if (!stormDone && progress > 0.5) {
        process.stdout.write('soak: throttling storm, quota 100/s for 20 s\n');
        await api.control('/_emulator/config', { ratePerSecond: 100 });
        await sleep(20_000);
        await api.control('/_emulator/config', { ratePerSecond: 500 });
        stormDone = true;
      }
      if (!crashDone && progress > 0.7) {
        const lost = await redis.crash(1_000);
        await sleep(500);
        await redis.run();
        crashDone = true;
        process.stdout.write(`soak: Redis crashed at ${done} done, its last second (${lost} bytes of AOF) lost, restarted\n`);
        await sleep(10_000);
        const report = await reconciler.runOnce(undefined, 60_000);
        process.stdout.write(`soak: reconciler after the crash: ${JSON.stringify({ ...report, requeued: report?.requeued.length })}\n`);
      }
      await sleep(500);
    }

    // Dead letters (faults on: some devices used all their attempts) go back until none is left.
    for (let round = 1; round <= 3 && (await context.deadLetters.count()) > 0; round += 1) {
      const summary = await context.deadLetters.redrive();
      process.stdout.write(`soak: redrive round ${round}: ${summary.redriven} redriven\n`);
      for (;;) {
        const batches = await Promise.all([...devicesOf.keys()].map((id) => context.batches.get(id)));
        if (batches.every((batch) => batch !== null && batch.finishedAt !== null)) break;
        await sleep(500);
      }
    }
    // A last sweep: anything a crash left must be found (and nothing should be).
    const last = await reconciler.runOnce(undefined, 60_000);
    if (last !== null && last.requeued.length > 0) problems.push(`the last reconciler sweep still found ${last.requeued.length} devices without a job`);

    const left = await api.control<{ total: number; devices: { deviceSn: string }[] }>(`/_emulator/devices?mqttInstanceId=${INSTANCE}&caSn=${CA}`);
    const stillThere = new Set(left.devices.map((device) => device.deviceSn));
    const never = new Set(missing.map((device) => device.deviceSn));
    for (const [batchId, devices] of devicesOf) {
      const batch = await context.batches.get(batchId);
      const records = new Map<string, ResultRecord>();
      const outcomes = new Map<string, number>();
      for await (const raw of context.results.scan(batchId)) {
        const record = raw as ResultRecord;
        if (records.has(record.deviceSn)) problems.push(`${batchId}: ${record.deviceSn} has two records`);
        records.set(record.deviceSn, record);
        const key = `${record.outcome}/${record.evidence ?? '-'}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      if (batch === null) {
        problems.push(`${batchId}: batch gone`);
        continue;
      }
      if (records.size !== devices.length || batch.accepted !== devices.length) problems.push(`${batchId}: ${records.size} records, ${batch.accepted} accepted, for ${devices.length} devices`);
      if (batch.done !== records.size) problems.push(`${batchId}: done=${batch.done} for ${records.size} records`);
      for (const [outcome, count] of Object.entries(batch.counts)) {
        const recorded = [...records.values()].filter((record) => record.outcome === outcome).length;
        if (recorded !== count) problems.push(`${batchId}: counter ${outcome}=${count} but ${recorded} records`);
      }
      for (const device of devices) {
        const record = records.get(device.deviceSn);
        const outcome: string = record?.outcome ?? 'nowhere';
        if (outcome === 'pending' || outcome === 'nowhere') problems.push(`${batchId}: ${device.deviceSn} has no terminal record`);
        else if (never.has(device.deviceSn)) {
          if (outcome === 'deleted') problems.push(`${batchId}: ${device.deviceSn} never registered but recorded deleted`);
        } else if (stillThere.has(device.deviceSn)) {
          if (outcome === 'deleted' || outcome === 'gone' || outcome === 'not_found') problems.push(`${batchId}: ${device.deviceSn} recorded ${outcome} but still registered`);
        } else if (outcome === 'not_found') {
          problems.push(`${batchId}: ${device.deviceSn} deleted by revoker but recorded not_found`);
        } else if (outcome === 'cancelled' && record?.evidence === 'read') {
          problems.push(`${batchId}: ${device.deviceSn} gone but a read recorded it cancelled`);
        }
      }
      process.stdout.write(`soak: batch ${batch.name} [${batch.state}]: ${[...outcomes].sort().map(([key, count]) => `${key} ${count}`).join(', ')}\n`);
    }
    const stats = await api.control<{ maxCallsInAnySecond: number; throttled: number; total: number }>('/_emulator/stats');
    process.stdout.write(`soak: ${stats.total} calls, ${stats.throttled} throttled, busiest second ${stats.maxCallsInAnySecond}; ${kills} worker kills, Redis crash ${crashDone ? 'done' : 'not reached'}\n`);
    if (stats.maxCallsInAnySecond > 480) problems.push(`busiest second ${stats.maxCallsInAnySecond} above the configured 480`);
    process.stdout.write(problems.length === 0 ? 'soak: every invariant held\n' : `soak: ${problems.length} problems:\n${problems.slice(0, 50).join('\n')}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await context.close();
    await stopProcess(api.spawned);
    await redis.remove();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
