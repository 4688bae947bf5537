/**
 * `POST /v1/revocations`: Standard Webhooks deliveries turned into a batch (DESIGN §3 Webhook).
 *
 * Order of checks: secrets configured (503), content type (415), size (413, before reading),
 * a repeated webhook-* header (400), signature and timestamp (401), then the `webhook-id` ledger (a repeat gets the first answer, a
 * concurrent duplicate 409), then JSON (400) and the body's validation (400/413). Only a fully
 * validated body creates a batch, so a refused delivery enqueues nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { InputItem } from '../producer/device-request.js';
import { Enqueuer } from '../producer/enqueuer.js';
import { countWaitingJobs } from '../queue/revocation-queue.js';
import { parseRevocationBody, type ParsedRevocation } from '../producer/webhook-body.js';
import type { Context } from '../runtime/context.js';
import { errorBody, sendError } from './http-error.js';
import { parseJsonText } from './json-body.js';
import type { ServerOptions } from './server-options.js';
import type { DeliveryAnswer, WebhookDeliveries } from './webhook-deliveries.js';
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
  options: ServerOptions;
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

function toItems(parsed: ParsedRevocation): InputItem[] {
  return [
    ...parsed.requests.map((request): InputItem => ({ kind: 'device', request })),
    ...parsed.rejected.map((row): InputItem => ({ kind: 'rejected', row })),
  ];
}

/**
 * The webhook as a Fastify plugin. Register it in its own scope: it replaces the JSON parser
 * with one that keeps the raw text, which the signature is computed over.
 */
export function webhookRoutes(deps: WebhookRouteDeps) {
  const { context, verifier, deliveries, options } = deps;
  // Flow control is done up front (503 while the queue is above the mark) rather than inside the
  // enqueue: a delivery must answer within the sender's timeout, and each adds at most
  // maxDevicesPerRequest jobs, so the mark is overshot by a bounded amount at worst.
  const enqueuer = new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: 0 });

  /** Validates and enqueues a claimed delivery; returns the answer to give (and to replay). */
  async function processDelivery(request: FastifyRequest, webhookId: string, rawBody: string): Promise<DeliveryAnswer | 'queue_full'> {
    if (rawBody.trim() === '') return { status: 400, body: errorBody('malformed_json', 'the body is empty') };
    const json = parseJsonText(rawBody);
    if (!json.ok) return { status: 400, body: errorBody('malformed_json', json.message) };
    const parsed = parseRevocationBody(json.value, { maxDevices: options.maxDevicesPerRequest });
    if (!parsed.ok) return { status: parsed.status, body: errorBody(parsed.code, parsed.message) };
    const value = parsed.value;

    if (value.requests.length > 0 && (await countWaitingJobs(context.queue)) >= context.config.highWaterJobs) return 'queue_full';

    const batchId = await context.batches.create({
      name: value.name ?? `webhook ${webhookId}`,
      source: 'webhook',
      action: value.action,
      createdBy: `webhook:${webhookId}`,
      ...(value.callbackUrl !== undefined ? { callbackUrl: value.callbackUrl } : {}),
      ...(value.priority !== undefined ? { priority: value.priority } : {}),
    });
    const summary = await enqueuer.enqueue(batchId, value.action, toItems(value));
    const body: WebhookAccepted = {
      batchId,
      accepted: summary.accepted,
      rejected: value.rejected.map((row) => (row.deviceSn === undefined ? { index: row.line, reason: row.reason } : { index: row.line, reason: row.reason, deviceSn: row.deviceSn })),
      duplicates: summary.duplicates,
    };
    // The body's reason is the sender's free text, not a secret: it goes to the log so that an
    // operator can tie the batch to its cause (the batch record has no field for it yet).
    request.log.info(
      { webhookId, batchId, action: value.action, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, reason: value.reason },
      'webhook delivery enqueued',
    );
    return { status: 202, body };
  }

  async function handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!verifier.configured) {
      return sendError(reply, 503, 'webhooks_not_configured', 'this server has no WEBHOOK_SECRETS: it accepts no webhook');
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
      request.log.warn({ code: verification.code }, 'webhook delivery refused');
      return sendError(reply, 401, verification.code, verification.message);
    }
    const webhookId = verification.webhookId;

    const claim = await deliveries.claim(webhookId);
    if (claim.kind === 'in_progress') {
      return sendError(reply, 409, 'delivery_in_progress', `delivery ${webhookId} is being processed by another request; retry later for its answer`);
    }
    if (claim.kind === 'answered') {
      request.log.info({ webhookId, status: claim.answer.status }, 'webhook delivery repeated: first answer replayed');
      return reply.code(claim.answer.status).header('idempotent-replayed', 'true').send(claim.answer.body);
    }

    let answer: DeliveryAnswer | 'queue_full';
    try {
      answer = await processDelivery(request, webhookId, rawBody);
    } catch (error) {
      // Nothing worth replaying: let the sender's retry be processed afresh.
      await deliveries.release(webhookId, claim.token).catch(() => undefined);
      throw error;
    }
    if (answer === 'queue_full') {
      await deliveries.release(webhookId, claim.token);
      return sendError(reply.header('retry-after', String(QUEUE_FULL_RETRY_AFTER_SECONDS)), 503, 'queue_full', 'the revocation queue is above its high-water mark; retry later');
    }
    await deliveries.complete(webhookId, claim.token, answer);
    return reply.code(answer.status).send(answer.body);
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
