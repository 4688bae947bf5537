/**
 * Helpers of the console suites: the server (with the console) and, when asked, the emulator and
 * an in-process worker, all over one private key prefix; named tokens of both roles; a cookie
 * session as the login form makes it.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { resolveConfig } from '../../src/config/config.js';
import { startEmulator, type EmulatorHandle, type EmulatorOptions } from '../../src/emulator/index.js';
import { createLogger } from '../../src/logging/logger.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { buildServer } from '../../src/server/build-server.js';
import { tokenHash } from '../../src/server/admin-tokens.js';
import { consoleHandleOf, type ConsoleHandle, type ConsoleOptions } from '../../src/server/console/console-routes.js';
import { quietLogger, testEnv } from '../helpers/pipeline.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

/** The `operate` token (ADMIN_TOKEN, named `admin`). */
export const OPERATE_TOKEN = 'console-operate-token-0123456789-abcdefghij';
/** A `read` token named `viewer`. */
export const READ_TOKEN = 'console-read-token-0123456789-abcdefghijklm';
/** The emulator's instance and CA the suites use. */
export const INSTANCE = 'mqtt-cn-console01';
export const CA_SN = 'ca00000000console';

/** A running console. */
export interface ConsoleEnv {
  app: FastifyInstance;
  context: Context;
  console: ConsoleHandle;
  url: string;
  prefix: string;
  emulator: EmulatorHandle | null;
  runtime: WorkerRuntime | null;
  logLines: string[];
  close(): Promise<void>;
}

/** What `startConsole` starts. */
export interface ConsoleSetup {
  /** Start the emulator (with these options) and one in-process worker against it. */
  pipeline?: Partial<EmulatorOptions>;
  console?: Partial<ConsoleOptions>;
  env?: Record<string, string>;
}

/** Starts the server with the console on 127.0.0.1 (and, if asked, the emulator and a worker). */
export async function startConsole(label: string, setup: ConsoleSetup = {}): Promise<ConsoleEnv> {
  const prefix = uniquePrefix(label);
  const dir = mkdtempSync(join(tmpdir(), 'revoker-console-test-'));
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify({ tokens: [{ name: 'viewer', sha256: tokenHash(READ_TOKEN).toString('hex'), role: 'read' }] }));
  const emulator = setup.pipeline === undefined ? null : await startEmulator(setup.pipeline);
  const env: Record<string, string> = {
    ...(emulator === null ? { REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix } : testEnv(prefix, emulator)),
    ADMIN_TOKEN: OPERATE_TOKEN,
    ADMIN_TOKENS_FILE: tokensFile,
    LOG_LEVEL: 'debug',
    ...setup.env,
  };
  const config = resolveConfig(env);
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const context = openContext(config, `test-${label}`);
  const runtime = emulator === null ? null : await startWorkerRuntime(config, quietLogger());
  const app = await buildServer({ context, logger: createLogger('debug', `test-${label}`, sink), registry: new Registry(), ...(setup.console === undefined ? {} : { console: setup.console }) }, { processMetrics: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  const handle = consoleHandleOf(app.server);
  if (handle === undefined) throw new Error('the console is not registered');
  return {
    app,
    context,
    console: handle,
    url: `http://127.0.0.1:${address.port}`,
    prefix,
    emulator,
    runtime,
    logLines,
    async close() {
      await app.close();
      await runtime?.close();
      await context.close();
      await emulator?.stop();
      await removePrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signs in through the form; returns the cookie pair to send (`name=value`). */
export async function signIn(url: string, token: string): Promise<string> {
  const response = await fetch(`${url}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }).toString() });
  if (response.status !== 303) throw new Error(`sign-in answered ${response.status}`);
  const setCookie = response.headers.get('set-cookie') ?? '';
  return setCookie.split(';')[0] ?? '';
}
