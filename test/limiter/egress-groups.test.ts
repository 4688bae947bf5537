/**
 * Issue 12 end to end, with worker processes and an emulator process that blocks a source IP
 * above 300 calls/s: two egress groups (two source IPs, through forwarder processes bound to
 * 127.0.0.2 and 127.0.0.3) share the account budget and never come near the per-IP limit; a worker started
 * with STS credentials and no account id refuses to start.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT, generateDevices } from '../../src/emulator/index.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { enqueueDevices } from '../helpers/pipeline.js';
import { spawnEmulator, spawnForwarder, spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from '../helpers/processes.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';
import { resolveConfig } from '../../src/config/config.js';

const INSTANCE = 'mqtt-cn-egress0001';
const CA = 'ca00000000egress01';

interface Stats {
  throttled: number;
  bySourceIp: Record<string, { calls: number; busiestSecond: number; blockCount: number }>;
  byAccountAction: Record<string, Record<string, { calls: number; busiestSecond: number }>>;
}

describe('egress groups', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const prefix of prefixes) await removePrefix(prefix);
  });

  function env(prefix: string, endpoint: string, extra: Record<string, string>): Record<string, string> {
    return {
      REDIS_URL: TEST_REDIS_URL,
      REVOKER_PREFIX: prefix,
      MQTT_API_ENDPOINT: endpoint,
      MQTT_API_PROTOCOL: 'http',
      ALIBABA_CLOUD_ACCESS_KEY_ID: DEMO_ACCOUNT.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: DEMO_ACCOUNT.accessKeySecret,
      ALIBABA_CLOUD_ACCOUNT_ID: '1234567890',
      RETRY_BASE_MS: '100',
      RETRY_MAX_MS: '1000',
      ...extra,
    };
  }

  it('two egress groups: each source IP stays under its budget, the account under its own, nothing blocked or throttled', async () => {
    const api = await spawnEmulator(['--ip-limit', '300', '--latency-median-ms', '15', '--latency-p99-ms', '60']);
    const forwarders = await Promise.all(['127.0.0.2', '127.0.0.3'].map((localAddress) => spawnForwarder(api.endpoint, localAddress)));
    const prefix = uniquePrefix('egress2');
    prefixes.push(prefix);
    // Account budget 400/s, two egress groups of 250/s: the account binds, each IP runs ~200/s.
    const budgets = { RATE_LIMIT_PER_SECOND: '400', EGRESS_RATE_LIMIT_PER_SECOND: '250' };
    const workers: Spawned[] = [
      spawnWorker(env(prefix, forwarders[0]!.endpoint, { ...budgets, EGRESS_ID: 'nat-a' })),
      spawnWorker(env(prefix, forwarders[1]!.endpoint, { ...budgets, EGRESS_ID: 'nat-b' })),
    ];
    let context: Context | null = null;
    try {
      await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
      context = openContext(resolveConfig(env(prefix, api.endpoint, budgets)), 'test-egress2');
      const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 2_400, prefix: 'egress2' });
      await api.control('/_emulator/devices', { devices });
      await api.control('/_emulator/reset', {});
      const ctx = context;
      const batchId = await enqueueDevices(ctx, devices);
      const batch = await waitFor(async () => {
        const current = await ctx.batches.get(batchId);
        return current?.state === 'completed' || current?.state === 'paused' ? current : null;
      }, 'the batch to complete', 90_000, 200);
      expect(batch.state).toBe('completed');
      expect(batch.counts.deleted).toBe(2_400);
      const stats = await api.control<Stats>('/_emulator/stats');
      const a = stats.bySourceIp['127.0.0.2'];
      const b = stats.bySourceIp['127.0.0.3'];
      // Both addresses carried a real share: the account's rate was spread over the two.
      expect(a?.calls ?? 0).toBeGreaterThan(600);
      expect(b?.calls ?? 0).toBeGreaterThan(600);
      for (const ip of [a, b]) {
        expect(ip?.blockCount).toBe(0);
        expect(ip?.busiestSecond ?? 999).toBeLessThanOrEqual(300);
      }
      expect(stats.throttled).toBe(0);
      const deletes = Object.values(stats.byAccountAction).map((actions) => actions.DeleteDeviceCertificate?.busiestSecond ?? 0);
      expect(Math.max(...deletes)).toBeLessThanOrEqual(400);
    } finally {
      await Promise.all(workers.map((worker) => stopProcess(worker)));
      for (const forwarder of forwarders) await stopProcess(forwarder.spawned);
      await context?.close();
      await stopProcess(api.spawned);
    }
  });

  it('a worker with STS credentials and no account id refuses to start, naming ALIBABA_CLOUD_ACCOUNT_ID', async () => {
    const prefix = uniquePrefix('sts');
    prefixes.push(prefix);
    const { ALIBABA_CLOUD_ACCOUNT_ID: _unused, ...withoutAccount } = env(prefix, '127.0.0.1:1', { ALIBABA_CLOUD_SECURITY_TOKEN: 'sts-token-value-abc' });
    const worker = spawnWorker(withoutAccount);
    const exit = await worker.exited;
    expect(exit).toBe(2);
    expect(worker.output()).toMatch(/ALIBABA_CLOUD_ACCOUNT_ID must be set/);
    expect(worker.output()).not.toContain('sts-token-value-abc');
  });
});
