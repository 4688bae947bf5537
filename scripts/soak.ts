/**
 * `npm run soak`: the long versions of the reliability scenarios, against processes as production
 * runs them, on a Redis of the soak's own (test/helpers/own-redis.ts: another port, AOF
 * `everysec`, so that it can be crashed):
 * - an emulator process with faults (10 % 503, 5 % timeouts that applied the delete, 1 % dropped
 *   connections, a latency tail) that also serves its call log (scripts/bench/soak-emulator.ts);
 * - three worker processes; a random one SIGKILLed (mid-call) and restarted, four times;
 * - three overlapping batches: A (normal) and B (bulk) enqueued at the same moment, both starting
 *   with the same devices (two producers registering them concurrently); C (urgent) enqueued at
 *   10 % and cancelled once each device of its own has had a call (they then retry calls whose
 *   result is unknown: one read must decide each) and it is a quarter done, or still enqueuing (its
 *   producer then stops early); B paused for 5 s and resumed;
 *   3 % of the devices were never registered, in every batch and in the shared part;
 * - a throttling storm (quota 100/s for 20 s);
 * - a Redis crash at half-way: SIGKILL with its AOF cut back by the last second (what a host crash
 *   loses), restart, then reconciler sweeps;
 * - devices scripted to be dead-lettered (some after a call whose answer was lost), redriven at
 *   the end until no dead letter is left.
 * Then the invariants (scripts/bench/soak-invariants.ts), judged against the emulator's call log,
 * and a summary: per batch the counts of each outcome and evidence, each scenario as it happened,
 * each invariant PASS/FAIL. Exits 1 if an invariant fails or a scenario did not happen (a soak that
 * did not exercise something must not pass), and keeps what it saw in a directory to look into.
 *
 *   npm run soak                      # 10,000 registered devices (+3 % never registered)
 *   SOAK_DEVICES=20000 npm run soak   # more; SOAK_KEEP=1 keeps the evidence directory on success too;
 *                                     # SOAK_JOB_LOCK_MS (3000), SOAK_DEADLINE_MS (30 min) also apply
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { resolveConfig } from '../src/config/config.js';
import type { BatchPriority } from '../src/queue/priority.js';
import { CLI_LOCK_WAIT_MS } from '../src/reconcile/reconcile-command.js';
import { nothingFixed, Reconciler, type ReconcileReport } from '../src/reconcile/reconciler.js';
import type { PendingRecord, ResultRecord } from '../src/results/result-record.js';
import { openContext } from '../src/runtime/context.js';
import { OwnRedis } from '../test/helpers/own-redis.js';
import { benchEnv, sleep, spawnLoggingEmulator, spawnWorker, stopProcessWithin, waitForWorkerStart, type EmulatorStatsView, type LoggingEmulatorProcess, type Spawned } from './bench/bench-support.js';
import { checkInvariants, type SoakBatch } from './bench/soak-invariants.js';
import { Producer, soakPlan } from './bench/soak-plan.js';
import { keepEvidence, printSummary, readEvents, type ScenarioResult } from './bench/soak-report.js';

const DEVICES = wholeNumber('SOAK_DEVICES', 10_000);
/** The soak gives up waiting after this long and checks what it has (the invariants then fail). */
const DEADLINE_MS = wholeNumber('SOAK_DEADLINE_MS', 30 * 60_000);
/**
 * JOB_LOCK_MS of the workers: short, so that a killed worker's jobs are taken over within seconds
 * (the default is 30 s). On a loaded machine locks then also lapse without a kill (a starved event
 * loop): a condition production meets more rarely, and that the soak exercises on purpose.
 */
const JOB_LOCK_MS = wholeNumber('SOAK_JOB_LOCK_MS', 3_000);
const WORKERS = 3;
const KILLS = 4;
const MAX_ATTEMPTS = 8;
/**
 * The throttling storm: the emulator's quota drops to 100/s, or to half the rate the workers were
 * calling at just before if that is lower (on a loaded machine they may not reach 100/s, and a
 * storm that throttles nothing tests nothing).
 */
