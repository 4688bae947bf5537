/**
 * The emulator's HTTP server: a stand-in for the onsmqtt OpenAPI gateway on 127.0.0.1.
 *
 * Built on node:http rather than a framework because the faults need the raw socket: a
 * "dropped connection" destroys it mid-request, a "timeout" holds the response open past the
 * client's read timeout, and `stop()` must be able to kill kept-alive and held sockets at once.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { API_VERSION, callTarget, isActionName, runAction, type ActionOutcome } from './api-actions.js';
import { apiError, errorBody, type ApiError } from './api-error.js';
import { CallLog, type CallRecord } from './call-log.js';
import { CallStats } from './call-stats.js';
import { handleControlRequest } from './control-api.js';
import { DeviceRegistry } from './device-registry.js';
import type { EmulatorHandle } from './emulator-handle.js';
import {
  resolveEmulatorOptions,
  resolveFaults,
  resolveIpLimit,
  resolveLatency,
  resolveRatePerSecond,
  type EmulatorOptions,
  type FaultOptions,
  type LatencyOptions,
} from './emulator-options.js';
import { decideFault, decisionForStep, type FaultDecision, type ScriptStep } from './faults.js';
import { sampleLatencyMs } from './latency.js';
import { RequestAuthenticator } from './request-authenticator.js';
import { parseAuthorization, parseQueryPairs } from './signature-verifier.js';
import { SlidingWindowLimiter } from './sliding-window.js';
import { normaliseSourceIp, SourceIpGuard } from './source-ip-guard.js';

export type { EmulatorHandle, EmulatorSettings } from './emulator-handle.js';

// API requests have empty bodies; anything this large is not one of ours.
const MAX_BODY_BYTES = 1024 * 1024;
// Longer than any client's idle keep-alive (Node's agent frees sockets after use, idle ones
// linger): if the server closed first, a client could reuse a socket that is being closed and
// get a spurious ECONNRESET, which would look like an injected fault.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

const BAD_GATEWAY_HTML =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n';

const JSON_CONTENT_TYPE = 'application/json;charset=utf-8';

/** A pending timer that `stop()` must clear. */
type Timer = ReturnType<typeof setTimeout>;

/** An API request whose body has been read. */
interface ArrivedRequest {
  /** When its first byte was handled (ms since the epoch). */
  arrivalMs: number;
  sourceIp: string;
  pathname: string;
  rawQuery: string;
  body: Buffer;
}

class Emulator {
  readonly registry = new DeviceRegistry();
  readonly stats = new CallStats();
  readonly log: CallLog;
  readonly authenticator: RequestAuthenticator;
  /** Keyed by account and action, the unit of the API's per-second budgets. */
  private readonly limiter = new SlidingWindowLimiter(1000);
  readonly ipGuard: SourceIpGuard;
  private readonly scripts = new Map<string, ScriptStep[]>();
  private readonly denied = new Set<string>();
  private readonly timers = new Set<Timer>();
  private readonly sockets = new Set<Socket>();
  ratePerSecond: number;
  faults: FaultOptions;
  latency: LatencyOptions;
  readonly server: Server;

  constructor(private readonly options: EmulatorOptions) {
    this.ratePerSecond = options.ratePerSecond;
    this.faults = options.faults;
    this.latency = options.latency;
    this.log = new CallLog(options.maxRecordedCalls);
    this.authenticator = new RequestAuthenticator(options.accounts, options.clockSkewToleranceMs);
    // resolveIpLimit picks the limit's own fields out of the (already checked) options.
    this.ipGuard = new SourceIpGuard(resolveIpLimit(undefined, options));
    for (const instanceId of options.instances) this.registry.addInstance(instanceId);
    for (const ca of options.cas) this.registry.addCa(ca.mqttInstanceId, ca.caSn, ca.status);
    this.registry.addDevices(options.devices);
    this.server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => this.onRequest(req, res));
    this.server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
    this.server.on('connection', (socket: Socket) => {
      this.stats.recordConnection();
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  script(deviceSn: string, steps: readonly ScriptStep[]): void {
    if (steps.length === 0) this.scripts.delete(deviceSn);
    else this.scripts.set(deviceSn, [...steps]);
  }

  denyInstance(accessKeyId: string, mqttInstanceId: string, deny: boolean): void {
    const key = `${accessKeyId}\n${mqttInstanceId}`;
    if (deny) this.denied.add(key);
    else this.denied.delete(key);
  }

  private stopping: Promise<void> | undefined;

  /** Idempotent: a second call waits for the first. */
  stop(): Promise<void> {
    this.stopping ??= this.close();
    return this.stopping;
  }

  private async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Runs `fn` after `delayMs` (at once when 0), on a timer `stop()` can clear. */
  private later(delayMs: number, fn: () => void): Timer | undefined {
    if (delayMs <= 0) {
      fn();
      return undefined;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    this.timers.add(timer);
    return timer;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const arrivalMs = Date.now();
    // Read now: a socket destroyed before the body ends no longer knows its peer.
    const sourceIp = normaliseSourceIp(req.socket.remoteAddress);
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const pathname = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) {
        const requestId = randomUUID().toUpperCase();
        this.sendJson(res, 413, errorBody(apiError('RequestEntityTooLarge'), requestId, this.hostId(req)), requestId);
        return;
      }
      const body = chunks.length === 0 ? Buffer.alloc(0) : Buffer.concat(chunks);
      if (pathname.startsWith('/_emulator/') && this.handle) {
        handleControlRequest(this.handle, req, res, pathname, rawQuery, body);
        return;
      }
      this.onApiCall(req, res, { arrivalMs, sourceIp, pathname, rawQuery, body });
    });
  }

