/**
 * A worker's own Prometheus endpoint (WORKER_METRICS_PORT): API calls by action, code and
 * outcome, call latency, throttled calls and the rate in force. Each worker process serves its
 * own, as Prometheus expects; queue depths and dead letters are on `revoker serve`'s /metrics.
 */
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { createWorkerMetrics, type WorkerMetrics } from '../server/metrics.js';
import type { RevocationWorkerDeps } from '../worker/revocation-worker.js';

/** Where worker metrics listen by default (WORKER_METRICS_HOST's default). */
export const DEFAULT_WORKER_METRICS_HOST = '127.0.0.1';

/** Metrics of one worker process and, when a port is given, the server that exposes them. */
export interface WorkerMetricsEndpoint {
  metrics: WorkerMetrics;
  /** What the worker calls after every API call. */
  onCall: NonNullable<RevocationWorkerDeps['onCall']>;
  /** The port actually listened on (useful with port 0), or null when not served. */
  port: number | null;
  close(): Promise<void>;
}

/**
 * Creates the metrics and, if `port` is not null, serves them on `host`:`port`/metrics (0 = any
 * free port). The endpoint has no authentication, so it listens on loopback unless told
 * otherwise (WORKER_METRICS_HOST): a sidecar or node agent scrapes it there.
 */
export async function startWorkerMetrics(port: number | null, currentRate: () => number, log: Logger, host = DEFAULT_WORKER_METRICS_HOST): Promise<WorkerMetricsEndpoint> {
  const registry = new Registry();
  const metrics = createWorkerMetrics(registry);
  const onCall: WorkerMetricsEndpoint['onCall'] = (event) => {
    const action = event.action === 'delete' ? 'DeleteDeviceCertificate' : 'InactivateDeviceCertificate';
    metrics.apiCalls.inc({ action, code: event.code, outcome: event.outcome });
    metrics.apiCallDuration.observe({ action }, event.latencyMs / 1000);
    if (event.outcome === 'throttle') metrics.throttled.inc();
    metrics.rateLimitPerSecond.set(currentRate());
  };
  let server: Server | null = null;
  if (port !== null) {
    server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      metrics.rateLimitPerSecond.set(currentRate());
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(port, host, () => resolve());
    });
    log.info({ host, port }, 'worker metrics served on /metrics');
  }
  const address = server?.address();
  return {
    metrics,
    onCall,
    port: address !== undefined && address !== null && typeof address === 'object' ? address.port : null,
    close: () => new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve()))),
  };
}
