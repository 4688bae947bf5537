/**
 * `revoker emulator`: runs the local onsmqtt API emulator as a process, for demos,
 * docker-compose and out-of-process benchmarks (driven through `/_emulator/*`).
 */
import { createReadStream } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { parse } from 'csv-parse';
import { pino } from 'pino';
import { generateDevices } from './device-generator.js';
import {
  API_IP_LIMIT_PER_SECOND,
  DEMO_ACCOUNT,
  DEFAULT_EMULATOR_OPTIONS,
  DEFAULT_IP_LIMIT_OPTIONS,
  type EmulatorDeviceSeed,
  type EmulatorOptions,
} from './emulator-options.js';
import { startEmulator, type EmulatorHandle } from './emulator-server.js';

/** The flags of `revoker emulator`, as commander hands them over (already parsed). */
export interface EmulatorCommandFlags {
  port: number;
  host: string;
  rateLimit: number;
  devices: number;
  instance: string;
  caSn: string;
  seedCsv?: string;
  latencyMedianMs: number;
  latencyP99Ms: number;
  fault503: number;
  fault500: number;
  faultDrop: number;
  faultTimeout: number;
  faultNonjson: number;
  accessKeyId?: string;
  accessKeySecret?: string;
  /** Per source IP calls/s; 0 turns the check off. */
  ipLimit: number;
  ipBlockSeconds: number;
  ipBlockStatus: number;
  ipBlockCode: string;
  ipBlockBody?: string;
}

/** Default instance and CA for generated devices. */
export const DEFAULT_EMULATOR_INSTANCE = 'mqtt-cn-emulator01';
export const DEFAULT_EMULATOR_CA_SN = 'ca0000000000emulator01';

function integerArgument(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${flag} must be an integer from ${min} to ${max}, got '${value}'.`);
    }
    return parsed;
  };
}

function numberArgument(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = value.trim() === '' ? Number.NaN : Number(value);
    if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${flag} must be a number from ${min} to ${max}, got '${value}'.`);
    }
    return parsed;
  };
}

function jsonArgument(flag: string): (value: string) => string {
  return (value) => {
    try {
      JSON.parse(value);
    } catch {
      throw new InvalidArgumentError(`${flag} must be JSON, got '${value}'.`);
    }
    return value;
  };
}

/** Reads seed devices from a CSV with a header row naming MqttInstanceId, CaSn, DeviceSn (any case). */
export async function readSeedCsv(file: string, defaults: { mqttInstanceId: string; caSn: string }): Promise<EmulatorDeviceSeed[]> {
  const parser = createReadStream(file).pipe(
    parse({ columns: (header: string[]) => header.map((h) => h.trim().toLowerCase().replace(/_/g, '')), bom: true, skip_empty_lines: true, trim: true }),
  );
  const seeds: EmulatorDeviceSeed[] = [];
  let line = 1;
  for await (const row of parser as AsyncIterable<Record<string, string | undefined>>) {
    line += 1;
    const deviceSn = row.devicesn ?? '';
    if (deviceSn === '') throw new Error(`${file} row ${line}: DeviceSn is empty or the column is missing`);
    seeds.push({
      mqttInstanceId: row.mqttinstanceid || defaults.mqttInstanceId,
      caSn: row.casn || defaults.caSn,
      deviceSn,
    });
  }
  return seeds;
}

/**
 * Turns the flags (and the environment, for the AccessKey) into emulator options. The key
 * comes from --access-key-id/--access-key-secret, else ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET,
 * else the demo pair, so a worker configured from the same environment just works.
 */
export async function emulatorOptionsFromFlags(flags: EmulatorCommandFlags, env: NodeJS.ProcessEnv = process.env): Promise<Partial<EmulatorOptions>> {
  const fromFlags = flags.accessKeyId !== undefined || flags.accessKeySecret !== undefined;
  const fromEnv = !fromFlags && (env.ALIBABA_CLOUD_ACCESS_KEY_ID !== undefined || env.ALIBABA_CLOUD_ACCESS_KEY_SECRET !== undefined);
  const source = fromFlags
    ? { id: flags.accessKeyId, secret: flags.accessKeySecret, names: '--access-key-id and --access-key-secret' }
    : fromEnv
      ? { id: env.ALIBABA_CLOUD_ACCESS_KEY_ID, secret: env.ALIBABA_CLOUD_ACCESS_KEY_SECRET, names: 'ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET' }
      : { id: DEMO_ACCOUNT.accessKeyId, secret: DEMO_ACCOUNT.accessKeySecret, names: '' };
  // Half a pair would pair a real key id with the demo secret: refuse rather than guess.
  if (!source.id || !source.secret) throw new Error(`${source.names} must be given together (one of them is missing or empty)`);
  const accessKeyId = source.id;
  const accessKeySecret = source.secret;
  const securityToken = fromEnv ? env.ALIBABA_CLOUD_SECURITY_TOKEN : undefined;
  const devices = generateDevices({ mqttInstanceId: flags.instance, caSn: flags.caSn, count: flags.devices });
  if (flags.seedCsv) devices.push(...(await readSeedCsv(flags.seedCsv, { mqttInstanceId: flags.instance, caSn: flags.caSn })));
  return {
    port: flags.port,
    host: flags.host,
    ratePerSecond: flags.rateLimit,
    accounts: [{ accessKeyId, accessKeySecret, ...(securityToken ? { securityToken } : {}) }],
    latency: { medianMs: flags.latencyMedianMs, p99Ms: flags.latencyP99Ms },
    faults: {
      ...DEFAULT_EMULATOR_OPTIONS.faults,
      serviceUnavailableRate: flags.fault503,
      internalErrorRate: flags.fault500,
      dropConnectionRate: flags.faultDrop,
      timeoutRate: flags.faultTimeout,
      nonJsonRate: flags.faultNonjson,
    },
    // The generated CA exists even with --devices 0, so listing it answers an empty page.
    cas: [{ mqttInstanceId: flags.instance, caSn: flags.caSn }],
    devices,
    ipLimitPerSecond: flags.ipLimit === 0 ? null : flags.ipLimit,
    ipBlockSeconds: flags.ipBlockSeconds,
    ipBlockStatus: flags.ipBlockStatus,
    ipBlockCode: flags.ipBlockCode,
    ipBlockBody: flags.ipBlockBody ?? null,
  };
}

