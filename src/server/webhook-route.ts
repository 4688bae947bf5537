/**
 * `POST /v1/revocations`: Standard Webhooks deliveries turned into a batch (DESIGN §3 Webhook).
 *
 * Order of checks: senders configured (503), content type (415), size (413, before reading), a
 * repeated webhook-* header (400), signature and timestamp (401; the matching secret names the
 * sender), then the (sender, `webhook-id`) ledger: a repeat with the same body gets the first
 * answer, with another body 409 `webhook_id_reused`, a concurrent duplicate 409. Then JSON (400),
 * the body's validation (400/413), the callback URL against the allow-list (400 naming the
 * rule), the sender's scope (403), its quota (429 + Retry-After), and room under the high-water
 * mark, reserved atomically (503 `queue_full` + Retry-After). Only a delivery that passed all of
 * these creates a batch, so a refused delivery enqueues nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { AuditTrail } from '../audit/audit-trail.js';
import { checkCallbackUrl, resolvePinned, systemLookup, type CallbackPolicy, type HostLookup } from '../events/callback-policy.js';
import type { InputItem } from '../producer/device-request.js';
import { Intake, intakeDeps } from '../producer/intake.js';
import { parseRevocationBody, type ParsedRevocation } from '../producer/webhook-body.js';
import type { Context } from '../runtime/context.js';
import { errorBody, sendError } from './http-error.js';
import { parseJsonText } from './json-body.js';
import type { SenderQuota } from './sender-quota.js';
import { scopeProblem, type Sender } from './senders.js';
import type { ServerOptions } from './server-options.js';
import { bodyHash, type StoredAnswer, type WebhookDeliveries } from './webhook-deliveries.js';
import type { WebhookRoom } from './webhook-room.js';
import type { WebhookVerifier } from './webhook-verifier.js';

/** The path of the webhook. */
export const WEBHOOK_PATH = '/v1/revocations';

/** How long a sender should wait before retrying a delivery refused because the queue is full. */
const QUEUE_FULL_RETRY_AFTER_SECONDS = 30;

/** The 202 answer of an accepted delivery. */
export interface WebhookAccepted {
  batchId: string;
  accepted: number;
  rejected: { index: number; reason: string; deviceSn?: string }[];
  duplicates: number;
}

