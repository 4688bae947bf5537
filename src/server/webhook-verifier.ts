/**
 * Standard Webhooks signature checks for `POST /v1/revocations`, against every sender's secrets
 * (several during a rotation: a delivery signed with any of them is accepted). The secret that
 * matched says who sent the delivery: everything after (scope, quota, ledger) is per sender.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { Sender } from './senders.js';

/**
 * Largest clock difference accepted between the sender's `webhook-timestamp` and ours. It is the
 * `standardwebhooks` library's own tolerance (5 minutes, not configurable there); checking it
 * here first gives stale deliveries their own error code.
 */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

/** `webhook-id` values accepted: visible ASCII, short enough for a Redis key and a batch record. */
const WEBHOOK_ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

/** The three headers of a delivery, as received (undefined when absent). */
export interface WebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** Why a delivery was refused: all are answered 401. */
export type WebhookRefusalCode = 'invalid_signature' | 'stale_timestamp';

/** The outcome of `WebhookVerifier.verify`. */
export type WebhookVerification = { ok: true; webhookId: string; sender: Sender } | { ok: false; code: WebhookRefusalCode; message: string };

/** Verifies deliveries against the senders' secrets. */
export class WebhookVerifier {
  private readonly webhooks: { sender: Sender; webhook: Webhook }[];

  /** The senders (WEBHOOK_SENDERS_FILE or WEBHOOK_SECRETS). None configured: nothing verifies. */
  constructor(senders: readonly Sender[]) {
    this.webhooks = senders.flatMap((sender) => sender.secrets.map((secret) => ({ sender, webhook: new Webhook(secret) })));
  }

  /** Whether any secret is configured. */
  get configured(): boolean {
    return this.webhooks.length > 0;
  }

  /** Checks the headers and the signature over the raw body text. */
  verify(rawBody: string, headers: WebhookHeaders, now: Date = new Date()): WebhookVerification {
    const { id, timestamp, signature } = headers;
    if (id === undefined || timestamp === undefined || signature === undefined || id === '' || timestamp === '' || signature === '') {
      return { ok: false, code: 'invalid_signature', message: 'webhook-id, webhook-timestamp and webhook-signature headers are required' };
    }
    if (!WEBHOOK_ID_PATTERN.test(id)) {
      return { ok: false, code: 'invalid_signature', message: 'webhook-id must be 1 to 256 visible ASCII characters' };
    }
    // The library's parseInt would take "12abc" as 12: insist on plain seconds.
    if (!/^\d{1,12}$/.test(timestamp)) {
      return { ok: false, code: 'invalid_signature', message: 'webhook-timestamp must be whole seconds since the Unix epoch' };
    }
    const skewSeconds = Math.floor(now.getTime() / 1000) - Number(timestamp);
    if (Math.abs(skewSeconds) > WEBHOOK_TOLERANCE_SECONDS) {
      return {
        ok: false,
        code: 'stale_timestamp',
        message: `webhook-timestamp is ${Math.abs(skewSeconds)} s ${skewSeconds > 0 ? 'old' : 'in the future'}; at most ${WEBHOOK_TOLERANCE_SECONDS} s is accepted`,
      };
    }
    const signed = { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature };
    for (const { sender, webhook } of this.webhooks) {
      try {
        // jsonParse false: the body is parsed by the server, with its own protections.
        webhook.verify(rawBody, signed, { jsonParse: false });
        return { ok: true, webhookId: id, sender };
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
      }
    }
    return { ok: false, code: 'invalid_signature', message: 'no webhook-signature matches a configured secret' };
  }
}