/** Starts the emulator from flags, logs where it listens, and stops it on SIGTERM/SIGINT. */
export async function runEmulatorCommand(flags: EmulatorCommandFlags): Promise<EmulatorHandle> {
  const logger = pino({ name: 'revoker-emulator' });
  const options = await emulatorOptionsFromFlags(flags);
  const handle = await startEmulator(options);
  const settings = handle.settings();
  // Never the secret: only the key id, which is not sensitive on its own.
  logger.info(
    {
      url: handle.url,
      devices: handle.registry.count(),
      ratePerSecond: settings.ratePerSecond,
      ipLimitPerSecond: settings.ipLimit.ipLimitPerSecond,
      accessKeyId: options.accounts?.[0]?.accessKeyId,
    },
    `emulator listening on ${handle.url} with ${handle.registry.count()} device certificates`,
  );
  const shutdown = (signal: NodeJS.Signals): void => {
    process.off('SIGTERM', shutdown);
    process.off('SIGINT', shutdown);
    logger.info({ signal }, 'emulator stopping');
    handle.stop().then(
      () => logger.info('emulator stopped'),
      (error: unknown) => {
        logger.error({ err: error }, 'emulator did not stop cleanly');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  return handle;
}

/** Adds `emulator` to the CLI program. */
export function registerEmulatorCommand(program: Command): Command {
  return program
    .command('emulator')
    .description('run the local onsmqtt API emulator (for tests, demos and benchmarks)')
    .option('--port <n>', 'TCP port (0 picks a free one)', integerArgument('--port', 0, 65_535), 8787)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--rate-limit <n>', 'calls per second admitted per account and action (sliding 1 s window)', integerArgument('--rate-limit', 1, 1_000_000), 500)
    .option(
      '--ip-limit <n>',
      'requests per second from one source IP before it is blocked (sliding 1 s window; 0 = off)',
      integerArgument('--ip-limit', 0, 1_000_000),
      API_IP_LIMIT_PER_SECOND,
    )
    .option('--ip-block-seconds <s>', 'how long a source IP stays blocked', numberArgument('--ip-block-seconds', 0, 86_400), DEFAULT_IP_LIMIT_OPTIONS.ipBlockSeconds)
    .option('--ip-block-status <n>', 'HTTP status of the block answer', integerArgument('--ip-block-status', 200, 599), DEFAULT_IP_LIMIT_OPTIONS.ipBlockStatus)
    .option('--ip-block-code <code>', 'Code of the block answer', DEFAULT_IP_LIMIT_OPTIONS.ipBlockCode)
    .option('--ip-block-body <json>', 'the whole body of the block answer, verbatim (JSON)', jsonArgument('--ip-block-body'))
    .option('--devices <n>', 'generate this many device certificates under --instance/--ca-sn', integerArgument('--devices', 0, 10_000_000), 0)
    .option('--instance <id>', 'instance of generated devices (and CSV rows without one)', DEFAULT_EMULATOR_INSTANCE)
    .option('--ca-sn <sn>', 'CA of generated devices (and CSV rows without one)', DEFAULT_EMULATOR_CA_SN)
    .option('--seed-csv <file>', 'register the devices of a CSV with columns MqttInstanceId,CaSn,DeviceSn')
    .option('--latency-median-ms <ms>', 'median added response time', numberArgument('--latency-median-ms', 0, 600_000), DEFAULT_EMULATOR_OPTIONS.latency.medianMs)
    .option('--latency-p99-ms <ms>', '99th percentile of the added response time', numberArgument('--latency-p99-ms', 0, 600_000), DEFAULT_EMULATOR_OPTIONS.latency.p99Ms)
    .option('--fault-503 <rate>', 'share of calls answered 503 ServiceUnavailable (0..1)', numberArgument('--fault-503', 0, 1), 0)
    .option('--fault-500 <rate>', 'share of calls answered 500 InternalError (0..1)', numberArgument('--fault-500', 0, 1), 0)
    .option('--fault-drop <rate>', 'share of calls whose connection is dropped before applying (0..1)', numberArgument('--fault-drop', 0, 1), 0)
    .option('--fault-timeout <rate>', 'share of calls applied but answered too late (0..1)', numberArgument('--fault-timeout', 0, 1), 0)
    .option('--fault-nonjson <rate>', 'share of calls answered 502 with an HTML page (0..1)', numberArgument('--fault-nonjson', 0, 1), 0)
    .option('--access-key-id <id>', 'AccessKey id to accept (default: ALIBABA_CLOUD_ACCESS_KEY_ID, else the demo key)')
    .option('--access-key-secret <secret>', 'its secret (default: ALIBABA_CLOUD_ACCESS_KEY_SECRET, else the demo secret)')
    .action(async (flags: EmulatorCommandFlags) => {
      await runEmulatorCommand(flags);
    });
}