const STORM = { ratePerSecond: 100, durationMs: 20_000 };
const PAUSE_MS = 5_000;
const INSTANCE = 'mqtt-cn-soak00001';
const CA = 'ca00000000000soak';

function wholeNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 100) throw new Error(`${name} must be an integer of at least 100, got '${raw}'`);
  return value;
}

function log(line: string): void {
  process.stdout.write(`soak ${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

/** What happened, for the summary and the evidence directory. */
interface Happened {
  producersOverlapMs: number;
  cEnqueuedAtDone: number | null;
  cCancelledAtDone: string | null;
  bPause: string | null;
  kills: { atMs: number; activeJobs: number }[];
  storm: { startedAtMs: number; endedAtMs: number | null; ratePerSecond: number; throttled: number } | null;
  crash: { atMs: number; restartedAtMs: number; lostBytes: number; activeJobs: number } | null;
  reconciles: { atMs: number; why: string; report: ReconcileReport | null }[];
  redrives: { round: number; redriven: number; skipped: number }[];
  unexpectedPauses: string[];
}

async function main(): Promise<number> {
  const startedAtMs = Date.now();
  const deadline = startedAtMs + DEADLINE_MS;
  const redis = await OwnRedis.start({ label: 'soak-redis' });
  let api: LoggingEmulatorProcess;
  try {
    // Blocks of the source IP last 10 s, not a minute: on a loaded machine the emulator's own stalls
    // bunch arrivals into bursts above 300/s now and then (timing, not an invariant).
    api = await spawnLoggingEmulator(['--fault-503', '0.1', '--fault-timeout', '0.05', '--fault-drop', '0.01', '--latency-median-ms', '25', '--latency-p99-ms', '200', '--ip-block-seconds', '10']);
  } catch (error) {
    await redis.remove();
    throw error;
  }
  const prefix = `{soak-${Date.now().toString(36)}}`;
  const env = benchEnv(prefix, api.endpoint, {
    REDIS_URL: redis.url,
    RATE_LIMIT_PER_SECOND: '480',
    JOB_LOCK_MS: String(JOB_LOCK_MS),
    MQTT_API_TIMEOUT_MS: '2000',
    MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    // Short backoffs: a scripted dead letter takes ~15 s of retries, not minutes.
    RETRY_BASE_MS: '200',
    RETRY_MAX_MS: '3000',
  });
  const context = openContext(resolveConfig(env), 'soak');
  context.redis.on('error', () => undefined);
  const reconciler = new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results: context.results, deadLetters: context.deadLetters, log: pino({ level: 'silent' }) });
  const workers: Spawned[] = [];
  /** Every worker process ever started (killed ones too), for the evidence directory. */
  const allWorkers: Spawned[] = [];
  const starting: Promise<void>[] = [];
  const startWorker = (): Spawned => {
    const worker = spawnWorker(env);
    allWorkers.push(worker);
    starting.push(waitForWorkerStart(worker, 60_000));
    return worker;
  };
  const happened: Happened = { producersOverlapMs: 0, cEnqueuedAtDone: null, cCancelledAtDone: null, bPause: null, kills: [], storm: null, crash: null, reconciles: [], redrives: [], unexpectedPauses: [] };
  const inFlightAtKill = new Set<string>();
  const sampleActive = async (): Promise<number> => {
    const active = await context.queue.getActive(0, -1);
    for (const job of active) if (job?.data?.deviceSn !== undefined) inFlightAtKill.add(job.data.deviceSn);
    return active.length;
  };
  try {
    for (let i = 0; i < WORKERS; i += 1) workers.push(startWorker());
    await Promise.all(starting);

    const { registered, never, onlyC, shared, devicesA, devicesB, devicesC, scripted } = soakPlan(DEVICES, MAX_ATTEMPTS, INSTANCE, CA);
    for (const list of [registered, onlyC]) for (let i = 0; i < list.length; i += 5_000) await api.control('/_emulator/devices', { devices: list.slice(i, i + 5_000) });
    for (const group of scripted) for (const device of group.devices) await api.control('/_emulator/script', { deviceSn: device.deviceSn, steps: group.steps });

    const create = (name: string, priority: BatchPriority) => context.batches.create({ name, source: 'csv', action: 'delete', createdBy: 'soak', priority });
    const [idA, idB] = await Promise.all([create('A', 'normal'), create('B', 'bulk')]);
    const producers = new Map<string, Producer>([
      [idA, new Producer(context, idA, 'A', devicesA)],
      [idB, new Producer(context, idB, 'B', devicesB)],
    ]);
    const expectedState = new Map<string, 'completed' | 'cancelled'>([
      [idA, 'completed'],
      [idB, 'completed'],
    ]);
    const pauses = new Map<string, number>([
      [idA, 0],
      [idB, 0],
    ]);
    log(`A ${idA} (${devicesA.length}) and B ${idB} (${devicesB.length}) enqueueing at once, ${shared.length} shared; ${registered.length} registered + ${never.length} never registered; ${WORKERS} workers; faults on; Redis ${redis.url}`);

    let idC: string | null = null;
    let pausedBAtMs: number | null = null;
    // Sweeps run beside the timeline: waiting for the lock (a worker sweeping) must not hold it up.
    const sweeping: { current: Promise<void> | null } = { current: null };
    let sweptAfterCrash = false;
    const sweep = (why: string): void => {
      sweeping.current ??= reconcile(reconciler, happened, why).finally(() => (sweeping.current = null));
    };
    let lastDone = -1;
    let lastMoveAtMs = Date.now();
    const totalAB = devicesA.length + devicesB.length;
    // The emulator's call count a few seconds back, for the storm's quota.
    const callRate: { atMs: number; total: number }[] = [];
    // C is cancelled once each of its own devices had a call: they are then retrying held calls.
    let ownCalledCheckedAtMs = 0;
    const ownDevicesCalled = async (): Promise<boolean> => {
      if (Date.now() - ownCalledCheckedAtMs < 1_000) return false;
      ownCalledCheckedAtMs = Date.now();
      const called = new Set((await api.calls(onlyC.map((device) => device.deviceSn))).map((call) => call.deviceSn));
      return onlyC.every((device) => called.has(device.deviceSn));
    };
    const finished = async (): Promise<boolean> => {
      const batches = await Promise.all([...producers.keys()].map((id) => context.batches.get(id).catch(() => null)));
      return idC !== null && batches.every((batch) => batch !== null && batch.finishedAt !== null);
    };

    while (Date.now() < deadline) {
      const [a, b, c] = await Promise.all([idA, idB, idC].map((id) => (id === null ? Promise.resolve(null) : context.batches.get(id).catch(() => null))));
      if (a === undefined || b === undefined || c === undefined) break;
      if (idC !== null && [a, b, c].every((batch) => batch !== null && batch.finishedAt !== null)) break;
      const doneAB = (a?.done ?? 0) + (b?.done ?? 0);
      const progress = doneAB / totalAB;
      const doneAll = doneAB + (c?.done ?? 0);
      if (doneAll !== lastDone) {
        lastDone = doneAll;
        lastMoveAtMs = Date.now();
      }
      const producersDone = [...producers.values()].every((producer) => producer.endedAtMs !== null);
      if (happened.storm === null && (callRate.at(-1)?.atMs ?? 0) < Date.now() - 5_000) {
        callRate.push({ atMs: Date.now(), total: (await api.control<EmulatorStatsView>('/_emulator/stats')).total });
        if (callRate.length > 2) callRate.shift();
      }

      // A batch paused by anything but the soak (a breaker, an account pause): noted, then resumed.
      for (const batch of [a, b, c]) {
        if (batch?.state !== 'paused' || (batch.id === idB && pausedBAtMs !== null)) continue;
        happened.unexpectedPauses.push(`${batch.name}: ${batch.reason ?? ''}`);
        pauses.set(batch.id, (pauses.get(batch.id) ?? 0) + 1);
        log(`${batch.name} paused by revoker: ${batch.reason ?? ''}; resuming it`);
        await context.control.resume(batch.id);
      }

      if (idC === null && progress >= 0.1) {
        idC = await create('C', 'urgent');
        producers.set(idC, new Producer(context, idC, 'C', devicesC));
        expectedState.set(idC, 'cancelled');
        pauses.set(idC, 0);
        happened.cEnqueuedAtDone = doneAB;
        log(`C ${idC} (urgent, ${devicesC.length}) enqueued at ${doneAB} of ${totalAB} A+B records`);
      } else if (c !== null && happened.cCancelledAtDone === null && (c.done >= (devicesC.length * 3) / 5 || ((!c.enqueued || c.done >= devicesC.length / 4) && (await ownDevicesCalled())))) {
        // Once its own devices are retrying: a quarter done, or still enqueuing (its producer then stops early).
        const outcome = await context.control.cancel(c.id, 'soak: cancelled mid-way');
        happened.cCancelledAtDone = `${c.done} of ${devicesC.length} done${c.enqueued ? '' : `, ${c.accepted} registered (during its enqueue)`}${outcome.ok ? '' : ` (refused: ${outcome.message})`}`;
        if (!outcome.ok) expectedState.set(c.id, c.state === 'completed' ? 'completed' : 'cancelled');
        log(`cancelled C at ${happened.cCancelledAtDone}: ${outcome.message}`);
      } else if (happened.bPause === null && progress >= 0.25 && b?.state === 'running') {
        const outcome = await context.control.pause(idB, `soak: paused for ${PAUSE_MS / 1_000} s`);
        if (outcome.ok) {
          pausedBAtMs = Date.now();
          pauses.set(idB, (pauses.get(idB) ?? 0) + 1);
        }
        happened.bPause = outcome.ok ? `at ${b.done} of ${devicesB.length} done` : `refused: ${outcome.message}`;
        log(`paused B: ${outcome.message}`);
      } else if (pausedBAtMs !== null && Date.now() - pausedBAtMs >= PAUSE_MS) {
        const outcome = await context.control.resume(idB);
        happened.bPause = `${happened.bPause ?? ''}, resumed after ${Math.round((Date.now() - pausedBAtMs) / 1_000)} s (${outcome.message}, ${outcome.woken} parked jobs woken)`;
        pausedBAtMs = null;
        log(`resumed B: ${outcome.message}, ${outcome.woken} parked jobs woken`);
      } else if (happened.kills.length < KILLS && progress >= ([0.15, 0.35, 0.7, 0.85][happened.kills.length] ?? 1) && (happened.kills.length < 2 || happened.crash !== null)) {
        const index = Math.floor(Math.random() * workers.length);
        const victim = workers[index] as Spawned;
        victim.child.kill('SIGKILL');
        await victim.exited;
        // Its jobs stay active until their locks lapse (JOB_LOCK_MS): what it held is all in this list.
        const activeJobs = await sampleActive();
        happened.kills.push({ atMs: Date.now(), activeJobs });
        workers[index] = startWorker();
        log(`SIGKILLed worker ${index} at ${doneAB} of ${totalAB} (${activeJobs} jobs active), started another`);
      } else if (happened.storm === null && progress >= 0.4) {
        const stats = await api.control<EmulatorStatsView>('/_emulator/stats');
        const recent = callRate.at(-1);
        const ratePerSecond = recent === undefined ? STORM.ratePerSecond : Math.max(5, Math.min(STORM.ratePerSecond, Math.floor(((stats.total - recent.total) * 1_000) / Math.max(1, Date.now() - recent.atMs) / 2)));
        await api.control('/_emulator/config', { ratePerSecond });
        happened.storm = { startedAtMs: Date.now(), endedAtMs: null, ratePerSecond, throttled: stats.throttled };
        log(`throttling storm: quota ${ratePerSecond}/s for ${STORM.durationMs / 1_000} s`);
      } else if (happened.storm !== null && happened.storm.endedAtMs === null && Date.now() - happened.storm.startedAtMs >= STORM.durationMs) {
        await api.control('/_emulator/config', { ratePerSecond: 500 });
        happened.storm.endedAtMs = Date.now();
        happened.storm.throttled = (await api.control<EmulatorStatsView>('/_emulator/stats')).throttled - happened.storm.throttled;
        log(`storm over: ${happened.storm.throttled} calls throttled`);
      } else if (happened.crash === null && happened.storm?.endedAtMs != null && progress >= 0.5 && producersDone) {
        // What a host crash loses: the last second of the AOF. Sample the active jobs during that
        // second and at the kill: a job taken then may have written a call intent Redis forgets.
        const mark = await redis.markAof();
        let activeJobs = 0;
        const markedAtMs = Date.now();
        while (Date.now() - markedAtMs < 1_000) {
          activeJobs = Math.max(activeJobs, await sampleActive());
          await sleep(100);
        }
        activeJobs = Math.max(activeJobs, await sampleActive());
        await redis.kill();
        const crashedAtMs = Date.now();
        const lostBytes = await redis.cutAof(mark);
        await sleep(500);
        await redis.run();
        happened.crash = { atMs: crashedAtMs, restartedAtMs: Date.now(), lostBytes, activeJobs };
        log(`Redis SIGKILLed at ${doneAB} of ${totalAB}, its last second (${lostBytes} bytes of AOF) cut, restarted`);
      } else if (happened.crash !== null && !sweptAfterCrash && sweeping.current === null && Date.now() - happened.crash.restartedAtMs >= 15_000) {
        // What an operator does after the restart: `revoker reconcile` (the workers also sweep every minute).
        sweptAfterCrash = true;
        sweep('after the Redis crash');
      } else if (Date.now() - lastMoveAtMs >= 20_000 && producersDone && sweeping.current === null) {
        sweep(`no progress for ${Math.round((Date.now() - lastMoveAtMs) / 1_000)} s`);
        lastMoveAtMs = Date.now();
      }
      await sleep(250);
    }
    if (happened.storm !== null && happened.storm.endedAtMs === null) await api.control('/_emulator/config', { ratePerSecond: 500 });
    await sweeping.current;
    await Promise.all([...producers.values()].map((producer) => producer.done));
    const [startA, startB] = [producers.get(idA), producers.get(idB)].map((producer) => producer?.startedAtMs ?? 0);
    const [endA, endB] = [producers.get(idA), producers.get(idB)].map((producer) => producer?.endedAtMs ?? 0);
    happened.producersOverlapMs = Math.max(0, Math.min(endA ?? 0, endB ?? 0) - Math.max(startA ?? 0, startB ?? 0));

    // Dead letters go back until none is left; a redrive reopens completed batches.
    const failedBeforeRedrive = new Map<string, number>();
    for (const id of producers.keys()) failedBeforeRedrive.set(id, (await context.batches.get(id))?.counts.failed ?? 0);
    const redriveStartedAtMs = Date.now();
    let redrove = false;
    for (let round = 1; round <= 3 && Date.now() < deadline && (await context.deadLetters.count()) > 0; round += 1) {
      const summary = await context.deadLetters.redrive();
      redrove = true;
      happened.redrives.push({ round, ...summary });
      log(`redrive round ${round}: ${summary.redriven} redriven, ${summary.skipped} skipped (no batch could take them back)`);
      while (Date.now() < deadline && !(await finished())) await sleep(500);
    }
    // A last sweep: what a crash left must have been found by now.
    await reconcile(reconciler, happened, 'at the end');
    const runMs = Date.now() - startedAtMs;

    // Everything stops before the evidence is read: nothing moves while it is collected.
    await Promise.all(workers.map((worker) => stopProcessWithin(worker, 30_000)));
    const workersStarted = await Promise.allSettled(starting);
    const calls = await api.calls();
    const left = await api.control<{ devices: { deviceSn: string }[] }>(`/_emulator/devices?mqttInstanceId=${INSTANCE}&caSn=${CA}`);
    const stats = await api.control<EmulatorStatsView>('/_emulator/stats');
    const events = await readEvents(context);
    const batches: SoakBatch[] = [];
    for (const [id, producer] of producers) {
      const batch = await context.batches.get(id);
      const records: (ResultRecord | PendingRecord)[] = [];
      for await (const record of context.results.scan(id)) records.push(record);
      batches.push({
        batchId: id,
        name: producer.name,
        state: batch?.state ?? 'gone',
        accepted: batch?.accepted ?? 0,
        done: batch?.done ?? 0,
        counts: batch?.counts ?? {},
        finishedAt: batch?.finishedAt ?? null,
        // A producer stopped by a cancel registered a prefix of its input (REGISTERs run in input
        // order): the devices it reported accepted.
        deviceSns: producer.devices.slice(0, producer.summary?.stoppedEarly === true ? producer.summary.accepted : producer.devices.length).map((device) => device.deviceSn),
        reportedAccepted: producer.summary?.accepted ?? null,
        windows: producer.windows(),
        records,
        events: events.filter((event) => event.batchId === id),
        expectedState: expectedState.get(id) ?? 'completed',
        pauses: pauses.get(id) ?? 0,
        redriveStartedAtMs: redrove ? redriveStartedAtMs : null,
        failedBeforeRedrive: failedBeforeRedrive.get(id) ?? 0,
      });
    }
    const world = {
      calls,
      registered: new Set([...registered, ...onlyC].map((device) => device.deviceSn)),
      never: new Set(never.map((device) => device.deviceSn)),
      stillRegistered: new Set(left.devices.map((device) => device.deviceSn)),
      inFlightAtKill,
      redisCrashesAtMs: happened.crash === null ? [] : [happened.crash.atMs],
    };
    const invariants = checkInvariants(batches, world);

    // Did each scenario really happen? A soak that skipped one must not pass.
    const cRecords = batches.find((batch) => batch.batchId === idC)?.records ?? [];
    // How the scripted dead letters ended, per group and batch.
    const scriptedEnds = scripted.map((group) => {
      const sns = new Set(group.devices.map((device) => device.deviceSn));
      const ends = new Map<string, number>();
      for (const batch of batches) {
        for (const record of batch.records) {
          if (!sns.has(record.deviceSn)) continue;
          const key = `${batch.name} ${record.outcome}/${'evidence' in record ? (record.evidence ?? '-') : '-'}`;
          ends.set(key, (ends.get(key) ?? 0) + 1);
        }
      }
      return { group, ends };
    });
    // A call applied with its answer lost, then dead-lettered and redriven: "not registered" after it is `gone`.
    const lostThenRedriven = scriptedEnds.filter(({ group }) => group.steps[0] === 'timeout' && !group.what.startsWith('C only'));
    const lostEndGone = lostThenRedriven.every(({ ends }) => [...ends.keys()].every((key) => key.endsWith(' gone/answer')));
    const scenarios: ScenarioResult[] = [
      ['A and B enqueued at the same time', happened.producersOverlapMs > 0, `producers overlapped for ${happened.producersOverlapMs} ms; ${shared.length} devices in both`],
      ['C (urgent) cancelled mid-way', idC !== null && cRecords.some((record) => record.outcome === 'cancelled') && cRecords.some((record) => record.outcome !== 'cancelled'), `enqueued at ${happened.cEnqueuedAtDone ?? '-'} A+B records; cancelled at ${happened.cCancelledAtDone ?? 'never'}`],
      ['B paused and resumed', happened.bPause?.includes('resumed') === true, happened.bPause ?? 'never'],
      [`${KILLS} worker SIGKILLs mid-run`, happened.kills.length === KILLS && happened.kills.some((kill) => kill.activeJobs > 0) && workersStarted.every((started) => started.status === 'fulfilled'), `${happened.kills.length} kills; active jobs at each: ${happened.kills.map((kill) => kill.activeJobs).join(', ')}`],
      ['throttling storm', (happened.storm?.throttled ?? 0) > 0, happened.storm === null ? 'never' : `quota ${happened.storm.ratePerSecond}/s for ${STORM.durationMs / 1_000} s: ${happened.storm.throttled} calls throttled during it, ${stats.throttled} in all`],
      ['Redis SIGKILL, AOF cut, restart, reconcile', happened.crash !== null && happened.crash.lostBytes > 0 && happened.reconciles.some((one) => one.atMs > (happened.crash?.restartedAtMs ?? 0) && one.report !== null), happened.crash === null ? 'never' : `${happened.crash.lostBytes} bytes of AOF lost, ${happened.crash.activeJobs} jobs active; sweeps: ${happened.reconciles.map((sweep) => `${sweep.why}: ${describeSweep(sweep.report)}`).join('; ')}`],
      [
        'dead letters redriven',
        happened.redrives.some((round) => round.redriven > 0) && (await context.deadLetters.count()) === 0,
        `${happened.redrives.map((round) => `round ${round.round}: ${round.redriven} redriven, ${round.skipped} skipped`).join('; ') || 'none'}; scripted: ${scriptedEnds.map(({ group, ends }) => `${group.what} (${group.devices.length}): ${[...ends].map(([key, count]) => `${key} ${count}`).join(', ')}`).join('; ')}`,
      ],
      [
        'a cancel after a lost answer: one read decides',
        cRecords.some((record) => record.outcome === 'gone' && 'evidence' in record && record.evidence === 'read') && cRecords.some((record) => record.outcome === 'cancelled' && 'evidence' in record && record.evidence === 'read'),
        `C: ${cRecords.filter((record) => 'evidence' in record && record.evidence === 'read').length} records decided by a read (${['gone', 'cancelled'].map((outcome) => `${outcome}/read ${cRecords.filter((record) => record.outcome === outcome && 'evidence' in record && record.evidence === 'read').length}`).join(', ')}); its own devices: ` +
          scriptedEnds
            .filter(({ group }) => group.what.startsWith('C only'))
            .map(({ group, ends }) => `${group.what}: ${[...ends].map(([key, count]) => `${key} ${count}`).join(', ')}`)
            .join('; '),
      ],
      ['redrive keeps a lost answer: such devices end gone', lostEndGone && lostThenRedriven.length > 0, lostThenRedriven.map(({ group, ends }) => `${group.what}: ${[...ends].map(([key, count]) => `${key} ${count}`).join(', ')}`).join('; ')],
      ['never-registered devices in every batch', batches.every((batch) => batch.deviceSns.some((deviceSn) => world.never.has(deviceSn))), `${never.length} (${((100 * never.length) / (registered.length + never.length)).toFixed(1)} %)`],
      // Information: revoker pausing on its own (a source-IP block, a breaker) is revoker doing its job; resumed as an operator would.
      ['pauses revoker made itself', null, happened.unexpectedPauses.join('; ') || 'none'],
    ];

    printSummary(`soak: ${DEVICES} registered devices, ${Math.round(runMs / 1_000)} s`, batches, scenarios, invariants, stats);
    const failed = invariants.some((invariant) => invariant.violations.length > 0 || invariant.checked === 0) || scenarios.some(([, ok]) => ok === false);
    if (failed || process.env.SOAK_KEEP === '1') {
      const dir = join(tmpdir(), `revoker-soak-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      const marks = Object.fromEntries([...producers.values()].map((producer) => [producer.name, producer.marks]));
      await keepEvidence(dir, { batches, calls, events, happened, invariants, scripted, marks, stillRegistered: [...world.stillRegistered], inFlightAtKill: [...inFlightAtKill] }, allWorkers, api.spawned);
      log(`evidence kept in ${dir}`);
    }
    return failed ? 1 : 0;
  } finally {
    await Promise.all(workers.map((worker) => stopProcessWithin(worker, 30_000)));
    await context.close().catch(() => undefined);
    await stopProcessWithin(api.spawned, 10_000);
    await redis.remove();
  }
}

async function reconcile(reconciler: Reconciler, happened: Happened, why: string): Promise<void> {
  const startedAtMs = Date.now();
  // As long as `revoker reconcile` waits: a worker's sweep of a large, busy Redis can take minutes.
  const report = await reconciler.runOnce(undefined, CLI_LOCK_WAIT_MS).catch((error: unknown) => {
    log(`reconciler sweep (${why}) failed: ${String(error)}`);
    return null;
  });
  happened.reconciles.push({ atMs: Date.now(), why, report });
  log(`reconciler sweep ${why} (${Math.round((Date.now() - startedAtMs) / 1_000)} s with the wait for the lock): ${describeSweep(report)}`);
}

function describeSweep(report: ReconcileReport | null): string {
  if (report === null) return 'no lock or failed';
  if (nothingFixed(report)) return 'nothing to fix';
  return JSON.stringify({ ...report, requeued: report.requeued.length });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