/** What the webhook route needs. */
export interface WebhookRouteDeps {
  context: Context;
  verifier: WebhookVerifier;
  deliveries: WebhookDeliveries;
  room: WebhookRoom;
  quota: SenderQuota;
  /** EVENTS_ALLOWED_ORIGINS (+ EVENTS_URL's origin) and EVENTS_ALLOW_PRIVATE. */
  callbackPolicy: CallbackPolicy;
  /** Where the per-sender counters go. */
  registry: Registry;
  /** Every accepted delivery is recorded as an `enqueue` by `sender:<name>`. */
  audit: AuditTrail;
  options: ServerOptions;
  /** Name resolution for the callback host check; the system resolver by default. */
  lookup?: HostLookup;
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The signed headers of a delivery, lower-case. */
const SIGNED_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;

/**
 * The first signed header the request carries more than once, from the raw header list. Node
 * joins repeats with ", " before we see them: two `webhook-id` would become one id "a, b" and two
 * `webhook-signature` one list. The specification sends each once, so a repeat is refused as such
 * rather than reinterpreted.
 */
function repeatedSignedHeader(rawHeaders: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]?.toLowerCase() ?? '';
    if (!(SIGNED_HEADERS as readonly string[]).includes(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** The body's entries in body order (devices and refused entries by their index in `deviceSns`). */
function toItems(parsed: ParsedRevocation): InputItem[] {
  const items: InputItem[] = [];
  let device = 0;
  let refused = 0;
  while (device < parsed.requests.length || refused < parsed.rejected.length) {
    const request = parsed.requests[device];
    const row = parsed.rejected[refused];
    if (request !== undefined && (row === undefined || request.line <= row.line)) {
      items.push({ kind: 'device', request });
      device += 1;
    } else if (row !== undefined) {
      items.push({ kind: 'rejected', row });
      refused += 1;
    }
  }
  return items;
}

/** What processing a claimed delivery decided. */
type Outcome =
  /** An answer to give and to replay (202, or a refusal the same body would get again). */
  | { kind: 'final'; answer: StoredAnswer; body: unknown }
  /** A refusal that may pass later (quota, queue full): answered, not remembered. */
  | { kind: 'transient'; status: 429 | 503; code: string; message: string; retryAfterSeconds: number | null };

function refusal(status: number, code: string, message: string): Outcome {
  return { kind: 'final', answer: { status, code, message }, body: errorBody(code, message) };
}

/**
 * The webhook as a Fastify plugin. Register it in its own scope: it replaces the JSON parser
 * with one that keeps the raw text, which the signature is computed over.
 */
export function webhookRoutes(deps: WebhookRouteDeps) {
  const { context, verifier, deliveries, room, quota, callbackPolicy, options } = deps;
  const lookup = deps.lookup ?? systemLookup;
  // Flow control is the room reservation below, done before anything is written: the enqueue
  // itself must not wait (a delivery answers within the sender's timeout).
  const intake = new Intake(intakeDeps(context), { highWaterJobs: 0 });
  const deliveriesTotal = new Counter({
    name: 'revoker_webhook_deliveries_total',
    help: 'Signed webhook deliveries by sender and answer status (replays included).',
    labelNames: ['sender', 'status'] as const,
    registers: [deps.registry],
  });
  const devicesTotal = new Counter({
    name: 'revoker_webhook_devices_total',
    help: 'Devices accepted from webhook deliveries, by sender.',
    labelNames: ['sender'] as const,
    registers: [deps.registry],
  });
  // More devices than the mark could never find room: say so (413) rather than 503 forever.
  const maxDevices = Math.min(options.maxDevicesPerRequest, context.config.highWaterJobs);

  /** 400 naming the rule when the callback URL may not be used by this sender; null when it may. */
  async function callbackRefusal(sender: Sender, callbackUrl: string): Promise<Outcome | null> {
    const check = checkCallbackUrl(callbackUrl, callbackPolicy, sender.scope.callbackOrigins);
    if (!check.ok) return refusal(400, check.rule, check.message);
    if (callbackPolicy.allowPrivate) return null;
    // Early feedback for a name that resolves to an inside address; the worker checks again
    // (and pins the address) before every POST, which is what actually protects it.
    try {
      const target = await resolvePinned(check.url, false, lookup);
      if (!target.ok) return refusal(400, 'callback_address_forbidden', `callbackUrl ${target.message}`);
    } catch {
      // Not resolvable now (DNS down, name not yet published): the worker decides when it sends.
    }
    return null;
  }

  /** Validates, checks scope, quota and room, and enqueues a claimed delivery. */
  async function processDelivery(request: FastifyRequest, sender: Sender, webhookId: string, rawBody: string): Promise<Outcome> {
    if (rawBody.trim() === '') return refusal(400, 'malformed_json', 'the body is empty');
    const json = parseJsonText(rawBody);
    if (!json.ok) return refusal(400, 'malformed_json', json.message);
    const parsed = parseRevocationBody(json.value, { maxDevices: options.maxDevicesPerRequest });
    if (!parsed.ok) return refusal(parsed.status, parsed.code, parsed.message);
    const value = parsed.value;

    if (value.callbackUrl !== undefined) {
      const refused = await callbackRefusal(sender, value.callbackUrl);
      if (refused !== null) return refused;
    }
    const outside = scopeProblem(sender, value);
    if (outside !== null) return refusal(403, 'outside_scope', outside);
    if (value.requests.length > maxDevices) {
      return refusal(413, 'too_many_devices', `the delivery has ${value.requests.length} devices; the queue's high-water mark (${context.config.highWaterJobs}) allows at most ${maxDevices} per delivery`);
    }
    // Every entry counts against the quota, refused ones too: they are stored with the batch.
    const entries = value.requests.length + value.rejected.length;
    const devicesPerHour = sender.devicesPerHour;
    if (devicesPerHour !== null) {
      if (entries > devicesPerHour) {
        return refusal(413, 'too_many_devices', `the delivery has ${entries} entries, more than sender '${sender.name}' may send in an hour (${devicesPerHour})`);
      }
      const taken = await quota.take(sender.name, devicesPerHour, entries);
      if (!taken.ok) {
        return { kind: 'transient', status: 429, code: 'quota_exceeded', message: `sender '${sender.name}' is over its quota of ${devicesPerHour} devices per hour; retry after ${taken.retryAfterSeconds} s`, retryAfterSeconds: taken.retryAfterSeconds };
      }
    }
    const refund = async (): Promise<void> => {
      if (devicesPerHour !== null) await quota.refund(sender.name, devicesPerHour, entries);
    };

    let release = (): Promise<void> => Promise.resolve();
    if (value.requests.length > 0) {
      const reservation = await room.reserve(value.requests.length);
      if (!reservation.ok) {
        await refund();
        return { kind: 'transient', status: 503, code: 'queue_full', message: `the revocation queue is at its high-water mark (${reservation.used} of ${context.config.highWaterJobs} jobs waiting or reserved); retry later`, retryAfterSeconds: QUEUE_FULL_RETRY_AFTER_SECONDS };
      }
      release = reservation.release;
    }
    try {
      // The intake records the devices in body order: the batch's report lists them so.
      const summary = await intake.run(
        {
          name: value.name ?? `webhook ${webhookId}`,
          source: 'webhook',
          action: value.action,
          // Who sent it, as the matching secret says: never a value the sender chose.
          createdBy: `webhook:${sender.name}`,
          ...(value.callbackUrl !== undefined ? { callbackUrl: value.callbackUrl } : {}),
          ...(value.priority !== undefined ? { priority: value.priority } : {}),
        },
        toItems(value),
      );
      const batchId = summary.batchId;
      const body: WebhookAccepted = {
        batchId,
        accepted: summary.accepted,
        rejected: value.rejected.map((row) => (row.deviceSn === undefined ? { index: row.line, reason: row.reason } : { index: row.line, reason: row.reason, deviceSn: row.deviceSn })),
        duplicates: summary.duplicates,
      };
      devicesTotal.inc({ sender: sender.name }, summary.accepted);
      await deps.audit.record({
        action: 'enqueue',
        batchId,
        actor: `sender:${sender.name}`,
        from: request.ip,
        args: { webhookId, action: value.action, priority: value.priority ?? 'normal', accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, reason: value.reason ?? null, callbackOrigin: value.callbackUrl === undefined ? null : new URL(value.callbackUrl).origin },
        ok: true,
      });
      // The body's reason is the sender's free text, not a secret: it goes to the log so that an
      // operator can tie the batch to its cause (the batch record has no field for it yet).
      request.log.info(
        { sender: sender.name, webhookId, batchId, action: value.action, priority: value.priority ?? 'normal', accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, reason: value.reason, callbackOrigin: value.callbackUrl === undefined ? undefined : new URL(value.callbackUrl).origin, clientAddress: request.ip },
        'webhook delivery enqueued',
      );
      return { kind: 'final', answer: { status: 202, batchId, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates }, body };
    } finally {
      await release();
    }
  }

  /** The answer of an earlier delivery, as first given: the rejected entries are read back from the batch. */
  async function replayBody(answer: StoredAnswer): Promise<unknown> {
    if (!('batchId' in answer)) return errorBody(answer.code, answer.message);
    const rejected: WebhookAccepted['rejected'] = [];
    if (answer.rejected > 0) {
      for await (const row of context.batches.rejectedRows(answer.batchId)) {
        rejected.push(row.deviceSn === undefined ? { index: row.line, reason: row.reason } : { index: row.line, reason: row.reason, deviceSn: row.deviceSn });
      }
    }
    return { batchId: answer.batchId, accepted: answer.accepted, rejected, duplicates: answer.duplicates } satisfies WebhookAccepted;
  }

  async function handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!verifier.configured) {
      return sendError(reply, 503, 'webhooks_not_configured', 'this server has no webhook senders (WEBHOOK_SENDERS_FILE or WEBHOOK_SECRETS): it accepts no webhook');
    }
    // Requests without a body or content type never reach a parser.
    if (typeof request.body !== 'string') return sendError(reply, 415, 'unsupported_media_type', 'the body must be application/json');
    const rawBody = request.body;
    const repeated = repeatedSignedHeader(request.raw.rawHeaders);
    if (repeated !== undefined) return sendError(reply, 400, 'duplicate_header', `the ${repeated} header must be given once`);
    const verification = verifier.verify(rawBody, {
      id: singleHeader(request.headers['webhook-id']),
      timestamp: singleHeader(request.headers['webhook-timestamp']),
      signature: singleHeader(request.headers['webhook-signature']),
    });
    if (!verification.ok) {
      request.log.warn({ code: verification.code, clientAddress: request.ip }, 'webhook delivery refused');
      return sendError(reply, 401, verification.code, verification.message);
    }
    const { webhookId, sender } = verification;
    const answered = (status: number): void => {
      deliveriesTotal.inc({ sender: sender.name, status: String(status) });
    };
    const hash = bodyHash(rawBody);

    const claim = await deliveries.claim(sender.name, webhookId, hash);
    if (claim.kind === 'conflict') {
      request.log.warn({ sender: sender.name, webhookId, clientAddress: request.ip }, 'webhook-id reused with a different body: refused');
      answered(409);
      return sendError(reply, 409, 'webhook_id_reused', `webhook-id ${webhookId} was first used at ${claim.since} with a different body; a new request needs a new webhook-id (nothing was enqueued)`);
    }
    if (claim.kind === 'in_progress') {
      answered(409);
      return sendError(reply, 409, 'delivery_in_progress', `delivery ${webhookId} is being processed by another request; retry later for its answer`);
    }
    if (claim.kind === 'answered') {
      request.log.info({ sender: sender.name, webhookId, status: claim.answer.status }, 'webhook delivery repeated: first answer replayed');
      answered(claim.answer.status);
      return reply.code(claim.answer.status).header('idempotent-replayed', 'true').type('application/json; charset=utf-8').send(await replayBody(claim.answer));
    }

    let outcome: Outcome;
    try {
      outcome = await processDelivery(request, sender, webhookId, rawBody);
    } catch (error) {
      // Nothing worth replaying: let the sender's retry be processed afresh.
      await deliveries.release(sender.name, webhookId, claim.token).catch(() => undefined);
      throw error;
    }
    if (outcome.kind === 'transient') {
      await deliveries.release(sender.name, webhookId, claim.token);
      request.log.warn({ sender: sender.name, webhookId, code: outcome.code, clientAddress: request.ip }, 'webhook delivery refused for now');
      answered(outcome.status);
      if (outcome.retryAfterSeconds !== null) reply.header('retry-after', String(outcome.retryAfterSeconds));
      return sendError(reply, outcome.status, outcome.code, outcome.message);
    }
    await deliveries.complete(sender.name, webhookId, claim.token, hash, outcome.answer);
    if (outcome.answer.status !== 202) {
      request.log.warn({ sender: sender.name, webhookId, status: outcome.answer.status, code: 'code' in outcome.answer ? outcome.answer.code : undefined, clientAddress: request.ip }, 'webhook delivery refused');
    }
    answered(outcome.answer.status);
    return reply.code(outcome.answer.status).type('application/json; charset=utf-8').send(outcome.body);
  }

  return function register(app: FastifyInstance, _options: unknown, done: (error?: Error) => void): void {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: options.maxBodyBytes }, (_request, body, done) => {
      done(null, body);
    });
    app.post(WEBHOOK_PATH, { bodyLimit: options.maxBodyBytes }, handle);
    done();
  };
}
