/**
 * Measures CSV ingest through the real command line: generates a CSV of N devices, runs
 * `revoker enqueue FILE --json --yes` as its own process against the local Redis (a key prefix of
 * its own, removed afterwards, flow control off as in `npm run bench`), and prints rows/s (wall
 * time including process start) and the process's peak RSS. Repeats each size and prints the best
 * and the spread, because other jobs share the machine.
 *
 *   npx tsx scripts/measure-ingest.ts [--rows 200000,1000000] [--repeat 3] [--root DIR] [--compiled] [--cli-args "--snapshot never"]
 *
 * `--root` runs another checkout's CLI (e.g. a copy of the previous commit) with this generator;
 * `--compiled` runs `dist/src/cli/main.js` (after `npm run build`) instead of the sources via tsx.
 * REDIS_URL picks the Redis (a private `redis-server --port 6390` keeps other clients' commands
 * out of the measurement).
 *
 * Besides wall time it prints CPU time per row, which a busy machine distorts much less: the
 * producer's (user + system, from /usr/bin/time) and the Redis server's (from /proc, when it runs
 * on this machine; on a shared Redis it includes the other clients' work).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { removePrefix } from '../test/helpers/redis.js';
import { peakRss } from './bench/bench-support.js';

const INSTANCE = 'mqtt-cn-measure0001';
const CA = 'ca00000000measure';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Run {
  rowsPerSecond: number;
  seconds: number;
  peakRssBytes: number;
  /** Producer CPU (user + system) per row, µs; NaN without /usr/bin/time. */
  producerCpuUs: number;
  /** Redis server CPU per row, µs; NaN when it does not run here. */
  redisCpuUs: number;
}

const TIME = '/usr/bin/time';

/** CPU seconds (user + system) a local process has used, or NaN. */
async function cpuSecondsOf(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux.
  } catch {
    return Number.NaN;
  }
}

/** The Redis server's process id, from INFO. */
async function redisPid(): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    return Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1] ?? 0);
  } finally {
    redis.disconnect();
  }
}

function flag(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function writeCsv(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file);
  out.write('DeviceSn,CaSn,MqttInstanceId\n');
  for (let i = 0; i < rows; i += 1) {
    if (!out.write(`dev${i.toString(16).padStart(12, '0')},${CA},${INSTANCE}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function runOnce(root: string, file: string, rows: number, compiled: boolean): Promise<Run> {
  const prefix = `{measure-ingest-${process.pid}-${Date.now().toString(36)}}`;
  const entry = compiled ? ['dist/src/cli/main.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
  const timed = existsSync(TIME);
  const extra = (flag('--cli-args') ?? '').split(' ').filter((arg) => arg !== '');
  const command = [...entry, 'enqueue', file, '--json', '--yes', ...extra];
  const server = await redisPid();
  const redisBefore = await cpuSecondsOf(server);
  const startedAt = performance.now();
  const child = spawn(timed ? TIME : process.execPath, timed ? ['-f', 'measured-cpu: %U %S %M', process.execPath, ...command] : command, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REDIS_URL, REVOKER_PREFIX: prefix, QUEUE_HIGH_WATER_JOBS: '10000000', LOG_LEVEL: 'warn', RATE_LIMIT_KEY: 'measure-ingest' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  try {
    const peak = await peakRss(child.pid ?? 0, exited, 50);
    const code = await exited;
    const seconds = (performance.now() - startedAt) / 1000;
    const redisCpu = (await cpuSecondsOf(server)) - redisBefore;
    const cpu = /measured-cpu: ([\d.]+) ([\d.]+) (\d+)/.exec(output);
    const summary = JSON.parse(output.replace(/measured-cpu:.*$/m, '').trim().split('\n').at(-1) ?? '{}') as { accepted?: number };
    if (code !== 0 || summary.accepted !== rows) throw new Error(`enqueue exited ${String(code)} with ${String(summary.accepted)} accepted: ${output.slice(-2000)}`);
    const producerCpu = cpu === null ? Number.NaN : Number(cpu[1]) + Number(cpu[2]);
    // /usr/bin/time reports the producer's own peak (KiB); the poll would see time's.
    const peakRssBytes = cpu === null ? peak : Number(cpu[3]) * 1024;
    return { rowsPerSecond: rows / seconds, seconds, peakRssBytes, producerCpuUs: (producerCpu * 1e6) / rows, redisCpuUs: (redisCpu * 1e6) / rows };
  } finally {
    await removePrefix(prefix, REDIS_URL);
  }
}

function describe(rows: number, runs: Run[]): string {
  const rates = runs.map((run) => run.rowsPerSecond);
  const rss = runs.map((run) => run.peakRssBytes / 2 ** 20);
  const best = Math.max(...rates);
  const lowest = (values: number[]) => Math.min(...values).toFixed(1);
  return (
    `${rows} rows: best ${best.toFixed(0)} rows/s, spread ${Math.min(...rates).toFixed(0)}–${best.toFixed(0)} ` +
    `(runs: ${rates.map((rate) => rate.toFixed(0)).join(', ')}); peak RSS ${Math.min(...rss).toFixed(0)}–${Math.max(...rss).toFixed(0)} MiB; ` +
    `CPU per row (lowest): producer ${lowest(runs.map((run) => run.producerCpuUs))} µs, Redis ${lowest(runs.map((run) => run.redisCpuUs))} µs`
  );
}

async function main(): Promise<void> {
  const sizes = (flag('--rows') ?? '200000').split(',').map(Number);
  const repeat = Number(flag('--repeat') ?? '3');
  const root = resolve(flag('--root') ?? fileURLToPath(new URL('..', import.meta.url)));
  const compiled = process.argv.includes('--compiled');
  const dir = await mkdtemp(join(tmpdir(), 'revoker-measure-'));
  try {
    for (const rows of sizes) {
      const file = join(dir, `devices-${rows}.csv`);
      await writeCsv(file, rows);
      const runs: Run[] = [];
      for (let index = 0; index < repeat; index += 1) {
        const run = await runOnce(root, file, rows, compiled);
        runs.push(run);
        process.stdout.write(
          `  ${root} ${rows} rows, run ${index + 1}: ${run.rowsPerSecond.toFixed(0)} rows/s, ${run.seconds.toFixed(1)} s, peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ` +
            `CPU per row: producer ${run.producerCpuUs.toFixed(1)} µs, Redis ${run.redisCpuUs.toFixed(1)} µs\n`,
        );
      }
      process.stdout.write(`${describe(rows, runs)}\n`);
      await rm(file, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
