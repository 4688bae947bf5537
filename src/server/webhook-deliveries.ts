/**
 * Idempotency of webhook deliveries by `webhook-id`: the first delivery takes a "processing"
 * marker with SET NX, so a concurrent duplicate cannot enqueue too, and replaces it with its
 * answer, which repeats then get back for the retention time.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { Keys } from '../queue/keys.js';

/** An answer given to a delivery, as stored and replayed. */
export interface DeliveryAnswer {
  status: number;
  body: unknown;
}

/** What `claim` found. */
export type DeliveryClaim =
  /** This request owns the delivery: process it, then `complete` or `release`. */
  | { kind: 'claimed'; token: string }
  /** Another request is processing the same id right now. */
  | { kind: 'in_progress' }
  /** The delivery was answered before: give this answer again. */
  | { kind: 'answered'; answer: DeliveryAnswer };

interface StoredProcessing {
  processing: string;
  since: string;
}

interface StoredAnswer {
  answer: DeliveryAnswer;
  at: string;
}

function readStored(raw: string): StoredProcessing | StoredAnswer | null {
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value !== 'object' || value === null) return null;
    if ('processing' in value && typeof value.processing === 'string') return value as StoredProcessing;
    if ('answer' in value && typeof value.answer === 'object' && value.answer !== null) return value as StoredAnswer;
    return null;
  } catch {
    return null;
  }
}

// Deletes the key only if it still holds this request's marker (it may have expired and been taken).
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// Stores the answer over this request's own marker, or where the marker expired meanwhile (a very
// slow delivery), but never over a marker another request took since.
const COMPLETE_SCRIPT = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or v == false then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end
return 0`;

/** The ledger of webhook deliveries in Redis. */
export class WebhookDeliveries {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly ttl: { answerSeconds: number; processingSeconds: number },
  ) {}

  /** Claims a delivery id, or tells what happened to it before. */
  async claim(webhookId: string): Promise<DeliveryClaim> {
    const key = this.keys.webhookDelivery(webhookId);
    const marker = JSON.stringify({ processing: randomBytes(12).toString('hex'), since: new Date().toISOString() } satisfies StoredProcessing);
    // Two rounds: the key can expire between a failed SET NX and the GET that follows it.
    for (let round = 0; round < 2; round += 1) {
      const set = await this.redis.set(key, marker, 'EX', this.ttl.processingSeconds, 'NX');
      if (set === 'OK') return { kind: 'claimed', token: marker };
      const raw = await this.redis.get(key);
      if (raw === null) continue;
      const stored = readStored(raw);
      if (stored !== null && 'answer' in stored) return { kind: 'answered', answer: stored.answer };
      return { kind: 'in_progress' };
    }
    return { kind: 'in_progress' };
  }

  /** Records the answer of a claimed delivery, for repeats to get back. */
  async complete(webhookId: string, token: string, answer: DeliveryAnswer): Promise<void> {
    const stored = JSON.stringify({ answer, at: new Date().toISOString() } satisfies StoredAnswer);
    await this.redis.eval(COMPLETE_SCRIPT, 1, this.keys.webhookDelivery(webhookId), token, stored, String(this.ttl.answerSeconds));
  }

  /** Gives up a claim without an answer worth replaying (a retry should be processed afresh). */
  async release(webhookId: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, this.keys.webhookDelivery(webhookId), token);
  }
}
