/**
 * The admin API (bearer token): batches, their reports, pause/resume/cancel, dead letters.
 * GET routes need a `read` token, POST routes an `operate` one; every change is audited.
 *
 * GET  /v1/batches?limit=                      {batches: Batch[]}, most recent first
 * GET  /v1/batches/:id                         {batch: Batch}
 * GET  /v1/batches/:id/report?format=csv|ndjson   the report, streamed
 * POST /v1/batches/:id/pause|resume|cancel     {batch, message, woken}; body optional {reason}
 * POST /v1/batches/:id/priority                {batch, message, moved}; body {priority}
 * GET  /v1/dead-letters?batch=&limit=          {deadLetters: DeadLetterEntry[]}
 * POST /v1/dead-letters/redrive                {redriven, skipped}; body optional {batchId}
 */
import { parsePriority } from '../queue/priority.js';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditAction, AuditTrail } from '../audit/audit-trail.js';
import type { ControlResult } from '../batches/batch-control.js';
import { controlCharacterProblem } from '../producer/free-text.js';
import { reportStores } from '../report/report-stores.js';
import { reportLines, type ReportFormat } from '../results/report-writer.js';
import type { Context } from '../runtime/context.js';
import { adminIdentityOf, type AdminAuth } from './admin-auth.js';
import { sendError } from './http-error.js';
import { parseJsonText } from './json-body.js';
import type { ServerOptions } from './server-options.js';

/** Most batches or dead letters one listing returns. */
export const MAX_LIST_LIMIT = 1_000;
/** Longest `reason` an operator may give. */
export const MAX_OPERATOR_REASON_CHARS = 1_000;

// Batch ids are `b-<stamp>-<hex>`; anything else is refused before it becomes a Redis key name.
const BATCH_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** What the admin routes need. */
export interface AdminRouteDeps {
  context: Context;
  auth: AdminAuth;
  audit: AuditTrail;
  options: ServerOptions;
}

type Query = Record<string, string | string[] | undefined>;

class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function queryValue(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Query)[name];
  if (Array.isArray(value)) throw new BadRequest('invalid_query', `${name} must be given once`);
  return value === '' ? undefined : value;
}

