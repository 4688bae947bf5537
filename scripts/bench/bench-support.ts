/**
 * Plumbing shared by the benchmark scenarios: processes, the emulator process, Redis probes,
 * CPU time of other processes, and a sampler of progress for steady-state rates.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setPriority } from 'node:os';
import { Redis } from 'ioredis';
import { DEMO_ACCOUNT, type CallRecord } from '../../src/emulator/index.js';
import { spawnEmulator, spawnForwarder, spawnTs, spawnWorker, stopProcess, waitForWorkerStart, type EmulatorProcess, type Spawned } from '../../test/helpers/processes.js';
import { removePrefix, waitFor } from '../../test/helpers/redis.js';

export { spawnEmulator, spawnForwarder, spawnWorker, stopProcess, waitForWorkerStart, removePrefix, type EmulatorProcess, type Spawned };

/**
 * Compiles the project and makes the benchmark's child processes run the compiled JavaScript,
 * as production does (tsx's loader would add its own memory and start-up time).
 */
export function useCompiledBuild(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  process.env.REVOKER_SPAWN_COMPILED = '1';
}

/** The Redis the benchmark uses. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Environment of a revoker process for one scenario. */
export function benchEnv(prefix: string, endpoint: string, extra: Record<string, string> = {}): Record<string, string> {
  // BENCH_ENV="WORKER_CONCURRENCY=16,LOG_LEVEL=info": settings of every process of a run, for experiments.
  const overrides = Object.fromEntries(
    (process.env.BENCH_ENV ?? '')
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
  return {
    REDIS_URL,
    REVOKER_PREFIX: prefix,
    MQTT_API_ENDPOINT: endpoint,
    MQTT_API_PROTOCOL: 'http',
    ALIBABA_CLOUD_ACCESS_KEY_ID: DEMO_ACCOUNT.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: DEMO_ACCOUNT.accessKeySecret,
    RATE_LIMIT_KEY: `bench-${prefix.replace(/[^A-Za-z0-9]/g, '')}`,
    LOG_LEVEL: 'warn',
    ...extra,
    ...overrides,
  };
}

/** Emulator statistics, as served by `GET /_emulator/stats`. */
export interface EmulatorStatsView {
  total: number;
  admitted: number;
  throttled: number;
  maxCallsInAnySecond: number;
  firstAtMs: number | null;
  lastAtMs: number | null;
  byAction: Record<string, Record<string, number>>;
  /** Per source IP: calls, the busiest sliding second, and blocks (the API blocks above 300/s). */
  bySourceIp?: Record<string, { calls: number; busiestSecond: number; busiestSecondAtMs: number | null; blockCount: number; blockedCalls: number }>;
  /** Per account and API operation: the busiest sliding second (and when it ended) and throttled calls. */
  byAccountAction?: Record<string, Record<string, { calls: number; throttled: number; busiestSecond: number; busiestSecondAtMs: number | null }>>;
}

/** The busiest second at any source IP, and how many blocks the emulator imposed. */
export function perIpSummary(stats: EmulatorStatsView): { busiest: number; blocks: number; ips: string } {
  const entries = Object.entries(stats.bySourceIp ?? {});
  const busiest = Math.max(0, ...entries.map(([, ip]) => ip.busiestSecond));
  const blocks = entries.reduce((sum, [, ip]) => sum + ip.blockCount, 0);
  return { busiest, blocks, ips: entries.map(([address, ip]) => `${address} ${ip.busiestSecond}${secondsIn(stats, ip.busiestSecondAtMs)}`).join(', ') };
}

/** " at N s" into the run (from the first call) for a time the emulator reported, else nothing. */
function secondsIn(stats: EmulatorStatsView, atMs: number | null | undefined): string {
  return atMs == null || stats.firstAtMs === null ? '' : ` at ${((atMs - stats.firstAtMs) / 1000).toFixed(1)} s`;
}

/** The busiest second of one API operation over every account, and when it was. */
export function busiestForActionAt(stats: EmulatorStatsView, action: string): string {
  let busiest = 0;
  let at: number | null = null;
  for (const actions of Object.values(stats.byAccountAction ?? {})) {
    const entry = actions[action];
    if (entry !== undefined && entry.busiestSecond > busiest) {
      busiest = entry.busiestSecond;
      at = entry.busiestSecondAtMs;
    }
  }
  return `${busiest}${secondsIn(stats, at)}`;
}

/** The busiest second of one API operation over every account. */
export function busiestForAction(stats: EmulatorStatsView, action: string): number {
  return Math.max(0, ...Object.values(stats.byAccountAction ?? {}).map((actions) => actions[action]?.busiestSecond ?? 0));
}

/**
 * Scheduling priority (nice) of the processes that stand for other machines: the emulator (the
 * API) and the egress forwarders (NAT gateways). On this host they share two cores with the
 * workers, Redis and the benchmark; at the default priority a stall of theirs (a collection, a
 * turn waiting for a core) bunches calls that left spaced, and the emulator counted that as up to
 * 8 calls over the budget in a second that left within it (docs/BENCHMARKS.md, session 9).
 */
const RECEIVER_NICE = -10;
let receiverPriority: 'raised' | 'refused' | 'unused' = 'unused';

/** Runs `spawned` at RECEIVER_NICE where the OS allows it (root or CAP_SYS_NICE); says so in the report either way. */
export function standingApart<T extends { spawned: Spawned }>(receiver: T): T {
  try {
    setPriority(receiver.spawned.child.pid ?? 0, RECEIVER_NICE);
    if (receiverPriority === 'unused') receiverPriority = 'raised';
  } catch {
    receiverPriority = 'refused';
  }
  return receiver;
}

/** How the emulator and forwarders ran, for the report's header. */
export function receiverPriorityNote(): string {
  if (receiverPriority === 'raised') return ` The emulator and the forwarders run at nice ${RECEIVER_NICE}: they stand for machines of their own, and their own stalls on this shared host would bunch calls that left spaced.`;
  if (receiverPriority === 'refused') return ` The emulator and the forwarders run at the default priority (nice ${RECEIVER_NICE} was refused): their own stalls on this shared host can bunch calls on arrival; compare the counts as sent.`;
  return '';
}

/** The most of `times` (ms) that fall in any half-open window of `windowMs`: a sliding second. */
export function busiestWindow(times: readonly number[], windowMs = 1_000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let busiest = 0;
  for (let last = 0, first = 0; last < sorted.length; last += 1) {
    while ((sorted[last] as number) - (sorted[first] as number) >= windowMs) first += 1;
    busiest = Math.max(busiest, last - first + 1);
  }
  return busiest;
}

/** The send times every process tracing into `dir` recorded (scripts/bench/send-trace.ts); none if none wrote. */
export async function readSendTraces(dir: string): Promise<number[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((name) => name.endsWith('.txt'));
  } catch {
    return [];
  }
  const times = await Promise.all(files.map(async (name) => (await readFile(join(dir, name), 'utf8')).split('\n').filter((line) => line !== '').map(Number)));
  return times.flat();
}

