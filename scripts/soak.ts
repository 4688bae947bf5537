/**
 * `npm run soak`: the long versions of the reliability scenarios, against processes as production
 * runs them: an emulator process with faults (10 % 503, 5 % timeouts, 1 % drops), three worker
 * processes of which one is SIGKILLed at random moments and restarted several times, and a
 * throttling storm (quota 100/s for 20 s). Then the invariants, from what the emulator reports.
 *
 *   SOAK_DEVICES=20000 npm run soak
 */
import { generateDevices } from '../src/emulator/index.js';
import { resolveConfig } from '../src/config/config.js';
import { Enqueuer } from '../src/producer/enqueuer.js';
import { openContext } from '../src/runtime/context.js';
import type { ResultRecord } from '../src/results/result-record.js';
import { benchEnv, removePrefix, sleep, spawnEmulator, spawnWorker, stopProcess, waitForWorkerStart, type Spawned } from './bench/bench-support.js';

const DEVICES = Number(process.env.SOAK_DEVICES ?? 10_000);
const INSTANCE = 'mqtt-cn-soak00001';
const CA = 'ca00000000000soak';

async function main(): Promise<number> {
  const api = await spawnEmulator(['--fault-503', '0.1', '--fault-timeout', '0.05', '--fault-drop', '0.01', '--latency-median-ms', '25', '--latency-p99-ms', '200']);
  const prefix = `{soak-${Date.now().toString(36)}}`;
  const extra = { RATE_LIMIT_PER_SECOND: '480', JOB_LOCK_MS: '3000', MQTT_API_TIMEOUT_MS: '2000', MAX_ATTEMPTS: '12' };
  const env = benchEnv(prefix, api.endpoint, extra);
  const context = openContext(resolveConfig(env), 'soak');
  const workers: Spawned[] = [];
  const problems: string[] = [];
  try {
    for (let i = 0; i < 3; i += 1) workers.push(spawnWorker(env));
    await Promise.all(workers.map((worker) => waitForWorkerStart(worker)));
    const registered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: DEVICES, prefix: 'soak' });
    const missing = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: Math.ceil(DEVICES / 50), prefix: 'soak-missing' });
    for (let i = 0; i < registered.length; i += 5_000) await api.control('/_emulator/devices', { devices: registered.slice(i, i + 5_000) });
    const batchId = await context.batches.create({ name: 'soak', source: 'csv', action: 'delete', createdBy: 'soak' });
    const all = [...registered, ...missing];
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, 'delete', all.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } })));
    process.stdout.write(`soak: batch ${batchId}, ${all.length} devices, 3 workers, faults on\n`);

    let kills = 0;
    let stormDone = false;
    for (;;) {
      const batch = await context.batches.get(batchId);
      if (batch?.state === 'completed') break;
      const done = batch?.done ?? 0;
      if (kills < 4 && done > (kills + 1) * (all.length / 6)) {
        const index = Math.floor(Math.random() * workers.length);
        workers[index]?.child.kill('SIGKILL');
        await workers[index]?.exited;
        workers[index] = spawnWorker(env);
        await waitForWorkerStart(workers[index]);
        kills += 1;
        process.stdout.write(`soak: SIGKILLed and restarted a worker at ${done} done\n`);
      }
      if (!stormDone && done > all.length / 2) {
        process.stdout.write('soak: throttling storm, quota 100/s for 20 s\n');
        await api.control('/_emulator/config', { ratePerSecond: 100 });
        await sleep(20_000);
        await api.control('/_emulator/config', { ratePerSecond: 500 });
        stormDone = true;
      }
      await sleep(500);
    }

    const batch = await context.batches.get(batchId);
    const records = new Map<string, ResultRecord>();
    for await (const raw of context.results.scan(batchId)) {
      const record = raw as ResultRecord;
      if (records.has(record.deviceSn)) problems.push(`${record.deviceSn} has two records`);
      records.set(record.deviceSn, record);
    }
    if (records.size !== all.length) problems.push(`${records.size} records for ${all.length} devices`);
    const left = await api.control<{ total: number; devices: { deviceSn: string }[] }>(`/_emulator/devices?mqttInstanceId=${INSTANCE}&caSn=${CA}`);
    const stillThere = new Set(left.devices.map((device) => device.deviceSn));
    for (const device of registered) {
      const record = records.get(device.deviceSn);
      if (stillThere.has(device.deviceSn) && record?.outcome === 'deleted') problems.push(`${device.deviceSn} recorded deleted but still registered`);
      if (!stillThere.has(device.deviceSn) && record?.outcome !== 'deleted') problems.push(`${device.deviceSn} deleted but recorded ${record?.outcome ?? 'nowhere'}`);
    }
    for (const device of missing) {
      const record = records.get(device.deviceSn);
      if (record?.outcome === 'deleted' && record.message?.startsWith('confirmed by absence') !== true) problems.push(`${device.deviceSn} never registered but recorded deleted`);
    }
    const stats = await api.control<{ maxCallsInAnySecond: number; throttled: number; total: number }>('/_emulator/stats');
    process.stdout.write(`soak: ${JSON.stringify(batch?.counts)}; ${stats.total} calls, ${stats.throttled} throttled, busiest second ${stats.maxCallsInAnySecond}; ${kills} kills\n`);
    if (stats.maxCallsInAnySecond > 480) problems.push(`busiest second ${stats.maxCallsInAnySecond} above the configured 480`);
    process.stdout.write(problems.length === 0 ? 'soak: every invariant held\n' : `soak: ${problems.length} problems:\n${problems.slice(0, 50).join('\n')}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker)));
    await context.close();
    await stopProcess(api.spawned);
    await removePrefix(prefix);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
