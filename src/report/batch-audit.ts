/**
 * What an auditor asks about a batch that the batch record does not hold (yet): why it was
 * started (free text and an RFC 5280 reason code), the exact command, the input file and its
 * SHA-256, the batch it follows up, and the last `revoker verify`. One small hash per batch,
 * `<batch key>:facts`, with the batch's retention.
 *
 * Kept apart from `BatchStore` only because that module is not this one's to change; the fields
 * belong on the batch record (see the note in the change report), and this is the one place
 * that would then read them from there instead.
 */
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';

/**
 * RFC 5280 §5.3.1 CRLReason values an operator can give for a revocation (the codes that make
 * sense for device certificates revoked in bulk), with their numeric values.
 */
export const REASON_CODES = {
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
} as const;

/** One of `REASON_CODES`. */
export type ReasonCode = keyof typeof REASON_CODES;

/** Parses `--reason-code`, accepting any letter case; null when unknown. */
export function parseReasonCode(value: string): ReasonCode | null {
  const match = Object.keys(REASON_CODES).find((code) => code.toLowerCase() === value.trim().toLowerCase());
  return (match as ReasonCode | undefined) ?? null;
}

/** Audit facts of a batch; null where unknown. */
export interface BatchAudit {
  /** Why it was started (`--reason`). */
  reason: string | null;
  reasonCode: ReasonCode | null;
  /** The command that started it, as typed (arguments quoted where needed). */
  command: string | null;
  /** Absolute path of the input file. */
  inputFile: string | null;
  /** Hex SHA-256 of the bytes read from it. */
  inputSha256: string | null;
  /** The batch this one follows up (`revoker verify --requeue`). */
  linkedBatchId: string | null;
  /** Batches started from this one by `revoker verify --requeue`, oldest first. */
  followUpBatchIds: string[];
  /** The last `revoker verify` of this batch: when, and what it found (JSON object). */
  verifiedAt: string | null;
  verification: Record<string, unknown> | null;
}

const EMPTY: BatchAudit = {
  reason: null,
  reasonCode: null,
  command: null,
  inputFile: null,
  inputSha256: null,
  linkedBatchId: null,
  followUpBatchIds: [],
  verifiedAt: null,
  verification: null,
};

/** Quotes a command-line argument for display when the shell would need it. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** Reads and writes batches' audit facts. */
export class BatchAuditStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly retentionDays: number,
  ) {}

  private key(batchId: string): string {
    return `${this.keys.batch(batchId)}:facts`;
  }

  /** Sets the given facts (others unchanged) and renews the retention. */
  async set(batchId: string, facts: Partial<Omit<BatchAudit, 'followUpBatchIds'>>): Promise<void> {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(facts)) {
      if (value === null || value === undefined) continue;
      fields[name] = typeof value === 'string' ? value : JSON.stringify(value);
    }
    if (Object.keys(fields).length === 0) return;
    await this.redis.multi().hset(this.key(batchId), fields).expire(this.key(batchId), this.retentionDays * 86_400).exec();
  }

  /** Records that `followUpId` was started from `batchId`. */
  async addFollowUp(batchId: string, followUpId: string): Promise<void> {
    const current = await this.get(batchId);
    await this.redis
      .multi()
      .hset(this.key(batchId), 'followUpBatchIds', JSON.stringify([...current.followUpBatchIds, followUpId]))
      .expire(this.key(batchId), this.retentionDays * 86_400)
      .exec();
  }

  /** The batch's facts (every field null when none were recorded). */
  async get(batchId: string): Promise<BatchAudit> {
    const hash = await this.redis.hgetall(this.key(batchId));
    const json = <T>(raw: string | undefined, fallback: T): T => {
      if (raw === undefined) return fallback;
      try {
        return JSON.parse(raw) as T;
      } catch {
        return fallback;
      }
    };
    const reasonCode = hash.reasonCode !== undefined ? parseReasonCode(hash.reasonCode) : null;
    return {
      ...EMPTY,
      reason: hash.reason ?? null,
      reasonCode,
      command: hash.command ?? null,
      inputFile: hash.inputFile ?? null,
      inputSha256: hash.inputSha256 ?? null,
      linkedBatchId: hash.linkedBatchId ?? null,
      followUpBatchIds: json<string[]>(hash.followUpBatchIds, []),
      verifiedAt: hash.verifiedAt ?? null,
      verification: json<Record<string, unknown> | null>(hash.verification, null),
    };
  }
}
