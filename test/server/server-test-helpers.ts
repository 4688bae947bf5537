/** Shared helpers of the server suites: a real server on 127.0.0.1 over a private key prefix. */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { resolveConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/logging/logger.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { buildServer } from '../../src/server/build-server.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import type { HostLookup } from '../../src/events/callback-policy.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

/** A fresh Standard Webhooks secret. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** A running test server. */
export interface TestServer {
  app: FastifyInstance;
  context: Context;
  registry: Registry;
  /** `http://127.0.0.1:PORT` */
  url: string;
  prefix: string;
  /** Every log line the server wrote (debug level and up). */
  logLines: string[];
  /** Closes the server and the context, and removes the prefix's keys. */
  close(): Promise<void>;
}

/** Environment and options of `startTestServer`. */
export interface TestServerSetup {
  adminToken?: string;
  webhookSecrets?: string[];
  options?: Partial<ServerOptions>;
  env?: Record<string, string>;
  /** Name resolution for callback hosts (the system resolver when absent). */
  lookup?: HostLookup;
}

/** Builds a server over a fresh prefix and listens on a free port of 127.0.0.1. */
export async function startTestServer(label: string, setup: TestServerSetup = {}): Promise<TestServer> {
  const prefix = uniquePrefix(label);
  const config = resolveConfig({
    REDIS_URL: TEST_REDIS_URL,
    REVOKER_PREFIX: prefix,
    ...(setup.adminToken === undefined ? {} : { ADMIN_TOKEN: setup.adminToken }),
    WEBHOOK_SECRETS: (setup.webhookSecrets ?? []).join(','),
    LOG_LEVEL: 'debug',
    ...setup.env,
  });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const context = openContext(config, `test-${label}`);
  const registry = new Registry();
  let app: FastifyInstance;
  try {
    // Process metrics off: they are global to the process and add nothing to these tests.
    app = await buildServer({ context, logger: createLogger('debug', `test-${label}`, sink), registry, ...(setup.lookup === undefined ? {} : { lookup: setup.lookup }) }, { processMetrics: false, ...setup.options });
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (error) {
    await context.close();
    await removePrefix(prefix);
    throw error;
  }
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  return {
    app,
    context,
    registry,
    url: `http://127.0.0.1:${address.port}`,
    prefix,
    logLines,
    async close() {
      await app.close();
      await context.close();
      await removePrefix(prefix);
    },
  };
}
