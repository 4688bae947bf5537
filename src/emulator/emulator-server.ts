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
import { CallStats, type EmulatorStats } from './call-stats.js';
import { handleControlRequest } from './control-api.js';
import { DeviceRegistry } from './device-registry.js';
import {
  resolveEmulatorOptions,
  resolveFaults,
  resolveLatency,
  resolveRatePerSecond,
  type EmulatorAccount,
  type EmulatorOptions,
  type FaultOptions,
  type LatencyOptions,
} from './emulator-options.js';
import { decideFault, decisionForStep, type FaultDecision, type ScriptStep } from './faults.js';
import { sampleLatencyMs } from './latency.js';
import { RequestAuthenticator, type AccountState } from './request-authenticator.js';
import { parseQueryPairs } from './signature-verifier.js';
import { SlidingWindowLimiter } from './sliding-window.js';

/** A running emulator. */
export interface EmulatorHandle {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, what the SDK's `endpoint` option takes. */
  readonly endpoint: string;
  readonly port: number;
  /** The live registry: inspect or change it directly. */
  readonly registry: DeviceRegistry;
  /** Every call recorded so far (a copy), oldest first. */
  calls(): CallRecord[];
  /** Running statistics. */
  stats(): EmulatorStats;
  /** Forgets recorded calls and statistics (not the registry, scripts or settings). */
  resetStats(): void;
  /**
   * Scripts the next calls naming this DeviceSn: one step is consumed per call, then calls
   * behave normally again. Replaces any script left for the device.
   */
  script(deviceSn: string, steps: readonly ScriptStep[]): void;
  setRatePerSecond(ratePerSecond: number): void;
  setFaults(faults: Partial<FaultOptions>): void;
  setLatency(latency: Partial<LatencyOptions>): void;
  /** The settings in force now. */
  settings(): { ratePerSecond: number; faults: FaultOptions; latency: LatencyOptions };
  /** Adds (or replaces) an account at run time. */
  addAccount(account: EmulatorAccount): void;
  /** Disables or re-enables an AccessKey: inactive keys get `InvalidAccessKeyId.Inactive`. */
  setAccountState(accessKeyId: string, state: AccountState): void;
  /** Pretends the server clock is off by this much (x-acs-date checks only). */
  setClockOffsetMs(offsetMs: number): void;
  /** Makes this key get `MqttOwnerCheckError` on this instance. */
  denyInstance(accessKeyId: string, mqttInstanceId: string): void;
  /** Undoes `denyInstance`. */
  allowInstance(accessKeyId: string, mqttInstanceId: string): void;
  /** Closes every socket (kept-alive and held ones too) and timer; resolves when closed. */
  stop(): Promise<void>;
}

// API requests have empty bodies; anything this large is not one of ours.
const MAX_BODY_BYTES = 1024 * 1024;
// Longer than any client's idle keep-alive (Node's agent frees sockets after use, idle ones
// linger): if the server closed first, a client could reuse a socket that is being closed and
// get a spurious ECONNRESET, which would look like an injected fault.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

const BAD_GATEWAY_HTML =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n';

/** A pending timer that `stop()` must clear. */
type Timer = ReturnType<typeof setTimeout>;

class Emulator {
  readonly registry = new DeviceRegistry();
  readonly stats = new CallStats();
  readonly log: CallLog;
  readonly authenticator: RequestAuthenticator;
  private readonly limiter = new SlidingWindowLimiter(1000);
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
    for (const instanceId of options.instances) this.registry.addInstance(instanceId);
    for (const ca of options.cas) this.registry.addCa(ca.mqttInstanceId, ca.caSn);
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
      this.onApiCall(req, res, arrivalMs, pathname, rawQuery, body);
    });
  }

  private onApiCall(req: IncomingMessage, res: ServerResponse, arrivalMs: number, pathname: string, rawQuery: string, body: Buffer): void {
    const requestId = randomUUID().toUpperCase();
    const action = (req.headers['x-acs-action'] as string | undefined) ?? '';
    const auth = this.authenticator.authenticate({ method: req.method ?? 'GET', pathname, rawQuery, headers: req.headers, body, nowMs: arrivalMs });
    this.stats.recordArrival(arrivalMs, auth.accessKeyId);
    // Decoded exactly as the signature check decoded them; a repeated name keeps its last value.
    const params = new Map(parseQueryPairs(rawQuery));
    const record: CallRecord = {
      atMs: arrivalMs,
      action,
      accessKeyId: auth.accessKeyId,
      ...callTarget(action, params),
      httpStatus: 0,
      code: '',
      requestId,
      applied: false,
      fault: 'none',
    };
    const refuse = (error: ApiError): void => {
      this.finish(record, error.httpStatus, error.code, false);
      this.sendJson(res, error.httpStatus, errorBody(error, requestId, this.hostId(req)), requestId);
    };
    if (!auth.ok) return refuse(auth.error);
    if (!this.limiter.tryAdmit(auth.accessKeyId, arrivalMs, this.ratePerSecond)) return refuse(apiError('Throttling.User'));
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
    this.send(res, status, 'application/json;charset=utf-8', JSON.stringify(body), requestId);
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
      stats: () => this.stats.snapshot(),
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
      settings: () => ({ ratePerSecond: this.ratePerSecond, faults: { ...this.faults }, latency: { ...this.latency } }),
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
