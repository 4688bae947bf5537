-- finish-batch.lua (include; needs emit-event and batch-keys): the one completion rule.
--
-- A batch finishes once it is fully enqueued and every accepted device has a terminal record:
-- `completed`, or stays `cancelled`; finishedAt is set and one completion event is written, once
-- per transition (a batch already finished is left alone). Retention counts from the finish: only
-- then do its keys get a TTL (the batch's `retentionSeconds`, 30 days when absent); an open batch
-- never expires, and a reopened one loses its TTL again (keepOpen).
local DEFAULT_RETENTION_SECONDS = 2592000

local function retentionOf(k)
  return tonumber(redis.call('HGET', k.batch, 'retentionSeconds') or '') or DEFAULT_RETENTION_SECONDS
end

local function retain(k)
  local seconds = retentionOf(k)
  redis.call('EXPIRE', k.batch, seconds)
  redis.call('EXPIRE', k.results, seconds)
  redis.call('EXPIRE', k.rejected, seconds)
  redis.call('EXPIRE', k.instances, seconds)
  -- The audit trail and the input order live as long as the batch. Named from the batch key:
  -- the same hash tag, so the same slot on Redis Cluster (see batch-keys.lua).
  redis.call('EXPIRE', k.batch .. ':audit', seconds)
  redis.call('EXPIRE', k.batch .. ':order', seconds)
  -- Nothing of a finished batch is parked any more, and nobody produces into it.
  redis.call('DEL', k.parked, k.producer)
end

local function keepOpen(k)
  redis.call('PERSIST', k.batch)
  redis.call('PERSIST', k.results)
  redis.call('PERSIST', k.rejected)
  redis.call('PERSIST', k.instances)
  redis.call('PERSIST', k.batch .. ':audit')
  redis.call('PERSIST', k.batch .. ':order')
end

local function maybeFinish(k, now)
  if redis.call('HGET', k.batch, 'enqueued') ~= '1' or redis.call('HEXISTS', k.batch, 'finishedAt') == 1 then return false end
  local done = tonumber(redis.call('HGET', k.batch, 'done') or '0')
  local accepted = tonumber(redis.call('HGET', k.batch, 'accepted') or '0')
  if done < accepted then return false end
  local state = redis.call('HGET', k.batch, 'state')
  if state ~= 'cancelled' then
    redis.call('HSET', k.batch, 'state', 'completed')
    state = 'completed'
  end
  redis.call('HSET', k.batch, 'finishedAt', now)
  emit(k.batch, k.outbox, state, now)
  retain(k)
  return true
end
