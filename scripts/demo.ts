/**
 * `npm run demo`: a complete revocation on this machine, against the local emulator. Needs only a
 * Redis. Generates a sample CSV (registered devices, some not registered, some malformed rows),
 * enqueues it with the progress line, runs a worker in-process, waits, prints the summary,
 * writes the report signed with a throwaway Ed25519 key, and verifies it.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createWriteStream, createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { redisAnswers } from '../src/redis/redis-connection.js';
import { describeBatch } from '../src/cli/batch-commands.js';
import { ProgressLine } from '../src/cli/progress-line.js';
import { resolveConfig } from '../src/config/config.js';
import { DEMO_ACCOUNT, generateDevices, startEmulator } from '../src/emulator/index.js';
import { createLogger } from '../src/logging/logger.js';
import { readDeviceCsv } from '../src/producer/csv-source.js';
import { Enqueuer } from '../src/producer/enqueuer.js';
import { reportStores } from '../src/report/report-stores.js';
import { writeSealedReport } from '../src/report/sealed-report.js';
import { verifyReport } from '../src/report/report-verifier.js';
import { describeVerification } from '../src/cli/verify-commands.js';
import { openContext } from '../src/runtime/context.js';
import { startWorkerRuntime } from '../src/runtime/worker-runtime.js';

const INSTANCE = 'mqtt-cn-demo00001';
const CA = 'ca00000000000demo';
const REGISTERED = 3_000;
const UNREGISTERED = 60;

async function main(): Promise<number> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!(await redisAnswers(redisUrl))) {
    process.stderr.write(
      `No Redis answers at ${redisUrl.replace(/\/\/[^@]*@/, '//***@')}.\n` +
        'Start one, for example:\n' +
        '  redis-server --daemonize yes --maxmemory-policy noeviction\n' +
        '  (or: docker run -d -p 6379:6379 redis:7-alpine)\n' +
        'or point REDIS_URL at yours, then run npm run demo again.\n',
    );
    return 1;
  }
  const outDir = resolve('demo-output');
  await mkdir(outDir, { recursive: true });

  const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: REGISTERED, prefix: 'demo' });
  const unregistered = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: UNREGISTERED, prefix: 'demo-gone' });
  const emulator = await startEmulator({ devices, latency: { medianMs: 25, p99Ms: 120 } });
  process.stdout.write(`emulator: ${emulator.url}, ${REGISTERED} device certificates under CA ${CA}\n`);

  // The sample file an operator would get from an inventory export: a BOM, CRLF, extra columns,
  // devices that are not registered any more, duplicates, and a few malformed rows.
  const csvPath = join(outDir, 'devices.csv');
  const rows = ['\uFEFFDeviceSn,CaSn,MqttInstanceId,Owner'];
  for (const [index, device] of [...devices, ...unregistered].entries()) rows.push(`${device.deviceSn},${CA},${INSTANCE},team-${index % 7}`);
  rows.push(`${devices[0]!.deviceSn},${CA},${INSTANCE},duplicate row`);
  rows.push(`,${CA},${INSTANCE},empty serial`);
  rows.push(`has space,${CA},${INSTANCE},whitespace in serial`);
  rows.push(`${'f'.repeat(130)},${CA},${INSTANCE},too long`);
  rows.push(`abc123,${CA},Bad_Instance,bad instance id`);
  await writeFile(csvPath, `${rows.join('\r\n')}\r\n`);
  process.stdout.write(`sample CSV: ${csvPath} (${rows.length - 1} rows)\n`);

  const config = resolveConfig({
    ...process.env,
    REDIS_URL: redisUrl,
    REVOKER_PREFIX: process.env.REVOKER_PREFIX ?? '{revoker-demo}',
    MQTT_API_ENDPOINT: emulator.endpoint,
    MQTT_API_PROTOCOL: 'http',
    ALIBABA_CLOUD_ACCESS_KEY_ID: DEMO_ACCOUNT.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: DEMO_ACCOUNT.accessKeySecret,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });
  const log = createLogger(config.logLevel, 'revoker-demo');
  const context = openContext(config, 'revoker-demo');
  const runtime = await startWorkerRuntime(config, log);
  const progress = new ProgressLine(process.stdout);
  try {
    const batchId = await context.batches.create({ name: 'demo: decommission sample devices', source: 'csv', action: 'delete', createdBy: 'npm run demo' });
    // What `revoker enqueue` records for the report's header: why, the command, the input's hash.
    const { order, audit } = reportStores(context);
    await audit.set(batchId, {
      reason: 'decommission the sample fleet',
      reasonCode: 'cessationOfOperation',
      command: 'npm run demo',
      inputFile: csvPath,
      inputSha256: createHash('sha256').update(await readFile(csvPath)).digest('hex'),
    });
    const startedAt = Date.now();
    const summary = await new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: config.highWaterJobs }).enqueue(
      batchId,
      'delete',
      order.tap(batchId, 'delete', readDeviceCsv(createReadStream(csvPath))),
      (p) => progress.update(`enqueueing: read ${p.read}  accepted ${p.accepted}  rejected ${p.rejected}  duplicates ${p.duplicates}`),
    );
    progress.done();
    process.stdout.write(`batch ${batchId}: ${summary.accepted} accepted, ${summary.rejected} rejected, ${summary.duplicates} duplicates\n`);

    for (;;) {
      const batch = await context.batches.get(batchId);
      if (batch === null) throw new Error('the batch disappeared');
      const line = describeBatch(batch, runtime.gate.ratePerSecond());
      if (progress.enabled) progress.update(line, true);
      if (batch.state === 'completed' || batch.state === 'cancelled') {
        progress.done();
        process.stdout.write(`${line}\n`);
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (Date.now() - startedAt) / 1_000;
    const stats = emulator.stats();
    process.stdout.write(`took ${seconds.toFixed(1)} s; the emulator saw at most ${stats.maxCallsInAnySecond} calls in any second (cap ${config.ratePerSecond}/s), ${stats.throttled} throttled\n`);

    // A throwaway signing key: in production REPORT_SIGNING_KEY_FILE names one kept safe.
    const keys = generateKeyPairSync('ed25519');
    const keyPath = join(outDir, 'report-signing.pem');
    const publicKeyPath = join(outDir, 'report-signing.pub.pem');
    await writeFile(keyPath, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(publicKeyPath, keys.publicKey.export({ type: 'spki', format: 'pem' }));

    const reportPath = join(outDir, `report-${batchId}.csv`);
    const out = createWriteStream(reportPath);
    const finished = await context.batches.get(batchId);
    if (finished === null) throw new Error('the batch disappeared');
    const { seal, header } = await writeSealedReport(finished, out, { results: context.results, batches: context.batches, order, audit }, { format: 'csv', signingKey: keys.privateKey, generatedBy: 'npm run demo' });
    out.end();
    await once(out, 'finish');
    process.stdout.write(`report: ${reportPath}\n`);
    process.stdout.write(`  ${header.lines} lines in input order (${Object.entries(header.counts).filter(([, n]) => n > 0).map(([outcome, n]) => `${outcome} ${n}`).join(', ')}), hash-chained\n`);
    process.stdout.write(`  signed: final hash ${seal.finalHash}, key ${seal.signature?.keyFingerprint ?? '-'}\n`);
    const verification = await verifyReport(createReadStream(reportPath), { publicKey: keys.publicKey });
    process.stdout.write(describeVerification(reportPath, verification));
    process.stdout.write(`check it yourself: npx revoker verify-report ${reportPath} --public-key ${publicKeyPath}\n`);
    return verification.ok ? 0 : 1;
  } finally {
    await runtime.close();
    await context.close();
    await emulator.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
