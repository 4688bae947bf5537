/**
 * The ledger's scripts one by one against a real Redis (issue 11, parts 1, 3, 6): REGISTER
 * subscribes batches to one job per revocation and is idempotent per request id; FINALIZE writes
 * every subscriber and never into an expired batch; MARK_ENQUEUED emits one event however often it
 * is sent; retention counts from a batch's finish; unsubscribe, close and redrive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { resolveConfig } from '../../src/config/config.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import { revocationId } from '../../src/queue/job-id.js';
import { classOf } from '../../src/queue/priority.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { pendingPlaceholder } from '../../src/results/result-store.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-ledger0001';
const CA = 'ca0000000000ledger';

describe('ledger scripts', () => {
  const prefix = uniquePrefix('ledger');
  let context: Context;

  beforeAll(() => {
    context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, LOG_LEVEL: 'silent', RESULT_RETENTION_DAYS: '2' }), 'test-ledger');
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
  });

  function device(deviceSn: string) {
    return { mqttInstanceId: INSTANCE, caSn: CA, deviceSn };
  }

  function entry(batchId: string, deviceSn: string, instance = INSTANCE) {
    const ref = { ...device(deviceSn), mqttInstanceId: instance };
    return { field: revocationId(ref, 'delete'), instance, placeholder: pendingPlaceholder({ batchId, ...ref, action: 'delete' }) };
  }

  function record(batchId: string, deviceSn: string, outcome: ResultRecord['outcome'] = 'deleted'): ResultRecord {
    return { batchId, ...device(deviceSn), action: 'delete', outcome, evidence: 'answer', attempts: 1, requestId: 'REQ', errorCode: null, httpStatus: 200, message: null, firstAttemptAt: null, finishedAt: new Date().toISOString() };
  }

  async function newBatch(name: string): Promise<string> {
    return context.batches.create({ name, source: 'csv', action: 'delete', createdBy: 'test' });
  }

  async function outboxFor(batchId: string): Promise<string[]> {
    const all = await context.redis.lrange(context.keys.eventsOutbox(), 0, -1);
    return all.map((raw) => JSON.parse(raw) as { batchId: string; state: string }).filter((event) => event.batchId === batchId).map((event) => event.state);
  }

  it('REGISTER: a device two batches ask for is one job with two subscribers; a duplicate in one batch is counted', async () => {
    const a = await newBatch('a');
    const b = await newBatch('b');
    const rid = revocationId(device('shared-1'), 'delete');
    expect(await context.results.registerRevocations(a, [entry(a, 'shared-1'), entry(a, 'only-a'), entry(a, 'shared-1')])).toEqual([
      { flag: 'queue', jobId: `${rid}-1` },
      { flag: 'queue', jobId: `${revocationId(device('only-a'), 'delete')}-1` },
      { flag: 'duplicate', jobId: '' },
    ]);
    expect(await context.results.registerRevocations(b, [entry(b, 'shared-1')])).toEqual([{ flag: 'following', jobId: `${rid}-1` }]);
    expect((await context.results.subscribersOf(`${rid}-1`)).sort()).toEqual([a, b].sort());
    expect(await context.batches.get(a)).toMatchObject({ accepted: 2, duplicates: 1 });
    expect(await context.results.revocation(rid)).toMatchObject({ job: `${rid}-1`, gen: 1, openedBy: a });
  });

  it('REGISTER resent with the same request id (a reply lost to a reconnect) changes nothing', async () => {
    const batchId = await newBatch('resent');
    const devices = [entry(batchId, 'resent-1'), entry(batchId, 'resent-2')];
    const first = await context.results.registerRevocations(batchId, devices, 'req-1');
    const again = await context.results.registerRevocations(batchId, devices, 'req-1');
    expect(again).toEqual(first);
    expect(first.map((answer) => answer.flag)).toEqual(['queue', 'queue']);
    expect(await context.batches.get(batchId)).toMatchObject({ accepted: 2, duplicates: 0 });
    expect((await context.results.revocation(devices[0]!.field))?.gen).toBe(1);
    // A new request id for the same devices is a real duplicate.
    expect((await context.results.registerRevocations(batchId, devices, 'req-2')).map((answer) => answer.flag)).toEqual(['duplicate', 'duplicate']);
    expect(await context.batches.get(batchId)).toMatchObject({ accepted: 2, duplicates: 2 });
  });

  it('FINALIZE writes every pending subscriber with its own batch id, closes the job; the next batch opens a new generation', async () => {
    const a = await newBatch('fa');
    const b = await newBatch('fb');
    const [opened] = await context.results.registerRevocations(a, [entry(a, 'fin-1')]);
    await context.results.registerRevocations(b, [entry(b, 'fin-1')]);
    const rid = revocationId(device('fin-1'), 'delete');
    expect((await context.results.finalizeRevocation(rid, opened!.jobId, record(a, 'fin-1'))).sort()).toEqual([a, b].sort());
    expect(await context.results.get(a, rid)).toMatchObject({ outcome: 'deleted', batchId: a });
    expect(await context.results.get(b, rid)).toMatchObject({ outcome: 'deleted', batchId: b, requestId: 'REQ' });
    expect(await context.results.revocation(rid)).toMatchObject({ job: null, gen: 1 });
    expect(await context.redis.exists(context.keys.subscribers(opened!.jobId))).toBe(0);
    expect(await context.redis.ttl(context.keys.revocation(rid))).toBeGreaterThan(0);
    // Run twice (a stalled duplicate run): nothing is written twice.
    expect(await context.results.finalizeRevocation(rid, opened!.jobId, record(a, 'fin-1', 'not_found'))).toEqual([]);
    expect(await context.batches.get(b)).toMatchObject({ done: 1, counts: expect.objectContaining({ deleted: 1, not_found: 0 }) as unknown });
    // A later batch gets a job of its own: generation 2, never swallowed by a lingering `-1` hash.
    const c = await newBatch('fc');
    expect(await context.results.registerRevocations(c, [entry(c, 'fin-1')])).toEqual([{ flag: 'queue', jobId: `${rid}-2` }]);
    expect(await context.redis.ttl(context.keys.revocation(rid))).toBe(-1);
    // A stale run of generation 1 does not close generation 2.
    await context.results.finalizeRevocation(rid, opened!.jobId, record(a, 'fin-1'));
    expect((await context.results.revocation(rid))?.job).toBe(`${rid}-2`);
  });

  it('MARK_ENQUEUED sent twice emits one completion event; open batches never expire, finished ones keep the retention', async () => {
    const batchId = await newBatch('ttl');
    const [answer] = await context.results.registerRevocations(batchId, [entry(batchId, 'ttl-1')]);
    await context.batches.addRejected(batchId, [{ line: 3, reason: 'bad row' }]);
    const audit = new AuditTrail(context.redis, context.keys, 30);
    await audit.record({ action: 'enqueue', batchId, actor: 'test', from: 'test', args: {}, ok: true });
    await context.redis.zadd(`${context.keys.batch(batchId)}:order`, 1, 'ttl-1');
    const trailKeys = [context.keys.auditOf(batchId), `${context.keys.batch(batchId)}:order`];
    for (const key of [context.keys.batch(batchId), context.keys.results(batchId), context.keys.rejected(batchId), ...trailKeys]) expect(await context.redis.ttl(key)).toBe(-1);
    expect(await context.results.markEnqueued(batchId)).toBe('running');
    expect(await context.results.markEnqueued(batchId)).toBe('running');
    expect(await outboxFor(batchId)).toEqual([]);
    await context.results.finalizeRevocation(revocationId(device('ttl-1'), 'delete'), answer!.jobId, record(batchId, 'ttl-1'));
    expect(await context.batches.get(batchId)).toMatchObject({ state: 'completed' });
    expect(await outboxFor(batchId)).toEqual(['completed']);
    // A resent MARK_ENQUEUED after the completion: still one event.
    await context.results.markEnqueued(batchId);
    expect(await outboxFor(batchId)).toEqual(['completed']);
    // An entry after the finish keeps the batch's remaining time, not a fresh retention.
    await audit.record({ action: 'redrive', batchId, actor: 'test', from: 'test', args: {}, ok: true });
    for (const key of [context.keys.batch(batchId), context.keys.results(batchId), context.keys.rejected(batchId), ...trailKeys]) {
      const ttl = await context.redis.ttl(key);
      expect(ttl).toBeGreaterThan(2 * 86_400 - 60);
      expect(ttl).toBeLessThanOrEqual(2 * 86_400);
    }
    // A batch that finishes with no device at all completes at MARK_ENQUEUED, once.
    const empty = await newBatch('empty');
    await context.results.markEnqueued(empty);
    await context.results.markEnqueued(empty);
    expect(await outboxFor(empty)).toEqual(['completed']);
  });

  it('FINALIZE never writes into an expired subscriber (no key recreated without a TTL)', async () => {
    const a = await newBatch('alive');
    const b = await newBatch('expired');
    const [opened] = await context.results.registerRevocations(a, [entry(a, 'exp-1')]);
    await context.results.registerRevocations(b, [entry(b, 'exp-1')]);
    await context.redis.del(context.keys.batch(b), context.keys.results(b), context.keys.instances(b));
    const rid = revocationId(device('exp-1'), 'delete');
    expect(await context.results.finalizeRevocation(rid, opened!.jobId, record(a, 'exp-1'))).toEqual([a]);
    expect(await context.redis.exists(context.keys.batch(b), context.keys.results(b))).toBe(0);
  });

  it('unsubscribe writes `cancelled` into the leaving batch only; close refuses while a batch is subscribed', async () => {
    const a = await newBatch('ua');
    const b = await newBatch('ub');
    const [opened] = await context.results.registerRevocations(a, [entry(a, 'uns-1')]);
    const rid = revocationId(device('uns-1'), 'delete');
    await context.results.registerRevocations(b, [entry(b, 'uns-1')]);
    expect(await context.results.unsubscribe(opened!.jobId, rid, a, record(a, 'uns-1', 'cancelled'))).toBe(true);
    expect(await context.results.get(a, rid)).toMatchObject({ outcome: 'cancelled', batchId: a });
    expect(await context.results.get(b, rid)).toMatchObject({ outcome: 'pending' });
    expect(await context.results.closeRevocation(rid, opened!.jobId)).toBe(false);
    expect(await context.results.unsubscribe(opened!.jobId, rid, b, null)).toBe(false);
    expect(await context.results.closeRevocation(rid, opened!.jobId)).toBe(true);
    expect((await context.results.revocation(rid))?.job).toBeNull();
  });

  it('redrive reopens `failed` in every subscriber and opens a generation; against another open job it follows it', async () => {
    const a = await newBatch('ra');
    const b = await newBatch('rb');
    const [opened] = await context.results.registerRevocations(a, [entry(a, 'red-1')]);
    await context.results.registerRevocations(b, [entry(b, 'red-1')]);
    for (const batchId of [a, b]) await context.results.markEnqueued(batchId);
    const rid = revocationId(device('red-1'), 'delete');
    await context.results.finalizeRevocation(rid, opened!.jobId, record(a, 'red-1', 'failed'));
    expect(await context.batches.get(b)).toMatchObject({ state: 'completed' });
    const candidates = [a, b].map((batchId) => ({ batchId, placeholder: entry(batchId, 'red-1').placeholder }));
    const answer = await context.results.redrive(rid, `dl-${opened!.jobId}`, candidates, true);
    expect(answer).toMatchObject({ flag: 'queue', jobId: `${rid}-2` });
    expect(answer.reopened.sort()).toEqual([a, b].sort());
    expect(await context.batches.get(b)).toMatchObject({ state: 'running', done: 0, counts: expect.objectContaining({ failed: 0 }) as unknown, finishedAt: null });
    expect(await context.redis.ttl(context.keys.batch(b))).toBe(-1);
    expect(await context.results.revocation(rid)).toMatchObject({ job: `${rid}-2`, redrivenFrom: `dl-${opened!.jobId}` });
    // Redriven again while generation 2 is open: nothing is reopened twice, nothing new opened.
    expect(await context.results.redrive(rid, 'dl-x', candidates, false)).toMatchObject({ flag: 'following', jobId: `${rid}-2` });
    expect(await context.batches.get(b)).toMatchObject({ done: 0, counts: expect.objectContaining({ failed: 0 }) as unknown });
    // Nobody can take it back (cancelled): no job.
    const cancelled = await newBatch('rx');
    await context.results.register(cancelled, [entry(cancelled, 'red-1')]);
    await context.results.finalize(rid, record(cancelled, 'red-1', 'failed'));
    await context.batches.cancel(cancelled, 'test');
    expect((await context.results.redrive(rid, 'dl-y', [{ batchId: cancelled, placeholder: entry(cancelled, 'red-1').placeholder }], false)).flag).toBe('none');

    // A third batch's dead letter of the same device while generation 2 is open: it follows it, and
    // the job's runs learn that an earlier call's answer was lost.
    const c = await newBatch('rc');
    await context.results.register(c, [entry(c, 'red-1')]);
    await context.results.finalize(rid, record(c, 'red-1', 'failed'));
    const follow = await context.results.redrive(rid, 'dl-c', [{ batchId: c, placeholder: entry(c, 'red-1').placeholder }], true);
    expect(follow).toMatchObject({ flag: 'following', jobId: `${rid}-2`, reopened: [c] });
    const view = await context.results.readSubscribers(rid, `${rid}-2`, context.keys.accountPause('none'));
    expect(view.lostAnswer).toBe(true);
    expect(view.subscribers.map((subscriber) => subscriber.batchId).sort()).toEqual([a, b, c].sort());
  });

  it('a call whose ledger entry a Redis crash took: the generation that reopens that job id starts with its answer lost', async () => {
    const rid = revocationId(device('lost-1'), 'delete');
    const other = revocationId(device('lost-2'), 'delete');
    // A call of the worker's whose revocation finished before the crash (its entry survived).
    const done = revocationId(device('lost-done'), 'delete');
    const d = await newBatch('lost-d');
    const [doneJob] = await context.results.registerRevocations(d, [entry(d, 'lost-done')]);
    await context.results.finalizeRevocation(done, doneJob!.jobId, record(d, 'lost-done'));
    // After the restart: no entry for lost-1 and lost-2 (the chunk that opened them was lost); a
    // worker names the calls it made for `<rid>-1`, `<other>-1` and the finished one.
    expect(await context.results.markLostAnswers([{ rid, jobId: `${rid}-1` }, { rid: other, jobId: `${other}-1` }, { rid: done, jobId: doneJob!.jobId }])).toBe(0);
    expect(await context.redis.ttl(context.keys.lostMarks())).toBeGreaterThan(3_000);
    // The producer sends the chunk again: generation 1 opens with the mark.
    const a = await newBatch('lost-a');
    const answer = await context.results.registerChunk(a, { devices: [entry(a, 'lost-1')] }, 'req-lost-a');
    expect(answer).toMatchObject({ cached: false, answers: [{ flag: 'queue', jobId: `${rid}-1` }] });
    expect((await context.results.readSubscribers(rid, `${rid}-1`, context.keys.accountPause('none'))).lostAnswer).toBe(true);
    // The mark was taken once: the other device's stays until its job id opens; the finished
    // revocation's call got none (its generation is in the entry).
    expect(await context.redis.hkeys(context.keys.lostMarks())).toEqual([`${other}-1`]);
    // Sent once more (the same request id): the first answer, marked as such, and nothing written.
    const again = await context.results.registerChunk(a, { devices: [entry(a, 'lost-1')] }, 'req-lost-a');
    expect(again).toMatchObject({ cached: true, answers: answer.answers });
    expect(await context.batches.get(a)).toMatchObject({ accepted: 1, duplicates: 0 });
    // A device with no mark opens without one.
    const fresh = await context.results.registerChunk(a, { devices: [entry(a, 'lost-3')] }, 'req-lost-b');
    const freshRid = revocationId(device('lost-3'), 'delete');
    expect((await context.results.readSubscribers(freshRid, fresh.answers[0]!.jobId, context.keys.accountPause('none'))).lostAnswer).toBe(false);
  });

  it('park records the job in each batch and in the ledger; a batch that subscribes then learns it must wake it', async () => {
    const a = await newBatch('pa');
    const [opened] = await context.results.registerRevocations(a, [entry(a, 'park-1')]);
    const rid = revocationId(device('park-1'), 'delete');
    // Not while a subscriber runs (a resume came between the job's read and its park).
    expect(await context.results.park(rid, opened!.jobId, [a], 'batch', context.keys.accountPause('none'))).toBe(false);
    expect(await context.results.park(rid, opened!.jobId, [a], 'account', context.keys.accountPause('none'))).toBe(false);
    await context.batches.pause(a, 'test');
    expect(await context.results.park(rid, opened!.jobId, [a], 'batch', context.keys.accountPause('none'))).toBe(true);
    expect(await context.redis.smembers(context.keys.parked(a))).toEqual([opened!.jobId]);
    const b = await newBatch('pb');
    expect(await context.results.registerRevocations(b, [entry(b, 'park-1')])).toEqual([{ flag: 'following_parked', jobId: opened!.jobId }]);
    // Running again clears the mark.
    await context.results.readSubscribers(rid, opened!.jobId, context.keys.accountPause('none'));
    const c = await newBatch('pc');
    expect(await context.results.registerRevocations(c, [entry(c, 'park-1')])).toEqual([{ flag: 'following', jobId: opened!.jobId }]);
  });

  it("an urgent batch that follows a bulk batch's jobs raises them to urgent; the bulk batch's others stay bulk (symptom 2)", async () => {
    const deviceSns = Array.from({ length: 30 }, (_, index) => `prio-${index}`);
    const bulk = await context.batches.create({ name: 'bulk', source: 'csv', action: 'delete', createdBy: 'test', priority: 'bulk' });
    const urgent = await context.batches.create({ name: 'urgent', source: 'csv', action: 'delete', createdBy: 'test', priority: 'urgent' });
    const items = (ids: string[]) => ids.map((deviceSn, index) => ({ kind: 'device' as const, request: { ...device(deviceSn), line: index + 2 } }));
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(bulk, 'delete', items(deviceSns));
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(urgent, 'delete', items(deviceSns.slice(0, 10)));
    for (const [index, deviceSn] of deviceSns.entries()) {
      const job = await context.queue.getJob(`${revocationId(device(deviceSn), 'delete')}-1`);
      expect(classOf(job?.priority), deviceSn).toBe(index < 10 ? 'urgent' : 'bulk');
    }
    // And a bulk batch following urgent jobs never lowers them.
    const later = await context.batches.create({ name: 'bulk-2', source: 'csv', action: 'delete', createdBy: 'test', priority: 'bulk' });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(later, 'delete', items(deviceSns.slice(0, 5)));
    expect(classOf((await context.queue.getJob(`${revocationId(device(deviceSns[0]!), 'delete')}-1`))?.priority)).toBe('urgent');
  });
});
