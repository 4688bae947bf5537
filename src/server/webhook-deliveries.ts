/**
 * Idempotency of webhook deliveries, keyed by (sender, `webhook-id`) with a hash of the body.
 *
 * The first delivery takes a "processing" marker in one step (SET NX in a script), so a
 * concurrent duplicate cannot enqueue too, and replaces it with a compact answer: the status and,
 * for an accepted delivery, the batch id and counts (the rejected entries live once, in the
 * batch, and are read back from there on a replay). A repeat with the same body gets that answer;
 * the same id with another body is a sender bug or an attack and gets 409, never a silent replay.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { loadLua } from '../redis/lua-script.js';

/**
 * An answer as stored and replayed. Small whatever the delivery: at most a batch id, three counts,
 * or an error code and its (bounded) message.
 */
export type StoredAnswer =
  | { status: 202; batchId: string; accepted: number; rejected: number; duplicates: number }
  | { status: number; code: string; message: string };

/** What `claim` found. */
export type DeliveryClaim =
  /** This request owns the delivery: process it, then `complete` or `release`. */
  | { kind: 'claimed'; token: string }
  /** Another request is processing the same id and body right now. */
  | { kind: 'in_progress' }
  /** The delivery was answered before: give this answer again. */
  | { kind: 'answered'; answer: StoredAnswer }
  /** The id was used before (or is being processed) with another body. */
  | { kind: 'conflict'; since: string };

interface StoredProcessing {
  p: string;
  h: string;
  t: string;
}

interface StoredDone {
  h: string;
  a: StoredAnswer;
  t: string;
}

function readStored(raw: string): StoredProcessing | StoredDone | null {
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value !== 'object' || value === null || !('h' in value) || typeof value.h !== 'string') return null;
    if ('p' in value && typeof value.p === 'string') return value as StoredProcessing;
    if ('a' in value && typeof value.a === 'object' && value.a !== null) return value as StoredDone;
    return null;
  } catch {
    return null;
  }
}

/** The hash a delivery's body is known by: SHA-256 of the exact text received (what was signed). */
export function bodyHash(rawBody: string): string {
  return createHash('sha256').update(rawBody, 'utf8').digest('base64url');
}

const CLAIM = loadLua(import.meta.url, 'lua/claim-delivery.lua');
const COMPLETE = loadLua(import.meta.url, 'lua/complete-delivery.lua');
const RELEASE = loadLua(import.meta.url, 'lua/release-delivery.lua');

type LedgerClient = Redis & {
  revokerClaimDelivery(key: string, marker: string, ttlSeconds: string): Promise<string | null>;
  revokerCompleteDelivery(key: string, marker: string, stored: string, ttlSeconds: string): Promise<number>;
  revokerReleaseDelivery(key: string, marker: string): Promise<number>;
};

/** The ledger of webhook deliveries in Redis. */
export class WebhookDeliveries {
  private readonly redis: LedgerClient;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly ttl: { answerSeconds: number; processingSeconds: number },
  ) {
    this.redis = redis as LedgerClient;
    if (typeof this.redis.revokerClaimDelivery !== 'function') {
      redis.defineCommand('revokerClaimDelivery', { numberOfKeys: 1, lua: CLAIM });
      redis.defineCommand('revokerCompleteDelivery', { numberOfKeys: 1, lua: COMPLETE });
      redis.defineCommand('revokerReleaseDelivery', { numberOfKeys: 1, lua: RELEASE });
    }
  }

  /** Claims (sender, id) for a body with this hash, or tells what happened to it before. */
  async claim(sender: string, webhookId: string, hash: string): Promise<DeliveryClaim> {
    const marker = JSON.stringify({ p: randomBytes(12).toString('hex'), h: hash, t: new Date().toISOString() } satisfies StoredProcessing);
    const raw = await this.redis.revokerClaimDelivery(this.keys.webhookDeliveryOf(sender, webhookId), marker, String(this.ttl.processingSeconds));
    if (raw === null) return { kind: 'claimed', token: marker };
    const stored = readStored(raw);
    // Unreadable: treat as busy rather than overwrite something we do not understand.
    if (stored === null) return { kind: 'in_progress' };
    if (stored.h !== hash) return { kind: 'conflict', since: stored.t };
    if ('a' in stored) return { kind: 'answered', answer: stored.a };
    return { kind: 'in_progress' };
  }

  /** Records the answer of a claimed delivery, for repeats to get back. */
  async complete(sender: string, webhookId: string, token: string, hash: string, answer: StoredAnswer): Promise<void> {
    const stored = JSON.stringify({ h: hash, a: answer, t: new Date().toISOString() } satisfies StoredDone);
    await this.redis.revokerCompleteDelivery(this.keys.webhookDeliveryOf(sender, webhookId), token, stored, String(this.ttl.answerSeconds));
  }

  /** Gives up a claim without an answer worth replaying (a retry should be processed afresh). */
  async release(sender: string, webhookId: string, token: string): Promise<void> {
    await this.redis.revokerReleaseDelivery(this.keys.webhookDeliveryOf(sender, webhookId), token);
  }
}
