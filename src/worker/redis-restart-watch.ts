/**
 * Notices Redis coming back as a new instance (`RunIdWatch`) and makes up for what it may have
 * forgotten. With AOF `everysec` a crash can lose about the last second of acknowledged writes,
 * call intents included: the calls this process made recently (its `CallJournal`) are marked in
 * the ledger as having an unknown result, so that a job that runs again takes "not registered" for
 * `gone`, never `not_found`. A call whose ledger entry itself was lost (its producer's chunk went
 * with the crash, and the producer sends it again) is remembered by job id until that job is
 * opened again (mark-lost-answers.lua). Runs wait `settleMs` after a restart before deciding
 * anything: the job may be another worker's, and that worker needs a moment to reconnect and mark
 * it.
 *
 * Not on Redis Cluster (each master has its own run id): see docs/RELIABILITY.md.
 */
import type { Logger } from 'pino';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { RunIdWatch } from '../redis/run-id-watch.js';
import type { ResultStore } from '../results/result-store.js';
import type { CallJournal } from './call-journal.js';

/** Watches one connection for a Redis restart. */
export class RedisRestartWatch {
  private readonly watch: RunIdWatch;
  private checking: Promise<void> | null = null;
  private readonly onReady = (): void => {
    if (this.watch.pending) this.check().catch((error: unknown) => this.log.error({ err: error }, 'could not check whether Redis restarted'));
  };

  constructor(
    private readonly redis: Redis,
    private readonly results: ResultStore,
    private readonly journal: CallJournal,
    private readonly log: Logger,
    private readonly settleMs: number,
  ) {
    this.watch = new RunIdWatch(redis);
  }

  /** Reads the run id now and watches reconnects. */
  start(): void {
    this.watch.start().catch(() => undefined);
    this.redis.on('ready', this.onReady);
  }

  stop(): void {
    this.watch.stop();
    this.redis.off('ready', this.onReady);
  }

  /** Resolves when a run may decide: at once, unless the connection dropped since the last check. */
  async beforeRun(): Promise<void> {
    if (this.watch.pending || this.checking !== null) await this.check();
  }

  /** One check at a time; a failed one (Redis still down) is due again. */
  private check(): Promise<void> {
    this.checking ??= (async () => {
      try {
        if (!(await this.watch.changed())) return;
        const recent = this.journal.recent();
        const marked = await this.results.markLostAnswers(recent);
        this.log.warn({ recentCalls: recent.length, marked }, 'Redis came back as a new instance: recent calls whose trace it may have lost are marked as having an unknown result');
        await new Promise((resolve) => setTimeout(resolve, this.settleMs));
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }
}
