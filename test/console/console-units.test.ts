/**
 * The console's pure parts (escaping, the same-origin rule, confirmations with their numbers,
 * rates, the ring) and its sampler against a real Redis: budgets with their last second, the
 * adaptive rate, a throttled second marked once, a paused account marked refused, batch rates.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/batches/batch.js';
import { BatchStore } from '../../src/batches/batch-store.js';
import { Keys } from '../../src/queue/keys.js';
import { sameOrigin } from '../../src/server/console/console-auth.js';
import { accountKeyOf, ConsoleSampler, progressRate } from '../../src/server/console/console-sampler.js';
import { html, percent, raw } from '../../src/server/console/html.js';
import { sseEvent } from '../../src/server/console/live-hub.js';
import { RingBuffer } from '../../src/server/console/ring-buffer.js';
import { availableActions, confirmationOf, reasonFromForm } from '../../src/server/console/steering.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

function batch(overrides: Partial<Batch> = {}): Batch {
  return {
    id: 'b-1',
    name: 'leaked.csv',
    source: 'csv',
    action: 'delete',
    priority: 'normal',
    createdBy: 'token:admin',
    createdAt: '2026-12-01T08:00:00.000Z',
    finishedAt: null,
    state: 'running',
    reason: null,
    inputNote: null,
    enqueued: true,
    accepted: 100_000,
    rejected: 3,
    duplicates: 0,
    done: 58_793,
    counts: { deleted: 58_000, inactivated: 0, not_found: 700, gone: 1, failed: 12, cancelled: 80 },
    eventsFailed: 0,
    ...overrides,
  };
}

describe('console pure parts', () => {
  it('escapes every interpolation, control and bidi characters included, and keeps nested templates', () => {
    const name = '<script>alert("x")</script>\u202e\u001b[2K';
    const out = html`<p title="${name}">${name} ${html`<b>${'a&b'}</b>`} ${raw('<i>ok</i>')} ${null}${false}${[1, 2]}</p>`.value;
    expect(out).not.toContain('<script>');
    expect(out).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\\u202e\\x1b[2K');
    expect(out).toContain('<b>a&amp;b</b> <i>ok</i> 12</p>');
    expect(percent(999, 1000)).toBe('99.9 %');
    expect(percent(999_999, 1_000_000)).toBe('99.9 %');
    expect(percent(1000, 1000)).toBe('100 %');
  });

  it('takes a state-changing request as same-origin only when the browser says so', () => {
    const table: [Parameters<typeof sameOrigin>[0], boolean][] = [
      [{ 'sec-fetch-site': 'same-origin', host: 'revoker:8080' }, true],
      [{ 'sec-fetch-site': 'same-site', host: 'revoker:8080', origin: 'http://revoker:8080' }, false],
      [{ 'sec-fetch-site': 'cross-site', host: 'revoker:8080', origin: 'http://revoker:8080' }, false],
      [{ origin: 'http://revoker:8080', host: 'revoker:8080' }, true],
      [{ origin: 'https://evil.example', host: 'revoker:8080' }, false],
      [{ origin: 'null', host: 'revoker:8080' }, false],
      [{ host: 'revoker:8080' }, false],
    ];
    for (const [headers, expected] of table) expect(sameOrigin(headers), JSON.stringify(headers)).toBe(expected);
  });

  it('says what an action will do with the batch\'s numbers, and when it cannot be done', () => {
    const running = batch();
    expect(availableActions(running)).toEqual(['pause', 'cancel', 'priority', 'redrive']);
    const cancel = confirmationOf(running, 'cancel');
    expect(cancel.button).toBe('Cancel 41,207 devices not yet revoked');
    expect(cancel.details.join(' ')).toContain('58,793 devices already finished keep their outcomes');
    expect(cancel.unavailable).toBeNull();
    expect(confirmationOf(running, 'pause').button).toBe('Pause: stop calls for 41,207 devices not yet revoked');
    expect(confirmationOf(running, 'resume').unavailable).toContain('running');
    expect(confirmationOf(running, 'priority', 'urgent').button).toBe('Make 41,207 devices not yet revoked urgent');
    expect(confirmationOf(running, 'priority', 'normal').unavailable).toContain('already normal');
    expect(confirmationOf(running, 'redrive').button).toBe('Redrive 12 devices recorded failed');
    const paused = batch({ state: 'paused', reason: 'not_found breaker: 60 of the first 100' });
    const resume = confirmationOf(paused, 'resume', null, ['credentials refused']);
    expect(resume.details.join(' ')).toContain('not_found breaker');
    expect(resume.details.join(' ')).toContain('account-wide pause (credentials refused)');
    const done = batch({ state: 'completed', done: 100_000, finishedAt: '2026-12-01T09:00:00.000Z', counts: { ...running.counts, failed: 0 } });
    expect(availableActions(done)).toEqual([]);
    expect(() => reasonFromForm('bad\u001b[2K')).toThrow(/control character/);
    expect(reasonFromForm('  INC-123  ')).toBe('INC-123');
    expect(reasonFromForm('   ')).toBeNull();
  });

  it('computes rates and keeps a bounded ring; writes SSE events line by line', () => {
    expect(progressRate([{ atMs: 0, done: 0 }])).toBeNull();
    expect(progressRate([{ atMs: 0, done: 0 }, { atMs: 2_000, done: 560 }])).toBe(280);
    const ring = new RingBuffer<number>(3);
    for (const value of [1, 2, 3, 4, 5]) ring.push(value);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.last()).toBe(5);
    expect(ring.at(2)).toBe(3);
    expect(ring.at(3)).toBeUndefined();
    expect(accountKeyOf('account:acct-1:DeleteDeviceCertificate')).toBe('acct-1');
    expect(accountKeyOf('account:a:b:GetCaCertificate')).toBe('a:b');
    expect(accountKeyOf('egress:default')).toBeNull();
    expect(sseEvent('batches', '<tr>\n<td>1</td>\r\n</tr>')).toBe('event: batches\ndata: <tr>\ndata: <td>1</td>\ndata: </tr>\n\n');
  });
});

describe('console sampler', () => {
  const prefix = uniquePrefix('console-sampler');
  const keys = new Keys(prefix);
  const redis = new Redis(TEST_REDIS_URL);
  afterAll(async () => {
    redis.disconnect();
    await removePrefix(prefix);
  });

  it('samples budgets, marks a throttled second once and a paused account as refused, and rates batches', async () => {
    await redis.hset(keys.budgetIndex(), 'account:acct-1:DeleteDeviceCertificate', '480', 'egress:default', '280');
    // As a worker announces its budgets (a budget nobody announced lately is left out).
    await redis.zadd(keys.budgetSeen(), Date.now(), 'account:acct-1:DeleteDeviceCertificate', Date.now(), 'egress:default');
    await redis.set(keys.currentRate('acct-1'), '300');
    const sampler = new ConsoleSampler(redis, keys);
    const batches = new BatchStore(redis, keys, 1);
    const batchId = await batches.create({ name: 'rated', source: 'csv', action: 'delete', createdBy: 'test' });
    await redis.hset(keys.batch(batchId), 'state', 'running', 'accepted', '1000', 'done', '100');

    // 40 call slots in the last second, on Redis' clock, written just before the sample.
    const [seconds, micros] = await redis.time();
    const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    await redis.zadd(keys.budgetWindow('egress:default'), ...Array.from({ length: 40 }, (_, index) => [nowMs - 50 - index, `m${index}`]).flat());
    const first = await sampler.tick(1_000_000);
    const egress = first.rates.budgets.find((budget) => budget.name === 'egress:default')!;
    expect(egress).toMatchObject({ kind: 'egress', label: 'default', limit: 280, adaptive: null, throttled: false, refused: false });
    expect(egress.calls).toBeGreaterThanOrEqual(39);
    const account = first.rates.budgets.find((budget) => budget.kind === 'account')!;
    expect(account).toMatchObject({ label: 'DeleteDeviceCertificate', accountKey: 'acct-1', adaptive: 300, throttled: false });
    expect(first.batches.find((entry) => entry.batch.id === batchId)?.ratePerSecond).toBeNull();

    await redis.set(keys.throttleCeiling('acct-1'), JSON.stringify({ rate: 480, atMs: 1_000_500 }));
    await redis.hset(keys.accountPause('acct-1'), 'reason', 'the source IP may be blocked');
    await redis.hset(keys.batch(batchId), 'done', '380');
    const second = await sampler.tick(1_001_000);
    const throttled = second.rates.budgets.find((budget) => budget.kind === 'account')!;
    expect(throttled).toMatchObject({ throttled: true, refused: true });
    expect(second.accounts[0]).toMatchObject({ key: 'acct-1', pausedReason: 'the source IP may be blocked', adaptivePerSecond: 300 });
    const progress = second.batches.find((entry) => entry.batch.id === batchId)!;
    expect(progress.ratePerSecond).toBe(280);
    expect(progress.etaSeconds).toBeCloseTo(620 / 280, 5);

    // The same throttle tick is not marked twice; the history keeps both samples.
    const third = await sampler.tick(1_002_000);
    expect(third.rates.budgets.find((budget) => budget.kind === 'account')?.throttled).toBe(false);
    expect(sampler.rateHistory()).toHaveLength(3);
  });
});
