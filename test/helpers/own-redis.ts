/**
 * A `redis-server` of a test's (or the soak's) own: a free port, a temporary directory, AOF on
 * (`everysec`), so that it can be stopped, crashed and started again without touching the shared
 * Redis on 6379. Used by test/reliability/redis-crash.test.ts, redis-restart.test.ts and
 * `npm run soak`.
 *
 * A crash is simulated the way a host crash loses data: with AOF `everysec`, up to the last second
 * of acknowledged writes never reached the disk. `markAof` notes the AOF's size, `kill` SIGKILLs
 * the server, `cutAof` cuts the file back to the mark (Redis writes the AOF in whole event-loop
 * flushes, so the cut falls between commands; an open MULTI is discarded on load).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisAnswers } from '../../src/redis/redis-connection.js';
import { waitFor } from './redis.js';

/** Where the AOF stood at one moment: the file Redis appends to and its size. */
export interface AofMark {
  file: string;
  sizeBytes: number;
}

/** Options of `OwnRedis.start`. */
export interface OwnRedisOptions {
  /** Names the temporary directory (`revoker-<label>-…`). */
  label: string;
  /** How long to wait for the server to answer PING after each start. */
  startTimeoutMs: number;
}

const DEFAULTS: OwnRedisOptions = { label: 'redis', startTimeoutMs: 10_000 };

/** A free TCP port on 127.0.0.1 (free when asked; the server binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no free port');
  return address.port;
}

/** One redis-server process (restartable on the same port and directory). */
export class OwnRedis {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: OwnRedisOptions,
  ) {}

  /** Starts a server on a free port in a new temporary directory and waits until it answers. */
  static async start(options: Partial<OwnRedisOptions> = {}): Promise<OwnRedis> {
    const resolved = { ...DEFAULTS, ...options };
    const redis = new OwnRedis(await freePort(), await mkdtemp(join(tmpdir(), `revoker-${resolved.label}-`)), resolved);
    await redis.run();
    return redis;
  }

  /** `redis://127.0.0.1:PORT` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The server's pid while it runs. */
  get pid(): number | null {
    return this.running() ? (this.child?.pid ?? null) : null;
  }

  /** Starts the server (again, after `stop` or `kill`: it loads its AOF) and waits until it answers. */
  async run(): Promise<void> {
    if (this.running()) throw new Error(`redis-server on port ${this.port} is already running`);
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
    this.child = child;
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server on port ${this.port} exited at start (${child.exitCode ?? child.signalCode})`);
        return this.answers();
      },
      `redis-server on port ${this.port} to answer`,
      this.options.startTimeoutMs,
    );
  }

  /** Stops the server: SIGTERM flushes the AOF (an orderly restart), SIGKILL does not. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === null || !this.running()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** SIGKILLs the server. */
  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** The AOF file Redis appends to now (Redis 7: the newest `*.incr.aof` of appendonlydir) and its size. */
  async markAof(): Promise<AofMark> {
    const dir = join(this.dir, 'appendonlydir');
    const newest = (await readdir(dir)).filter((name) => name.endsWith('.incr.aof')).sort().at(-1);
    if (newest === undefined) throw new Error(`no incremental AOF file in ${dir}`);
    const file = join(dir, newest);
    return { file, sizeBytes: (await stat(file)).size };
  }

  /** Cuts the AOF back to `mark` (the server must be down); returns the bytes cut off. */
  async cutAof(mark: AofMark): Promise<number> {
    if (this.running()) throw new Error('cut the AOF of a stopped server only');
    const lost = (await stat(mark.file)).size - mark.sizeBytes;
    await truncate(mark.file, mark.sizeBytes);
    return lost;
  }

  /**
   * What a host crash does: SIGKILL, with the AOF cut back to where it was `lostMs` before (the
   * writes Redis acknowledged but had not fsynced). Returns the bytes lost; start it again with `run`.
   */
  async crash(lostMs = 1_000): Promise<number> {
    const mark = await this.markAof();
    await new Promise((resolve) => setTimeout(resolve, lostMs));
    await this.kill();
    return this.cutAof(mark);
  }

  /** Stops the server (SIGKILL: nothing of it is kept) and removes its directory. */
  async remove(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  private running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  private answers(): Promise<boolean> {
    return redisAnswers(this.url);
  }
}