/** Environment that makes a revoker process record its send times into `dir` (created here). */
export async function sendTraceEnv(dir: string): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  return { NODE_OPTIONS: `--import=${SEND_TRACE_MODULE}`, BENCH_SEND_TRACE: dir };
}

/** The compiled send-trace module (the benchmark runs the compiled build). */
const SEND_TRACE_MODULE = fileURLToPath(new URL('../../dist/scripts/bench/send-trace.js', import.meta.url));

/** CPU milliseconds (user + system) a process has used, from /proc. */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux.
}

/** Redis' `used_memory` in bytes. */
export async function redisUsedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

/** Samples a counter over time; the steady rate is the slope between two fractions of the total. */
export class ProgressSampler {
  private readonly samples: { atMs: number; value: number }[] = [];

  /** Records one sample. */
  add(value: number, atMs: number = performance.now()): void {
    this.samples.push({ atMs, value });
  }

  /** Rate per second between the samples where the counter passed `from`·total and `to`·total. */
  steadyRate(total: number, from = 0.2, to = 0.8): number {
    const first = this.samples.find((sample) => sample.value >= total * from);
    const last = [...this.samples].reverse().find((sample) => sample.value <= total * to);
    if (first === undefined || last === undefined || last.atMs <= first.atMs) return Number.NaN;
    return ((last.value - first.value) * 1000) / (last.atMs - first.atMs);
  }
}

