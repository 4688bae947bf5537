/**
 * Existence snapshots on a real Redis: pages stamped with Redis' clock, completion, and what a
 * lookup says for a first call before or after the listing.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/queue/keys.js';
import { RedisClock } from '../../src/redis/redis-clock.js';
import { ExistenceSnapshots } from '../../src/results/existence-snapshot.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix } from '../helpers/redis.js';

const prefix = uniquePrefix('snapshot');
const keys = new Keys(prefix);
const INSTANCE = 'mqtt-cn-snap00001';
const CA = 'ca0000000000snap1';
const at = (deviceSn: string) => ({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn });

describe('existence snapshots', () => {
  let redis: Redis;
  let snapshots: ExistenceSnapshots;
  let clock: RedisClock;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
    snapshots = new ExistenceSnapshots(redis, keys, { marginMs: 50 });
    clock = new RedisClock(redis);
  });

  afterAll(async () => {
    redis.disconnect();
    await removePrefix(prefix);
  });

  it('says present for a device listed before the first call, absent only from a complete listing, nothing otherwise', async () => {
    const writer = snapshots.begin({ mqttInstanceId: INSTANCE, caSn: CA }, 'test');
    await writer.addPage(['dev-1', 'dev-2']);
    const afterFirstPage = (await clock.now())!;
    // Incomplete: a device not (yet) listed is not known to be absent.
    expect(await snapshots.lookup(at('dev-9'), afterFirstPage + 1_000)).toBeNull();
    expect(await snapshots.lookup(at('dev-1'), afterFirstPage + 1_000)).toMatchObject({ kind: 'present', snapshotId: writer.id });
    // A first call before (or within the margin of) the page: the listing may have come after that call.
    expect(await snapshots.lookup(at('dev-1'), afterFirstPage - 1_000)).toBeNull();

    await writer.addPage(['dev-3']);
    const completedAt = await writer.complete();
    expect(completedAt).toBeGreaterThanOrEqual(afterFirstPage - 5);
    expect(await snapshots.lookup(at('dev-9'), completedAt + 1_000)).toMatchObject({ kind: 'absent', at: completedAt });
    // Completed after the first call: an absent device may have been removed by that call.
    expect(await snapshots.lookup(at('dev-9'), completedAt)).toBeNull();
    expect(await snapshots.lookup({ ...at('dev-1'), caSn: 'another-ca' }, completedAt + 1_000)).toBeNull();

    const facts = await snapshots.list(INSTANCE, CA);
    expect(facts).toMatchObject([{ id: writer.id, completedAt, devices: 3, source: 'test' }]);
    expect(facts[0]!.startedAt).toBeLessThanOrEqual(completedAt);
    expect(await redis.ttl(keys.snapshot(writer.id))).toBeGreaterThan(0);
    expect(await redis.ttl(keys.snapshotIndex(INSTANCE, CA))).toBeGreaterThan(0);
  });

  it('takes the newest snapshot that knows: a later complete listing without the device wins over an older one with it', async () => {
    const ca = 'ca0000000000snap2';
    const device = { mqttInstanceId: INSTANCE, caSn: ca, deviceSn: 'dev-x' };
    const older = snapshots.begin({ mqttInstanceId: INSTANCE, caSn: ca }, 'older');
    await older.addPage(['dev-x']);
    await older.complete();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const newer = snapshots.begin({ mqttInstanceId: INSTANCE, caSn: ca }, 'newer');
    await newer.addPage([]);
    const newerDone = await newer.complete();
    expect(await snapshots.lookup(device, newerDone + 1_000)).toMatchObject({ kind: 'absent', snapshotId: newer.id });
    // A first call between the two: only the older one was made before it.
    const olderFacts = (await snapshots.list(INSTANCE, ca)).find((fact) => fact.id === older.id)!;
    expect(await snapshots.lookup(device, olderFacts.completedAt! + 60)).toMatchObject({ kind: 'present', snapshotId: older.id });
  });

  it('keeps a bounded number of snapshots per CA and writes large pages in slices', async () => {
    const ca = 'ca0000000000snap3';
    const serials = Array.from({ length: 2_500 }, (_, index) => `bulk-${index}`);
    const big = snapshots.begin({ mqttInstanceId: INSTANCE, caSn: ca }, 'big');
    await big.addPage(serials);
    expect(await redis.hlen(keys.snapshot(big.id))).toBe(2_500);
    await big.complete();
    for (let round = 0; round < snapshots.options.keepPerCa; round += 1) {
      const small = snapshots.begin({ mqttInstanceId: INSTANCE, caSn: ca }, `round ${round}`);
      await small.addPage(['one']);
      await small.complete();
    }
    const ids = await redis.zrange(keys.snapshotIndex(INSTANCE, ca), '0', '-1');
    expect(ids).toHaveLength(snapshots.options.keepPerCa);
    expect(ids).not.toContain(big.id);
  });
});
