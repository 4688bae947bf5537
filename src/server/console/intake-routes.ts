/**
 * Starting a revocation from the console (`operate`): the page with both forms, the CSV upload
 * (streamed to a private file, hashed, size-limited), the CA listing, the plan of a draft and its
 * apply or discard. The producer is reached only through revocation-intake.ts.
 *
 * GET  /console/new                      the forms
 * POST /console/new/csv (multipart)      upload → draft → 303 to its plan
 * POST /console/new/ca                   list the CA in the background → draft → 303 to its plan
 * GET  /console/drafts/:id               the plan (live while listing), Apply for its owner
 * GET  /console/stream/drafts/:id        its event stream
 * POST /console/drafts/:id/apply|discard
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { validateCaSn, validateInstanceId } from '../../producer/device-validation.js';
import { parsePriority } from '../../queue/priority.js';
import { parseReasonCode } from '../../report/batch-audit.js';
import type { Context } from '../../runtime/context.js';
import { sendError } from '../http-error.js';
import { auditActor, type ConsoleIdentity } from './console-auth.js';
import { TooManyDrafts, type Draft, type DraftOptions, type Drafts } from './drafts.js';
import { renderDraftPage, renderNewRevocation } from './intake-view.js';
import { renderPage } from './layout.js';
import type { LiveHub } from './live-hub.js';
import { IntakeInputError, planCaListing, planCsv, startBatch, type StartedBatch } from './revocation-intake.js';
import { formOf, identityOf, param, removeDir, sendMessage, sendPage } from './route-helpers.js';
import { reasonFromForm } from './steering.js';

const DRAFT_ID = /^d-[0-9a-f]{24}$/;

type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/** What the intake routes need. */
export interface IntakeRouteDeps {
  context: Context;
  log: Logger;
  drafts: Drafts;
  hub: LiveHub;
  /** Background work of this server (plans, enqueues): the server waits for it when stopping. */
  running: Set<Promise<unknown>>;
  /** Aborted when the server stops: enqueues stop reading. */
  signal: AbortSignal;
  maxUploadBytes: number;
  /** `operate` for pages (redirects to sign-in) and for posts and streams (401). */
  operate: Guard;
  operateJson: Guard;
}

