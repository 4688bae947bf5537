/**
 * `revoker serve` in-process: configuration errors exit 2 with a message, a started server
 * answers, and SIGTERM closes the server and then its Redis connection.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Command, CommanderError } from 'commander';
import { registerServeCommand, runServeCommand } from '../../src/server/serve-command.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix, waitFor } from '../helpers/redis.js';

const ADMIN_TOKEN = 'serve-command-admin-token-00000001';

describe('revoker serve', () => {
  const prefixes: string[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
    for (const prefix of prefixes.splice(0)) await removePrefix(prefix);
  });

  function captureStderr(): string[] {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    return written;
  }

  it('exits 2 with the variable named on a bad configuration', async () => {
    const stderr = captureStderr();
    expect(await runServeCommand({ port: 0, host: '127.0.0.1' }, { REDIS_URL: TEST_REDIS_URL, RATE_LIMIT_PER_SECOND: '900', ADMIN_TOKEN })).toBeNull();
    expect(process.exitCode).toBe(2);
    expect(stderr.join('')).toContain('RATE_LIMIT_PER_SECOND');
  });

  it('exits 2 without ADMIN_TOKEN', async () => {
    const stderr = captureStderr();
    const prefix = uniquePrefix('serve-noadmin');
    prefixes.push(prefix);
    expect(await runServeCommand({ port: 0, host: '127.0.0.1' }, { REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, LOG_LEVEL: 'silent' })).toBeNull();
    expect(process.exitCode).toBe(2);
    expect(stderr.join('')).toContain('ADMIN_TOKEN must be set to start the server');
  });

  it('serves until SIGTERM, then closes the server and the context', async () => {
    const prefix = uniquePrefix('serve');
    prefixes.push(prefix);
    const listenersBefore = process.listenerCount('SIGTERM');
    const running = await runServeCommand({ port: 0, host: '127.0.0.1' }, { REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, ADMIN_TOKEN, LOG_LEVEL: 'silent' });
    expect(running).not.toBeNull();
    const address = running!.address;
    expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${address}/readyz`)).status).toBe(200);
    expect((await fetch(`${address}/v1/batches`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(200);
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore + 1);

    // What the signal does, without signalling the test process for real.
    process.emit('SIGTERM', 'SIGTERM');
    await waitFor(() => running!.context.redis.status === 'end', 'the Redis connection to close', 10_000);
    await expect(fetch(`${address}/healthz`)).rejects.toThrow();
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore);
    expect(process.exitCode ?? 0).toBe(0);
  });

  it('validates --port', async () => {
    const program = new Command('revoker').exitOverride().configureOutput({ writeErr: () => undefined });
    registerServeCommand(program);
    await expect(program.parseAsync(['node', 'revoker', 'serve', '--port', 'eighty'])).rejects.toBeInstanceOf(CommanderError);
    await expect(program.parseAsync(['node', 'revoker', 'serve', '--port', '70000'])).rejects.toThrow('--port must be an integer from 0 to 65535');
  });
});