/** Sleeps. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Opens a plain Redis client. */
export function openRedis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

/** An emulator process that also serves its call log (scripts/bench/soak-emulator.ts). */
export interface LoggingEmulatorProcess extends EmulatorProcess {
  /** Every call the emulator recorded so far (naming one of `deviceSns`, if given), oldest first. */
  calls(deviceSns?: readonly string[]): Promise<CallRecord[]>;
}

/** Starts scripts/bench/soak-emulator.ts with these `revoker emulator` flags and waits for both its ports. */
export async function spawnLoggingEmulator(flags: string[] = []): Promise<LoggingEmulatorProcess> {
  const spawned = spawnTs('scripts/bench/soak-emulator.ts', ['emulator', '--port', '0', ...flags], {});
  const found = await waitFor(
    () => {
      const output = spawned.output();
      if (spawned.child.exitCode !== null) return { url: 'exited', callLog: '' };
      const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output)?.[1];
      const callLog = /"callLog":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output)?.[1];
      return url !== undefined && callLog !== undefined ? { url, callLog } : null;
    },
    'the emulator to listen',
    30_000,
  );
  if (found.url === 'exited') throw new Error(`emulator exited: ${spawned.output()}`);
  const control = async <T>(path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${found.url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  const calls = async (deviceSns?: readonly string[]): Promise<CallRecord[]> => {
    const response = await fetch(`${found.callLog}/calls${deviceSns === undefined ? '' : `?devices=${deviceSns.map(encodeURIComponent).join(',')}`}`);
    if (!response.ok) throw new Error(`call log: HTTP ${response.status}`);
    return (await response.text())
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as CallRecord);
  };
  return { spawned, endpoint: found.url.replace('http://', ''), control, calls };
}

/** SIGTERM, and SIGKILL if the process has not exited after `graceMs`; resolves with how it ended. */
export async function stopProcessWithin(spawned: Spawned, graceMs: number): Promise<number | string> {
  if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) return spawned.exited;
  spawned.child.kill('SIGTERM');
  const timer = setTimeout(() => spawned.child.kill('SIGKILL'), graceMs);
  try {
    return await spawned.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Peak resident set (VmHWM) of a running process, polled every `everyMs` until `until` settles. */
export async function peakRss(pid: number, until: Promise<unknown>, everyMs = 100): Promise<number> {
  let peak = 0;
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024);
    } catch {
      break;
    }
    await sleep(everyMs);
  }
  return peak;
}

/** What the workers' rate gates said in their progress lines (RateGate.takeStats): late slots and the allowance. */
export function gateSummary(outputs: readonly string[]): string {
  let permits = 0;
  let lateMoved = 0;
  let lateGivenUp = 0;
  let maxAllowanceMs = 0;
  let allowanceSum = 0;
  let allowanceLines = 0;
  let maxSendDelayMs = 0;
  let maxLagMs = 0;
  for (const output of outputs) {
    for (const line of output.split('\n')) {
      if (!line.includes('"gate":')) continue;
      try {
        const gate = (JSON.parse(line) as { gate?: { permits: number; lateMoved: number; lateGivenUp: number; allowanceMs: number; sendDelayMs: number; lagMs: number } }).gate;
        if (gate === undefined) continue;
        permits += gate.permits;
        lateMoved += gate.lateMoved;
        lateGivenUp += gate.lateGivenUp;
        maxAllowanceMs = Math.max(maxAllowanceMs, gate.allowanceMs);
        allowanceSum += gate.allowanceMs;
        allowanceLines += 1;
        maxSendDelayMs = Math.max(maxSendDelayMs, gate.sendDelayMs);
        maxLagMs = Math.max(maxLagMs, gate.lagMs);
      } catch {
        // Not a log line of ours.
      }
    }
  }
  const meanAllowance = allowanceLines === 0 ? 0 : Math.round(allowanceSum / allowanceLines);
  return `late slots ${lateMoved} moved to now, ${lateGivenUp} given up, of ${permits} permits; jitter allowance ${meanAllowance} ms on average, up to ${maxAllowanceMs} ms; worst send delay ${maxSendDelayMs} ms, event-loop lag ${maxLagMs} ms`;
}
