/**
 * Spawns revoker processes (workers, the CLI) the way production runs them, and waits on what they
 * log: from the TypeScript sources through tsx, or from the compiled JavaScript in dist/ when
 * REVOKER_SPAWN_COMPILED=1 — what `npm test` sets right after building (a process starts in about
 * 0.9 s instead of 2 s under tsx, and the suite spawns a few hundred) and what the benchmark sets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './redis.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A spawned process with its collected output. */
export interface Spawned {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

/** Spawns `workers/worker.ts` with `env` (merged over a minimal PATH/HOME environment). */
export function spawnWorker(env: Record<string, string>): Spawned {
  // At info, the worker announces when it is ready (and logs progress every few seconds).
  return spawnTs('workers/worker.ts', [], { ...env, LOG_LEVEL: 'info' });
}

/** Node's arguments that run a TypeScript entrypoint of this repository (see the file's comment). */
export function nodeArgs(entry: string, args: readonly string[]): string[] {
  const compiled = process.env.REVOKER_SPAWN_COMPILED === '1';
  // REVOKER_CHILD_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): flags Node refuses in NODE_OPTIONS, for profiling.
  const flags = (process.env.REVOKER_CHILD_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
  return compiled ? [...flags, `dist/${entry.replace(/\.ts$/, '.js')}`, ...args] : [...flags, '--import', 'tsx', entry, ...args];
}

/** Spawns a TypeScript entrypoint of this repository (see `nodeArgs`). */
export function spawnTs(entry: string, args: string[], env: Record<string, string>): Spawned {
  const command = nodeArgs(entry, args);
  const child = spawn(process.execPath, command, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => output, exited };
}

/** Waits until the worker logged that it started. */
export async function waitForWorkerStart(worker: Spawned, timeoutMs = 30_000): Promise<void> {
  try {
    await waitFor(() => worker.output().includes('"msg":"worker started"') || (worker.child.exitCode !== null ? 'exited' : false), 'the worker to start', timeoutMs);
  } catch (error) {
    throw new Error(`${(error as Error).message}; it printed: ${worker.output().slice(0, 2_000)}`, { cause: error });
  }
  if (worker.child.exitCode !== null) throw new Error(`worker exited early: ${worker.output()}`);
}

/** Kills a process if still running and waits for it. */
export async function stopProcess(spawned: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
  if (spawned.child.exitCode === null && spawned.child.signalCode === null) spawned.child.kill(signal);
  return spawned.exited;
}

/** An emulator running as its own process, like the real API: its clock is not the test's. */
export interface EmulatorProcess {
  spawned: Spawned;
  /** `127.0.0.1:PORT` */
  endpoint: string;
  /** GET or POST a control route (`/_emulator/...`). */
  control<T>(path: string, body?: unknown): Promise<T>;
}

/** Starts `revoker emulator` on a free port with these extra flags and waits for it to listen. */
export async function spawnEmulator(flags: string[] = []): Promise<EmulatorProcess> {
  const spawned = spawnTs('src/cli/main.ts', ['emulator', '--port', '0', ...flags], {});
  const url = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(spawned.output())?.[1] ?? (spawned.child.exitCode !== null ? 'exited' : null), 'the emulator to listen', 30_000);
  if (url === 'exited') throw new Error(`emulator exited: ${spawned.output()}`);
  const control = async <T>(path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  return { spawned, endpoint: url.replace('http://', ''), control };
}

/**
 * A forwarder process (scripts/bench/forwarder.ts): connections through `endpoint` leave from
 * `localAddress`. A process of its own, as a NAT gateway is: one in the test's or benchmark's
 * process stalls while that process enqueues, and passes the calls on in bursts.
 */
export async function spawnForwarder(target: string, localAddress: string): Promise<{ spawned: Spawned; endpoint: string }> {
  const spawned = spawnTs('scripts/bench/forwarder.ts', [target, localAddress], {});
  const endpoint = await waitFor(
    () => {
      if (spawned.child.exitCode !== null) return 'exited';
      return /"endpoint":"([^"]+)"/.exec(spawned.output())?.[1] ?? null;
    },
    'the forwarder to listen',
    30_000,
  );
  if (endpoint === 'exited') throw new Error(`forwarder exited: ${spawned.output()}`);
  return { spawned, endpoint };
}
