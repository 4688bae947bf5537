/**
 * The incident console at /console, as a Fastify plugin (docs/CONSOLE.md).
 *
 * | route                                        | who                         |
 * |----------------------------------------------|-----------------------------|
 * | GET  /console/login, POST /console/login     | anyone (the form's token)   |
 * | POST /console/logout                         | anyone                      |
 * | GET  /console/assets/*                       | anyone (public files)       |
 * | GET  /console                                | read                        |
 * | GET  /console/batches/:id (devices: ?serial=&ca=, ?outcome=&from=, ?from=, ?cursor=) | read |
 * | GET  /console/batches/:id/report?format=csv\|ndjson[&plain=1] | read          |
 * | GET  /console/stream/overview, /stream/batches/:id, /stream/drafts/:id (SSE) | read |
 * | GET  /console/batches/:id/confirm/:action    | operate                     |
 * | POST /console/batches/:id/pause\|resume\|cancel\|priority\|redrive | operate, same origin |
 * | GET  /console/new, /console/drafts/:id       | operate                     |
 * | POST /console/new/csv (multipart), /console/new/ca, /console/drafts/:id/apply\|discard | operate, same origin |
 *
 * Pages are rendered on the server; a page with live figures follows one event stream. Every
 * answer carries a strict CSP (no inline script or style), `X-Frame-Options: DENY`, `nosniff`
 * and `no-referrer`; pages are `no-store`.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import { PassThrough } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuditTrail } from '../../audit/audit-trail.js';
import type { Batch } from '../../batches/batch.js';
import { validateCaSn, validateDeviceSn } from '../../producer/device-validation.js';
import { loadSigningKey } from '../../report/report-signature.js';
import { reportStores } from '../../report/report-stores.js';
import { writeSealedReport } from '../../report/sealed-report.js';
import { reportLines } from '../../results/report-writer.js';
import type { Context } from '../../runtime/context.js';
import type { AdminAuth } from '../admin-auth.js';
import { dashboardSessionValue, DASHBOARD_COOKIE, dashboardSessionIdentity, readCookie } from '../admin-auth.js';
import { cameOverTls, sessionCookies } from '../dashboard.js';
import { sendError } from '../http-error.js';
import type { ServerOptions } from '../server-options.js';
import { BatchDetailsReader } from './batch-details.js';
import { BatchDevices, DEVICE_FILTERS, filterCount, type BatchDevicesOptions, type DeviceFilter, type DevicePage, type DeviceRow } from './batch-devices.js';
import { renderBatchPage, renderConfirmation, renderDetails, renderDevices, renderSummary, type DeviceQuery } from './batch-view.js';
import { registerConsoleAssets } from './console-assets.js';
import { registerIntakeRoutes } from './intake-routes.js';
import { formOf, htmlMessage, identityOf, param, query, sendPage } from './route-helpers.js';
import { auditActor, CONSOLE_LOGIN_PATH, requireConsole, type ConsoleIdentity } from './console-auth.js';
import { ConsoleSampler, type ConsoleSamplerOptions, type RateSample } from './console-sampler.js';
import { Drafts, type DraftsOptions } from './drafts.js';
import { raw, type SafeHtml } from './html.js';
import { renderDraft, renderLogin } from './intake-view.js';
import { CONSOLE_CSP, renderPage } from './layout.js';
import { LiveHub } from './live-hub.js';
import { renderBatchesTable, renderBudgets, renderOverview, renderTotals } from './overview-view.js';
import { confirmationOf, priorityFromForm, reasonFromForm, steer, STEERING_ACTIONS, type SteeringAction } from './steering.js';

/** Tunables of the console. */
export interface ConsoleOptions {
  /** Largest CSV file accepted, in bytes. */
  maxUploadBytes: number;
  sampler: Partial<ConsoleSamplerOptions>;
  devices: Partial<BatchDevicesOptions>;
  drafts: Partial<DraftsOptions>;
  /** Most live streams open at once. */
  maxStreams: number;
  /** How long the server waits, when stopping, for enqueues it started to stop. */
  stopWaitMs: number;
}

/** Defaults of `ConsoleOptions`. */
export const CONSOLE_DEFAULTS: ConsoleOptions = {
  // 1,000,000 rows of a serial, a CA and an instance are about 60 MB; room for wider exports.
  maxUploadBytes: 128 * 1024 * 1024,
  sampler: {},
  devices: {},
  drafts: {},
  maxStreams: 200,
  stopWaitMs: 5_000,
};