/** Registers the routes of starting a revocation. */
export function registerIntakeRoutes(app: FastifyInstance, deps: IntakeRouteDeps): void {
  const { context, log, drafts, hub, running, signal, maxUploadBytes, operate, operateJson } = deps;
  const page = sendPage;
  const notFound = (reply: FastifyReply, identity: ConsoleIdentity, what: string): FastifyReply => sendMessage(reply, 404, identity, 'Not found', `${what} not found: a wrong id, or it expired.`);

  function startDraftWork(draft: Draft, work: () => Promise<void>): Promise<void> {
    const task = work().catch((error: unknown) => {
      const message = error instanceof IntakeInputError ? `The file cannot be used: ${error.message}` : `The plan could not be made: ${error instanceof Error ? error.message : String(error)}`;
      draft.state = { status: 'failed', message };
      if (!(error instanceof IntakeInputError)) log.warn({ err: error, draftId: draft.id }, 'console plan failed');
    });
    running.add(task);
    void task.finally(() => running.delete(task));
    return task;
  }

  function draftOptions(fields: Map<string, string>, fallbackName: string): DraftOptions | string {
    const action = fields.get('action') ?? 'delete';
    if (action !== 'delete' && action !== 'inactivate') return 'the action must be delete or inactivate';
    const priority = parsePriority(fields.get('priority') ?? 'normal');
    if (priority === null) return 'the priority must be urgent, normal or bulk';
    let reason: string | null;
    let name: string | null;
    try {
      reason = reasonFromForm(fields.get('reason') ?? null);
      name = reasonFromForm(fields.get('name') ?? null);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
    const codeRaw = fields.get('reasonCode') ?? '';
    const reasonCode = codeRaw === '' ? null : parseReasonCode(codeRaw);
    if (codeRaw !== '' && reasonCode === null) return 'unknown reason code';
    return { name: name ?? fallbackName, action, priority, reason, reasonCode };
  }


    // Starting a revocation.
    app.get('/console/new', { onRequest: operate }, async (request, reply) => page(reply, 200, renderPage({ title: 'Start a revocation', identity: identityOf(request), current: 'new' }, renderNewRevocation(maxUploadBytes, null))));

    const refuseNew = (reply: FastifyReply, identity: ConsoleIdentity, status: number, problem: string): FastifyReply => page(reply, status, renderPage({ title: 'Start a revocation', identity, current: 'new' }, renderNewRevocation(maxUploadBytes, problem)));

    app.post('/console/new/csv', { onRequest: operateJson }, async (request, reply) => {
      const identity = identityOf(request);
      if (!request.isMultipart()) return refuseNew(reply, identity, 415, 'Send the form with its file (multipart/form-data).');
      let dir: string;
      try {
        dir = await drafts.reserveDir();
      } catch (error) {
        if (error instanceof TooManyDrafts) return refuseNew(reply, identity, 429, error.message);
        throw error;
      }
      const fields = new Map<string, string>();
      let upload: { fileName: string; sha256: string; bytes: number } | null = null;
      const file = join(dir, 'input.csv');
      try {
        for await (const part of request.parts()) {
          if (part.type === 'field') {
            if (typeof part.value === 'string') fields.set(part.fieldname, part.value);
            continue;
          }
          if (part.fieldname !== 'file' || upload !== null) {
            part.file.resume();
            continue;
          }
          const hash = createHash('sha256');
          let bytes = 0;
          const tap = new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              hash.update(chunk);
              bytes += chunk.length;
              callback(null, chunk);
            },
          });
          await pipeline(part.file, tap, createWriteStream(file));
          // Names are shown and stored: keep a plain base name.
          const fileName = (part.filename.split(/[\\/]/).pop() ?? 'upload.csv').replace(/[^\w .,()+-]/g, '_').slice(0, 120) || 'upload.csv';
          upload = { fileName, sha256: hash.digest('hex'), bytes };
        }
      } catch (error) {
        await removeDir(dir);
        const code = (error as { code?: string }).code;
        if (code === 'FST_REQ_FILE_TOO_LARGE') return refuseNew(reply, identity, 413, `The file is larger than ${Math.floor(maxUploadBytes / (1024 * 1024))} MiB: split it, or use revoker enqueue on the command line.`);
        if (code === 'FST_PARTS_LIMIT' || code === 'FST_FILES_LIMIT' || code === 'FST_FIELDS_LIMIT') return refuseNew(reply, identity, 400, 'The form has more fields or files than it should: send one CSV file.');
        throw error;
      }
      if (upload === null || upload.bytes === 0) {
        await removeDir(dir);
        return refuseNew(reply, identity, 400, upload === null ? 'Choose a CSV file to upload.' : 'The file is empty.');
      }
      const instance = fields.get('instance')?.trim() ?? '';
      const caSn = fields.get('caSn')?.trim() ?? '';
      const defaultsProblem = (instance !== '' ? validateInstanceId(instance) : null) ?? (caSn !== '' ? validateCaSn(caSn) : null);
      const optionsOrProblem = draftOptions(fields, upload.fileName);
      if (defaultsProblem !== null || typeof optionsOrProblem === 'string') {
        await removeDir(dir);
        return refuseNew(reply, identity, 400, `Nothing was planned: ${defaultsProblem ?? (optionsOrProblem as string)}.`);
      }
      const defaults = { ...(instance !== '' ? { defaultInstanceId: instance } : {}), ...(caSn !== '' ? { defaultCaSn: caSn } : {}) };
      const draft = drafts.add(identity.name, dir, { kind: 'csv', file, ...upload, defaults }, optionsOrProblem);
      const input = { fileName: upload.fileName, sha256: upload.sha256, action: optionsOrProblem.action, defaults };
      const planned = startDraftWork(draft, async () => {
        draft.state = { status: 'ready', plan: await planCsv(context, file, input) };
      });
      // A small file is planned before the page is shown; a large one shows its progress live.
      await Promise.race([planned, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
      return reply.redirect(`/console/drafts/${draft.id}`, 303);
    });

    app.post('/console/new/ca', { onRequest: operateJson }, async (request, reply) => {
      const identity = identityOf(request);
      const form = formOf(request);
      const fields = new Map([...form.entries()]);
      const instance = form.get('instance')?.trim() ?? '';
      const caSn = form.get('caSn')?.trim() ?? '';
      const problem = validateInstanceId(instance) ?? validateCaSn(caSn);
      const optionsOrProblem = draftOptions(fields, `everything under CA ${caSn}`);
      if (problem !== null || typeof optionsOrProblem === 'string') return refuseNew(reply, identity, 400, `Nothing was planned: ${problem ?? (optionsOrProblem as string)}.`);
      let dir: string;
      try {
        dir = await drafts.reserveDir();
      } catch (error) {
        if (error instanceof TooManyDrafts) return refuseNew(reply, identity, 429, error.message);
        throw error;
      }
      const file = join(dir, 'listing.ndjson');
      const draft = drafts.add(identity.name, dir, { kind: 'ca', file, mqttInstanceId: instance, caSn }, optionsOrProblem);
      void startDraftWork(draft, async () => {
        const plan = await planCaListing(context, log, { mqttInstanceId: instance, caSn, action: optionsOrProblem.action }, file, (progress) => {
          draft.state = { status: 'planning', progress };
        });
        draft.state = { status: 'ready', plan };
      });
      return reply.redirect(`/console/drafts/${draft.id}`, 303);
    });

    const loadDraft = (request: FastifyRequest): Draft | undefined => {
      const id = param(request, 'id');
      return DRAFT_ID.test(id) ? drafts.get(id) : undefined;
    };
    app.get('/console/drafts/:id', { onRequest: operate }, async (request, reply) => {
      const identity = identityOf(request);
      const draft = loadDraft(request);
      if (draft === undefined) return notFound(reply, identity, 'That plan');
      return page(reply, 200, renderPage({ title: 'Plan', identity, current: 'new', stream: `/console/stream/drafts/${draft.id}` }, renderDraftPage(draft, draft.owner === identity.name)));
    });
    app.get('/console/stream/drafts/:id', { onRequest: operateJson }, async (request, reply) => {
      const draft = loadDraft(request);
      if (draft === undefined) return sendError(reply, 404, 'not_found', 'no such plan');
      // The topic carries the viewer's name in place of a role: only the owner sees Apply.
      return hub.open(request, reply, `draft|${identityOf(request).name}|${draft.id}`);
    });
    app.post('/console/drafts/:id/discard', { onRequest: operate }, async (request, reply) => {
      const identity = identityOf(request);
      const draft = loadDraft(request);
      if (draft !== undefined && draft.owner === identity.name && draft.state.status !== 'planning') await drafts.discard(draft.id);
      return reply.redirect('/console/new', 303);
    });
    app.post('/console/drafts/:id/apply', { onRequest: operate }, async (request, reply) => {
      const identity = identityOf(request);
      const draft = loadDraft(request);
      if (draft === undefined) return notFound(reply, identity, 'That plan');
      if (draft.owner !== identity.name) return sendMessage(reply, 403, identity, 'Not yours', `Only ${draft.owner}, who made this plan, can apply it.`);
      if (draft.state.status === 'applied') return reply.redirect(`/console/batches/${draft.state.batchId}`, 303);
      if (draft.state.status !== 'ready' || draft.state.plan.plan.devices === 0) return reply.redirect(`/console/drafts/${draft.id}`, 303);
      const input = draft.input;
      const spec = {
        input: input.kind === 'csv' ? { kind: 'csv' as const, file: input.file, fileName: input.fileName, sha256: input.sha256, defaults: input.defaults } : { kind: 'ca' as const, file: input.file, mqttInstanceId: input.mqttInstanceId, caSn: input.caSn },
        ...draft.options,
        pairs: draft.state.plan.pairs,
        actor: auditActor(identity),
        from: request.ip,
      };
      let started: StartedBatch;
      try {
        started = await startBatch(context, spec, signal);
      } catch (error) {
        log.error({ err: error, draftId: draft.id }, 'console could not start a batch');
        return sendMessage(reply, 500, identity, 'Not started', 'The batch could not be started; see the server log. Nothing was enqueued.');
      }
      draft.state = { status: 'applied', batchId: started.batchId };
      // The draft's file now belongs to the enqueue: removed when it ends.
      drafts.release(draft.id);
      const task = started.done
        .then((summary) => log.info({ ...summary, by: identity.name }, 'console batch enqueued'))
        .catch((error: unknown) => log.warn({ err: error, batchId: started.batchId }, 'console batch enqueue stopped'))
        .finally(() => removeDir(draft.dir));
      running.add(task);
      void task.finally(() => running.delete(task));
      request.log.info({ batchId: started.batchId, draftId: draft.id, by: identity.name, clientAddress: request.ip }, 'revocation started from the console');
      return reply.redirect(`/console/batches/${started.batchId}?done=started`, 303);
    });
}