  private onApiCall(req: IncomingMessage, res: ServerResponse, request: ArrivedRequest): void {
    const { arrivalMs, sourceIp, pathname, rawQuery, body } = request;
    const requestId = randomUUID().toUpperCase();
    const action = (req.headers['x-acs-action'] as string | undefined) ?? '';
    // Decoded exactly as the signature check decodes them; a repeated name keeps its last value.
    const params = new Map(parseQueryPairs(rawQuery));
    const record: CallRecord = {
      atMs: arrivalMs,
      action,
      accessKeyId: '',
      sourceIp,
      ...callTarget(action, params),
      httpStatus: 0,
      code: '',
      requestId,
      applied: false,
      fault: 'none',
    };
    // The source IP check stands in front of everything, as a gateway's does: a blocked request
    // is not authenticated (so it spends no nonce) and its key id is only read for the record.
    const verdict = this.ipGuard.check(sourceIp, arrivalMs);
    this.stats.recordSourceIp(sourceIp, arrivalMs, verdict);
    if (verdict !== 'admitted') {
      record.accessKeyId = parseAuthorization(String(req.headers.authorization ?? ''))?.accessKeyId ?? '';
      this.stats.recordArrival(arrivalMs, record.accessKeyId);
      const blocked = this.ipGuard.answer(requestId, this.hostId(req));
      this.finish(record, blocked.httpStatus, blocked.code, false);
      return this.send(res, blocked.httpStatus, JSON_CONTENT_TYPE, blocked.body, requestId);
    }
    const auth = this.authenticator.authenticate({ method: req.method ?? 'GET', pathname, rawQuery, headers: req.headers, body, nowMs: arrivalMs });
    record.accessKeyId = auth.accessKeyId;
    this.stats.recordArrival(arrivalMs, auth.accessKeyId);
    const refuse = (error: ApiError): void => {
      this.finish(record, error.httpStatus, error.code, false);
      this.sendJson(res, error.httpStatus, errorBody(error, requestId, this.hostId(req)), requestId);
    };
    if (!auth.ok) return refuse(auth.error);
    const account = this.authenticator.accountOf(auth.accessKeyId);
    const withinRate = this.limiter.tryAdmit(`${account}\n${action}`, arrivalMs, this.ratePerSecond);
    this.stats.recordAccountAction(account, action, arrivalMs, withinRate);
    if (!withinRate) return refuse(apiError('Throttling.User'));
    this.stats.recordAdmission(arrivalMs, auth.accessKeyId);
    if (req.headers['x-acs-version'] !== API_VERSION) return refuse(apiError('InvalidVersion'));
    if (!isActionName(action)) return refuse(apiError('InvalidAction.NotFound'));

    const decision = this.decide(record.deviceSn);
    record.fault = decision.kind;
    const run = (): ActionOutcome =>
      runAction(action, {
        registry: this.registry,
        params,
        mayUseInstance: (instanceId) => !this.denied.has(`${auth.accessKeyId}\n${instanceId}`),
      });
    const answer = (outcome: ActionOutcome): void => {
      if (outcome.ok) this.sendJson(res, 200, { RequestId: requestId, ...outcome.body }, requestId);
      else this.sendJson(res, outcome.error.httpStatus, errorBody(outcome.error, requestId, this.hostId(req)), requestId);
    };
    const holdThen = (fn: () => void): void => {
      const timer = this.later(this.faults.timeoutDelayMs, fn);
      // The client gave up: nothing left to hold the socket open for.
      if (timer) res.once('close', () => {
        clearTimeout(timer);
        this.timers.delete(timer);
      });
    };

    this.later(sampleLatencyMs(this.latency, this.options.random), () => {
      switch (decision.kind) {
        case 'none': {
          const outcome = run();
          this.finishOutcome(record, outcome);
          return answer(outcome);
        }
        case 'service_unavailable':
          return refuse(apiError('ServiceUnavailable'));
        case 'internal_error':
          return refuse(apiError('InternalError'));
        case 'scripted_error': {
          const scripted = decision.error ?? { code: 'InternalError', httpStatus: 500 };
          return refuse({ httpStatus: scripted.httpStatus, code: scripted.code, message: scripted.message ?? apiError(scripted.code).message });
        }
        case 'nonjson':
          this.finish(record, 502, 'BadGateway', false);
          return this.send(res, 502, 'text/html', BAD_GATEWAY_HTML, requestId);
        case 'drop':
          this.finish(record, 0, 'ConnectionDropped', false);
          req.socket.destroy();
          return;
        case 'drop_after_apply': {
          const outcome = run();
          this.finish(record, 0, 'ConnectionDropped', outcome.ok);
          req.socket.destroy();
          return;
        }
        case 'timeout': {
          const outcome = run();
          this.finishOutcome(record, outcome);
          return holdThen(() => answer(outcome));
        }
        case 'timeout_before_apply':
          this.finish(record, 0, 'NoResponse', false);
          return holdThen(() => req.socket.destroy());
      }
    });
  }