/** What the console needs. */
export interface ConsoleDeps {
  context: Context;
  auth: AdminAuth;
  audit: AuditTrail;
  options: ServerOptions;
  /** TRUST_PROXY is set (a forwarded request gets a Secure cookie). */
  trustProxy: boolean;
  logger: Logger;
  console?: Partial<ConsoleOptions>;
}

/** What tests and the benchmark reach of a running console. */
export interface ConsoleHandle {
  sampler: ConsoleSampler;
  hub: LiveHub;
  drafts: Drafts;
  /** Enqueues the console started that are still reading. */
  running(): Promise<unknown>[];
}

const handles = new WeakMap<Server, ConsoleHandle>();

/** The console of the server listening on `server` (tests, benchmark). */
export function consoleHandleOf(server: Server): ConsoleHandle | undefined {
  return handles.get(server);
}

const BATCH_ID = /^[A-Za-z0-9_.-]{1,128}$/;
const POSITION = /^\d{1,20}$/;
const MAX_FORM_BYTES = 16 * 1024;

/** Fixed notices after an action (a code in the URL, never free text someone could craft). */
const NOTICES: Record<string, string> = {
  pause: 'Paused: workers stop calling for this batch within a second.',
  resume: 'Resumed.',
  cancel: 'Cancelled: the devices not yet revoked are being recorded cancelled.',
  priority: 'Priority changed: the waiting devices moved.',
  redrive: 'Dead letters redriven: their devices are pending again.',
  started: 'Started: the input is being read and enqueued; the progress bar fills as devices finish.',
};

function compactSample(sample: RateSample): unknown {
  return { t: sample.atMs, b: sample.budgets.map((budget) => [budget.name, budget.calls, budget.limit, budget.adaptive, budget.throttled ? 1 : 0, budget.refused ? 1 : 0]) };
}