function limitParam(request: FastifyRequest, fallback: number): number {
  const raw = queryValue(request, 'limit');
  if (raw === undefined) return fallback;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIST_LIMIT) {
    throw new BadRequest('invalid_query', `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  return Number(raw);
}

function batchIdParam(request: FastifyRequest): string {
  const id = (request.params as Record<string, string | undefined>).id ?? '';
  if (!BATCH_ID_PATTERN.test(id)) throw new BadRequest('invalid_batch_id', 'the batch id is malformed');
  return id;
}

/** The body as an object of optional strings; absent body is `{}`. */
function optionalStringField(body: unknown, name: string, maxChars: number): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('invalid_body', 'the body must be a JSON object');
  const value: unknown = Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new BadRequest('invalid_body', `${name} must be a string`);
  const trimmed = value.trim();
  if (trimmed.length > maxChars) throw new BadRequest('invalid_body', `${name} is longer than ${maxChars} characters`);
  // Shown by `revoker status` on operators' terminals: no escape sequences.
  const problem = controlCharacterProblem(name, trimmed);
  if (problem !== null) throw new BadRequest('invalid_body', problem);
  return trimmed === '' ? undefined : trimmed;
}

/** The admin API as a Fastify plugin; every route in it requires the admin token. */
export function adminRoutes(deps: AdminRouteDeps) {
  const { context, auth, audit, options } = deps;

  /** Records who did what from where, in the trail and the log. */
  async function record(request: FastifyRequest, action: AuditAction, batchId: string | null, args: Record<string, string | number | boolean | null>, ok: boolean): Promise<void> {
    const identity = adminIdentityOf(request);
    await audit.record({ action, batchId, actor: `token:${identity?.name ?? 'unknown'}`, from: request.ip, args, ok });
  }

  async function control(request: FastifyRequest, reply: FastifyReply, action: 'pause' | 'resume' | 'cancel'): Promise<FastifyReply> {
    const batchId = batchIdParam(request);
    const reason = optionalStringField(request.body, 'reason', MAX_OPERATOR_REASON_CHARS);
    if ((await context.batches.get(batchId)) === null) return sendError(reply, 404, 'batch_not_found', `batch ${batchId} not found`);
    let result: ControlResult;
    if (action === 'pause') result = await context.control.pause(batchId, reason);
    else if (action === 'cancel') result = await context.control.cancel(batchId, reason);
    else result = await context.control.resume(batchId);
    const batch = await context.batches.get(batchId);
    if (batch === null) return sendError(reply, 404, 'batch_not_found', `batch ${batchId} not found`);
    await record(request, action, batchId, { reason: reason ?? null }, result.ok);
    if (!result.ok) return sendError(reply, 409, 'invalid_state', result.message);
    request.log.info({ batchId, action, reason, by: adminIdentityOf(request)?.name, clientAddress: request.ip }, `batch ${action}d by an operator`);
    return reply.send({ batch, message: result.message, woken: result.woken });
  }

  async function setPriority(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const batchId = batchIdParam(request);
    const priority = parsePriority(optionalStringField(request.body, 'priority', 10));
    if (priority === null) throw new BadRequest('invalid_body', 'priority must be "urgent", "normal" or "bulk"');
    const result = await context.control.setPriority(batchId, priority);
    if (!result.ok) return sendError(reply, 404, 'batch_not_found', result.message);
    await record(request, 'priority', batchId, { priority, moved: result.moved }, true);
    request.log.info({ batchId, priority, by: adminIdentityOf(request)?.name, clientAddress: request.ip }, 'batch priority changed by an operator');
    return reply.send({ batch: await context.batches.get(batchId), message: result.message, moved: result.moved });
  }

  return function register(app: FastifyInstance, _options: unknown, done: (error?: Error) => void): void {
    // Reading needs `read`; anything that changes state needs `operate`.
    const readGuard = auth.guard('read');
    const operateGuard = auth.guard('operate');
    app.addHook('onRequest', (request, reply) => (request.method === 'GET' || request.method === 'HEAD' ? readGuard(request, reply) : operateGuard(request, reply)));

    // Bodies are small and optional: an empty JSON body is "no body" rather than an error.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: options.maxAdminBodyBytes }, (_request, body, done) => {
      const parsed = parseJsonText(body as string);
      if (parsed.ok) done(null, parsed.value);
      else done(new BadRequest('malformed_json', parsed.message), undefined);
    });

    app.setErrorHandler((error, request, reply) => {
      if (error instanceof BadRequest) return sendError(reply, 400, error.code, error.message);
      throw error;
    });

    app.get('/v1/batches', async (request) => ({ batches: await context.batches.list(limitParam(request, 20)) }));

    app.get('/v1/batches/:id', async (request, reply) => {
      const batchId = batchIdParam(request);
      const batch = await context.batches.get(batchId);
      if (batch === null) return sendError(reply, 404, 'batch_not_found', `batch ${batchId} not found`);
      return { batch };
    });

    app.get('/v1/batches/:id/report', async (request, reply) => {
      const batchId = batchIdParam(request);
      const format = queryValue(request, 'format') ?? 'csv';
      if (format !== 'csv' && format !== 'ndjson') throw new BadRequest('invalid_format', 'format must be csv or ndjson');
      if ((await context.batches.get(batchId)) === null) return sendError(reply, 404, 'batch_not_found', `batch ${batchId} not found`);
      const reportFormat: ReportFormat = format;
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="${batchId}.${format}"`)
        .header('cache-control', 'no-store')
        .send(Readable.from(reportLines(batchId, reportFormat, context.results, context.batches, reportStores(context).order)));
    });

    app.post('/v1/batches/:id/pause', (request, reply) => control(request, reply, 'pause'));
    app.post('/v1/batches/:id/resume', (request, reply) => control(request, reply, 'resume'));
    app.post('/v1/batches/:id/cancel', (request, reply) => control(request, reply, 'cancel'));
    app.post('/v1/batches/:id/priority', (request, reply) => setPriority(request, reply));

    app.get('/v1/dead-letters', async (request) => {
      const batchId = queryValue(request, 'batch');
      if (batchId !== undefined && !BATCH_ID_PATTERN.test(batchId)) throw new BadRequest('invalid_batch_id', 'the batch id is malformed');
      return { deadLetters: await context.deadLetters.list(batchId, limitParam(request, 100)) };
    });

    app.post('/v1/dead-letters/redrive', async (request) => {
      const batchId = optionalStringField(request.body, 'batchId', 128);
      if (batchId !== undefined && !BATCH_ID_PATTERN.test(batchId)) throw new BadRequest('invalid_batch_id', 'the batch id is malformed');
      const summary = await context.deadLetters.redrive(batchId);
      await record(request, 'redrive', batchId ?? null, { redriven: summary.redriven, skipped: summary.skipped }, true);
      request.log.info({ batchId, ...summary, by: adminIdentityOf(request)?.name, clientAddress: request.ip }, 'dead letters redriven by an operator');
      return summary;
    });
    done();
  };
}
