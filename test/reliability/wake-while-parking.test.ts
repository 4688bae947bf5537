/**
 * A resume that comes while a worker is parking a job, found by `npm run soak`: a source-IP block
 * paused the account, jobs in flight parked, the soak resumed within a quarter of a second, and
 * 94 jobs slept for the whole park safety delay (5 minutes) with nothing holding them.
 *
 * A worker parks in two steps: park.lua puts the job id into its batches' parked sets, then the
 * worker moves the job to delayed for `parkDelayMs`. A resume between the two popped the id and
 * promoted only delayed jobs: the job was still active, so it was skipped, and then moved to
 * delayed with nobody left to wake it. The wake now waits for an active job to leave `active`.
 *
 * Deterministic: a BullMQ worker without a processor takes the job (active, with its lock), the
 * real park script parks it, the batch is resumed, and only once the resume has taken the id is
 * the job moved to delayed — the worker's second step.
 */
import { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { REVOCATION_QUEUE } from '../../src/queue/keys.js';
import type { RevocationJobData } from '../../src/queue/revocation-job.js';
import { createRedis, type RedisClient } from '../../src/redis/redis-connection.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { enqueueDevices, testConfig } from '../helpers/pipeline.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

describe('a resume while a worker is parking a job', () => {
  const prefix = uniquePrefix('wakepark');
  let emulator: EmulatorHandle;
  let context: Context;
  let connection: RedisClient;
  let manual: Worker<RevocationJobData>;

  beforeAll(async () => {
    emulator = await startEmulator();
    context = openContext(testConfig(prefix, emulator), 'test-wakepark');
    connection = createRedis(TEST_REDIS_URL, { connectionName: 'test-wakepark-bullmq' });
    manual = new Worker<RevocationJobData>(REVOCATION_QUEUE, null, { connection, prefix: context.keys.prefix, lockDuration: 30_000 });
  });
  afterAll(async () => {
    await manual?.close();
    connection?.disconnect();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('wakes the job: it does not sleep out the park delay', async () => {
    const [device] = generateDevices({ mqttInstanceId: 'mqtt-cn-wakepark1', caSn: 'ca00000wakepark', count: 1, prefix: 'wakepark' });
    if (device === undefined) throw new Error('no device');
    const batchId = await enqueueDevices(context, [device]);
    await context.control.pause(batchId, 'test: paused');

    // A worker takes the job and parks it (step one): its id is in the batch's parked set.
    const token = 'test-worker-token';
    const job = await manual.getNextJob(token);
    if (job?.id === undefined) throw new Error('no job');
    const rid = job.data.revocationId ?? '';
    expect(await context.results.park(rid, job.id, [batchId], 'batch', context.keys.accountPause('test'))).toBe(true);

    // The operator resumes now; the wake takes the id while the job is still active.
    const resuming = context.control.resume(batchId);
    await waitFor(async () => (await context.redis.scard(context.keys.parked(batchId))) === 0, 'the resume to take the parked id', 60_000);
    // Step two: the worker moves the job to delayed for the park safety delay.
    await job.moveToDelayed(Date.now() + 300_000, token);
    const outcome = await resuming;

    expect(outcome.ok).toBe(true);
    // Woken at once (a wake that skipped active jobs left it delayed for five minutes).
    await waitFor(async () => ['waiting', 'prioritized'].includes(await context.queue.getJobState(job.id ?? '')), 'the job to be woken', 15_000);
    expect(outcome.woken).toBe(1);
  });
});