  private decide(deviceSn: string): FaultDecision {
    const steps = deviceSn === '' ? undefined : this.scripts.get(deviceSn);
    if (steps) {
      const step = steps.shift() as ScriptStep;
      if (steps.length === 0) this.scripts.delete(deviceSn);
      return decisionForStep(step);
    }
    return decideFault(this.faults, this.options.random);
  }

  private finishOutcome(record: CallRecord, outcome: ActionOutcome): void {
    if (outcome.ok) this.finish(record, 200, 'OK', true);
    else this.finish(record, outcome.error.httpStatus, outcome.error.code, false);
  }

  private finish(record: CallRecord, httpStatus: number, code: string, applied: boolean): void {
    record.httpStatus = httpStatus;
    record.code = code;
    record.applied = applied;
    this.stats.recordOutcome(record);
    this.log.append(record);
  }

  private hostId(req: IncomingMessage): string {
    return req.headers.host ?? 'onsmqtt.emulator.local';
  }

  private sendJson(res: ServerResponse, status: number, body: unknown, requestId: string): void {
    this.send(res, status, JSON_CONTENT_TYPE, JSON.stringify(body), requestId);
  }

  private send(res: ServerResponse, status: number, contentType: string, text: string, requestId?: string): void {
    // The client may be gone already (it timed out, or stop() ran): nothing to write to.
    if (res.destroyed || res.writableEnded) return;
    const payload = Buffer.from(text, 'utf8');
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': payload.length,
      ...(requestId ? { 'x-acs-request-id': requestId } : {}),
    });
    res.end(payload);
  }

  /** The public face handed to callers and to the control routes; set once listening. */
  handle: EmulatorHandle | undefined;

  /** Builds the handle for the port the server listens on. */
  makeHandle(port: number): EmulatorHandle {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return {
      url: `http://${host}:${port}`,
      endpoint: `${host}:${port}`,
      port,
      registry: this.registry,
      calls: () => this.log.all(),
      stats: () => this.stats.snapshot(this.ipGuard.blocks(Date.now())),
      resetStats: () => {
        this.stats.reset();
        this.log.clear();
      },
      script: (deviceSn, steps) => this.script(deviceSn, steps),
      setRatePerSecond: (rate) => {
        this.ratePerSecond = resolveRatePerSecond(rate);
      },
      setFaults: (faults) => {
        this.faults = resolveFaults(faults, this.faults);
      },
      setLatency: (latency) => {
        this.latency = resolveLatency(latency, this.latency);
      },
      setIpLimit: (ipLimit) => this.ipGuard.configure(resolveIpLimit(ipLimit, this.ipGuard.options)),
      clearIpBlocks: (ip) => this.ipGuard.clear(ip),
      settings: () => ({ ratePerSecond: this.ratePerSecond, faults: { ...this.faults }, latency: { ...this.latency }, ipLimit: this.ipGuard.options }),
      addAccount: (account) => this.authenticator.addAccount(account),
      setAccountState: (accessKeyId, state) => this.authenticator.setAccountState(accessKeyId, state),
      setClockOffsetMs: (offsetMs) => {
        this.authenticator.clockOffsetMs = offsetMs;
      },
      denyInstance: (accessKeyId, instanceId) => this.denyInstance(accessKeyId, instanceId, true),
      allowInstance: (accessKeyId, instanceId) => this.denyInstance(accessKeyId, instanceId, false),
      stop: () => this.stop(),
    };
  }

}

/**
 * Starts an emulator on `host:port` (default 127.0.0.1 and a free port) and resolves once it
 * listens. Throws `EmulatorOptionsError` for a bad option.
 */
export async function startEmulator(options: Partial<EmulatorOptions> = {}): Promise<EmulatorHandle> {
  const resolved = resolveEmulatorOptions(options);
  const emulator = new Emulator(resolved);
  emulator.server.listen(resolved.port, resolved.host);
  await Promise.race([
    once(emulator.server, 'listening'),
    once(emulator.server, 'error').then(([error]) => {
      throw error instanceof Error ? error : new Error(String(error));
    }),
  ]);
  const address = emulator.server.address();
  const port = address !== null && typeof address === 'object' ? address.port : resolved.port;
  emulator.handle = emulator.makeHandle(port);
  return emulator.handle;
}
