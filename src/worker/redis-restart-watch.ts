/**
 * Notices Redis coming back as a new instance (its run id changed) and makes up for what it may
 * have forgotten. With AOF `everysec` a crash can lose about the last second of acknowledged
 * writes, call intents included: the calls this process made recently (its `CallJournal`) are
 * marked in the ledger as having an unknown result, so that a job that runs again takes "not
 * registered" for `gone`, never `not_found`. Runs wait `settleMs` after a restart before deciding
 * anything: the job may be another worker's, and that worker needs a moment to reconnect and mark
 * it.
 *
 * Not on Redis Cluster (each master has its own run id): see docs/RELIABILITY.md.
 */
import { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { ResultStore } from '../results/result-store.js';
import type { CallJournal } from './call-journal.js';

/** Watches one connection for a Redis restart. */
export class RedisRestartWatch {
  private runId: string | null = null;
  /** Set when the connection dropped: the next run first checks whether Redis restarted. */
  private due = false;
  private checking: Promise<void> | null = null;
  private readonly onDropped = (): void => {
    this.due = true;
  };
  private readonly onReady = (): void => {
    if (this.due) this.check().catch((error: unknown) => this.log.error({ err: error }, 'could not check whether Redis restarted'));
  };

  constructor(
    private readonly redis: Redis,
    private readonly results: ResultStore,
    private readonly journal: CallJournal,
    private readonly log: Logger,
    private readonly settleMs: number,
  ) {}

  /** Reads the run id now and watches reconnects. */
  start(): void {
    if (this.redis instanceof Cluster) return;
    this.readRunId()
      .then((runId) => {
        this.runId ??= runId;
      })
      .catch(() => undefined);
    this.redis.on('reconnecting', this.onDropped);
    this.redis.on('ready', this.onReady);
  }

  stop(): void {
    this.redis.off('reconnecting', this.onDropped);
    this.redis.off('ready', this.onReady);
  }

  /** Resolves when a run may decide: at once, unless the connection dropped since the last check. */
  async beforeRun(): Promise<void> {
    if (this.due || this.checking !== null) await this.check();
  }

  private async readRunId(): Promise<string | null> {
    const info = await this.redis.info('server');
    return /run_id:([0-9a-f]+)/.exec(info)?.[1] ?? null;
  }

  /** One check at a time; a failed one (Redis still down) is due again. */
  private check(): Promise<void> {
    this.checking ??= (async () => {
      try {
        this.due = false;
        const runId = await this.readRunId();
        if (runId === null) return;
        const before = this.runId;
        this.runId = runId;
        if (before === null || before === runId) return;
        const recent = this.journal.recent();
        const marked = await this.results.markLostAnswers(recent);
        this.log.warn({ recentCalls: recent.length, marked }, 'Redis came back as a new instance: recent calls whose trace it may have lost are marked as having an unknown result');
        await new Promise((resolve) => setTimeout(resolve, this.settleMs));
      } catch (error) {
        this.due = true;
        throw error;
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }
}