/** The console as a Fastify plugin. */
export function consoleRoutes(deps: ConsoleDeps) {
  const { context, auth, audit, options, trustProxy, logger } = deps;
  const settings: ConsoleOptions = { ...CONSOLE_DEFAULTS, ...deps.console };
  const log = logger.child({ component: 'console' });
  // Background work runs every second: while Redis is away, say so every 30 s, not every second.
  let lastErrorLogMs = 0;
  const onError = (error: unknown): void => {
    if (Date.now() - lastErrorLogMs < 30_000) return;
    lastErrorLogMs = Date.now();
    log.warn({ err: error }, 'console background work failed (repeats within 30 s are not logged)');
  };
  const sampler = new ConsoleSampler(context.redis, context.keys, settings.sampler, onError);
  const devices = new BatchDevices(context.redis, context.keys, settings.devices);
  const details = new BatchDetailsReader(context, audit, devices, onError);
  const drafts = new Drafts(settings.drafts);
  const detailsCache = new Map<string, { fingerprint: string; html: string }>();
  const running = new Set<Promise<unknown>>();
  const stopping = new AbortController();
  let signingConfigured = context.config.reportSigningKeyFile !== null;

  const page = sendPage;
  const evidenceOf = (batch: Batch) => details.evidence(batch);

  async function batchDetailsHtml(batch: Batch): Promise<string> {
    const fingerprint = await details.fingerprint(batch);
    const cached = detailsCache.get(batch.id);
    if (cached !== undefined && cached.fingerprint === fingerprint) return cached.html;
    const rendered = renderDetails(batch, await details.read(batch), { configured: signingConfigured }).value;
    detailsCache.set(batch.id, { fingerprint, html: rendered });
    if (detailsCache.size > 200) detailsCache.delete(detailsCache.keys().next().value as string);
    return rendered;
  }

  // One render per topic and second; the viewer's role decides the controls, so it is in the topic.
  async function renderTopic(topic: string, first: boolean): Promise<Record<string, string> | null> {
    const [kind, role, id] = topic.split('|') as [string, string, string | undefined];
    const identity = { name: '', role: role === 'operate' ? 'operate' : 'read' } as const;
    if (kind === 'overview') {
      const snapshot = sampler.latest();
      const events: Record<string, string> = {
        totals: renderTotals(snapshot?.batches ?? []).value,
        batches: renderBatchesTable(snapshot?.batches ?? [], evidenceOf).value,
        budgets: renderBudgets(snapshot?.rates ?? null, snapshot?.accounts ?? []).value,
      };
      if (first) events.history = JSON.stringify(sampler.rateHistory().map(compactSample));
      else if (snapshot !== null) events.rates = JSON.stringify(compactSample(snapshot.rates));
      return events;
    }
    if (kind === 'batch' && id !== undefined) {
      const batch = await context.batches.get(id);
      if (batch === null) return null;
      return { summary: renderSummary(batch, sampler.progressOf(id), identity, details.evidence(batch)).value, details: await batchDetailsHtml(batch) };
    }
    if (kind === 'draft' && id !== undefined) {
      const draft = drafts.get(id);
      if (draft === undefined) return null;
      return { draft: renderDraft(draft, draft.owner === role).value };
    }
    return null;
  }

  const hub = new LiveHub(renderTopic, onError, { maxViewers: settings.maxStreams });
  sampler.subscribe(() => void hub.broadcast().catch(onError));

  function loadBatch(request: FastifyRequest): Promise<Batch | null> {
    const id = param(request, 'id');
    return BATCH_ID.test(id) ? context.batches.get(id) : Promise.resolve(null);
  }

  function notFound(reply: FastifyReply, identity: ConsoleIdentity | null, what: string): FastifyReply {
    return page(reply, 404, renderPage({ title: 'Not found', identity, current: 'other' }, htmlMessage(`${what} not found: a wrong id, or it expired after the retention period.`)));
  }

  async function devicesSection(request: FastifyRequest, batch: Batch): Promise<SafeHtml> {
    const serialRaw = query(request, 'serial');
    const caRaw = query(request, 'ca');
    const outcomeRaw = query(request, 'outcome');
    const fromRaw = query(request, 'from');
    const cursorRaw = query(request, 'cursor');
    const outcome = outcomeRaw !== null && (DEVICE_FILTERS as readonly string[]).includes(outcomeRaw) ? (outcomeRaw as DeviceFilter) : null;
    const from = fromRaw !== null && POSITION.test(fromRaw) ? fromRaw : null;
    const serial = serialRaw?.trim() ?? null;
    const ca = caRaw?.trim() ?? null;
    const deviceQuery: DeviceQuery = { serial: serial === '' ? null : serial, ca: ca === '' ? null : ca, outcome, from };
    let problem: string | null = null;
    let searched: DeviceRow[] | null = null;
    let devicePage: DevicePage | null = null;
    let expected: number | null = null;
    if (deviceQuery.serial !== null) {
      problem = validateDeviceSn(deviceQuery.serial) ?? (deviceQuery.ca !== null ? validateCaSn(deviceQuery.ca) : null);
      searched = problem === null ? await devices.search(batch, deviceQuery.serial, deviceQuery.ca ?? undefined) : [];
      if (problem === null && searched.length === 0) {
        const pairs = await devices.pairsOf(batch);
        problem = `No device ${deviceQuery.serial} in this batch under ${pairs.length === 1 ? `CA ${pairs[0]?.caSn ?? ''} on ${pairs[0]?.instance ?? ''}` : `the ${pairs.length} instance and CA pairs it is known to use`}. If the batch spans other CAs, give the CA too.`;
      }
    } else if (outcome !== null) {
      expected = filterCount(batch, outcome);
      devicePage = await devices.filter(batch.id, outcome, from, expected);
    } else {
      const cursor = cursorRaw !== null && POSITION.test(cursorRaw) ? cursorRaw : undefined;
      devicePage = await devices.page(batch.id, from !== null ? { from: Number(from) } : cursor !== undefined ? { cursor } : {});
    }
    return renderDevices(batch, deviceQuery, devicePage, searched, expected, problem, devices.pageSize);
  }

  async function sendReport(request: FastifyRequest, reply: FastifyReply, batch: Batch): Promise<FastifyReply> {
    const format = query(request, 'format') ?? 'csv';
    if (format !== 'csv' && format !== 'ndjson') return sendError(reply, 400, 'invalid_format', 'format must be csv or ndjson');
    const plain = query(request, 'plain') === '1';
    const identity = identityOf(request);
    const { order, audit: facts } = reportStores(context);
    reply
      .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="${batch.id}${plain ? '-plain' : ''}.${format}"`)
      .header('cache-control', 'no-store');
    if (plain) {
      const body = new PassThrough();
      void (async () => {
        for await (const line of reportLines(batch.id, format, context.results, context.batches, order)) if (!body.write(line)) await once(body, 'drain');
        body.end();
      })().catch((error: unknown) => body.destroy(error instanceof Error ? error : new Error(String(error))));
      return reply.send(body);
    }
    let signingKey = null;
    if (context.config.reportSigningKeyFile !== null && batch.finishedAt !== null) {
      try {
        signingKey = (await loadSigningKey(context.config.reportSigningKeyFile)).key;
      } catch (error) {
        signingConfigured = false;
        log.error({ err: error }, 'REPORT_SIGNING_KEY_FILE cannot be used: the console serves unsigned reports');
      }
    }
    const body = new PassThrough();
    writeSealedReport(batch, body, { results: context.results, batches: context.batches, order, audit: facts, trail: audit }, { format, signingKey, generatedBy: `${auditActor(identity)} (console)` }).then(
      () => body.end(),
      (error: unknown) => body.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return reply.send(body);
  }

  return async function register(app: FastifyInstance): Promise<void> {
    handles.set(app.server, { sampler, hub, drafts, running: () => [...running] });
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
      return payload;
    });
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: MAX_FORM_BYTES }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });
    await app.register(multipart, { limits: { fileSize: settings.maxUploadBytes, files: 1, fields: 20, fieldSize: 4_096, parts: 22 } });
    registerConsoleAssets(app);

    app.addHook('onReady', (done) => {
      sampler.start();
      done();
    });
    app.addHook('preClose', async () => {
      sampler.stop();
      hub.closeAll();
      stopping.abort();
      const pending = [...running];
      if (pending.length > 0) {
        await Promise.race([Promise.allSettled(pending), new Promise((resolve) => setTimeout(resolve, settings.stopWaitMs).unref())]);
      }
    });
    app.addHook('onClose', async () => {
      await drafts.close();
      await details.close();
      handles.delete(app.server);
    });

    const read = requireConsole(auth, 'read', 'redirect');
    const readJson = requireConsole(auth, 'read', 'json');
    const operate = requireConsole(auth, 'operate', 'redirect');
    const operateJson = requireConsole(auth, 'operate', 'json');

    // Sign-in and sign-out.
    app.get(CONSOLE_LOGIN_PATH, async (request, reply) => {
      if (Object.hasOwn(request.query as object, 'token')) {
        request.log.warn({ clientAddress: request.ip }, 'console login with a token in the URL refused');
        return sendError(reply.header('cache-control', 'no-store'), 400, 'token_in_url', 'the token is never accepted in a URL (it would end up in access logs); use the sign-in form, and rotate that token');
      }
      if (dashboardSessionIdentity(readCookie(request.headers.cookie, DASHBOARD_COOKIE), auth.tokens) !== null) return reply.redirect('/console', 303);
      return page(reply, 200, renderPage({ title: 'Sign in', identity: null, current: 'login' }, renderLogin(null)));
    });
    app.post(CONSOLE_LOGIN_PATH, async (request, reply) => {
      const blocked = auth.refuseIfBlocked(request, reply);
      if (blocked !== null) return blocked;
      const identity = auth.verifyToken(request, formOf(request).get('token') ?? '');
      const token = identity === null ? undefined : auth.tokens.byName(identity.name);
      if (identity === null || token === undefined) return page(reply.header('www-authenticate', 'Bearer realm="revoker"'), 401, renderPage({ title: 'Sign in', identity: null, current: 'login' }, renderLogin('That is not an admin token.')));
      request.log.info({ clientAddress: request.ip, tokenName: identity.name }, 'console login');
      const value = dashboardSessionValue(token.hash, token.name, options.dashboardSessionSeconds);
      return reply.header('cache-control', 'no-store').header('set-cookie', sessionCookies(value, options.dashboardSessionSeconds, cameOverTls(request, trustProxy))).redirect('/console', 303);
    });
    app.post('/console/logout', async (request, reply) => reply.header('set-cookie', sessionCookies('', 0, cameOverTls(request, trustProxy))).header('cache-control', 'no-store').redirect(CONSOLE_LOGIN_PATH, 303));

    // Reading.
    app.get('/console', { onRequest: read }, async (request, reply) => {
      const identity = identityOf(request);
      return page(reply, 200, renderPage({ title: 'Overview', identity, current: 'overview', stream: '/console/stream/overview' }, renderOverview(identity, sampler.latest(), evidenceOf)));
    });
    app.get('/console/stream/overview', { onRequest: readJson }, async (request, reply) => hub.open(request, reply, `overview|${identityOf(request).role}`));

    app.get('/console/batches/:id', { onRequest: read }, async (request, reply) => {
      const identity = identityOf(request);
      const batch = await loadBatch(request);
      if (batch === null) return notFound(reply, identity, `Batch ${param(request, 'id')}`);
      const done = query(request, 'done');
      const notice = done !== null ? (NOTICES[done] ?? null) : null;
      const body = renderBatchPage(batch, {
        summary: renderSummary(batch, sampler.progressOf(batch.id), identity, details.evidence(batch)),
        devices: await devicesSection(request, batch),
        details: raw(await batchDetailsHtml(batch)),
        notice,
        noticeOk: true,
      });
      return page(reply, 200, renderPage({ title: batch.name === '' ? batch.id : batch.name, identity, current: 'batch', stream: `/console/stream/batches/${batch.id}` }, body));
    });
    app.get('/console/stream/batches/:id', { onRequest: readJson }, async (request, reply) => {
      const id = param(request, 'id');
      if (!BATCH_ID.test(id)) return sendError(reply, 404, 'batch_not_found', 'no such batch');
      return hub.open(request, reply, `batch|${identityOf(request).role}|${id}`);
    });
    app.get('/console/batches/:id/report', { onRequest: readJson }, async (request, reply) => {
      const batch = await loadBatch(request);
      if (batch === null) return sendError(reply, 404, 'batch_not_found', `batch ${param(request, 'id')} not found`);
      return sendReport(request, reply, batch);
    });

    // Steering.
    app.get('/console/batches/:id/confirm/:action', { onRequest: operate }, async (request, reply) => {
      const identity = identityOf(request);
      const batch = await loadBatch(request);
      if (batch === null) return notFound(reply, identity, `Batch ${param(request, 'id')}`);
      const action = param(request, 'action') as SteeringAction;
      if (!STEERING_ACTIONS.includes(action)) return notFound(reply, identity, 'That action');
      const confirmation = confirmationOf(batch, action, priorityFromForm(query(request, 'priority')), action === 'resume' ? await context.control.accountPauseReasons() : []);
      const body = renderConfirmation(batch, confirmation);
      if (request.headers['x-console-fragment'] === '1') return page(reply, 200, body.value);
      return page(reply, 200, renderPage({ title: confirmation.title, identity, current: 'batch' }, body));
    });
    app.post('/console/batches/:id/:action', { onRequest: operate }, async (request, reply) => {
      const identity = identityOf(request);
      const action = param(request, 'action') as SteeringAction;
      if (!STEERING_ACTIONS.includes(action)) return notFound(reply, identity, 'That action');
      const batch = await loadBatch(request);
      if (batch === null) return notFound(reply, identity, `Batch ${param(request, 'id')}`);
      const form = formOf(request);
      let reason: string | null;
      try {
        reason = reasonFromForm(form.get('reason'));
      } catch (error) {
        return page(reply, 400, renderPage({ title: 'Not done', identity, current: 'batch' }, htmlMessage(`Nothing was changed: ${error instanceof Error ? error.message : String(error)}.`, `/console/batches/${batch.id}`)));
      }
      const result = await steer(context, audit, batch, action, { reason, priority: priorityFromForm(form.get('priority')), actor: auditActor(identity), from: request.ip });
      request.log.info({ batchId: batch.id, action, ok: result.ok, by: identity.name, clientAddress: request.ip }, 'batch steered from the console');
      if (action === 'redrive') details.forget(batch.id);
      if (!result.ok) {
        const now = (await context.batches.get(batch.id)) ?? batch;
        return page(reply, 409, renderPage({ title: 'Not done', identity, current: 'batch' }, htmlMessage(`Nothing was changed: ${result.message}`, `/console/batches/${now.id}`)));
      }
      return reply.redirect(`/console/batches/${batch.id}?done=${action}`, 303);
    });

    registerIntakeRoutes(app, { context, log, drafts, hub, running, signal: stopping.signal, maxUploadBytes: settings.maxUploadBytes, operate, operateJson });
  };
}
