-- open-revocation.lua (include): subscribes batches to a revocation's open job, or opens one.
--
-- openOrFollow(prefix, revKey, rid, batchIds, nowMs, opener) -> flag, jobId
--   the revocation hash has an open `job`: the batches join its subscriber set; flag 2, or 3 when
--   that job is parked (the caller wakes it: a running batch now wants it);
--   otherwise a new generation: `gen` + 1, job id `<rid>-<gen>`, flag 1 (the caller adds the job).
-- The subscriber set `<prefix>:subs:<job id>` is named here: the job id is only known once read.
local function openOrFollow(prefix, revKey, rid, batchIds, nowMs, opener)
  local job = redis.call('HGET', revKey, 'job')
  local flag = 2
  if job then
    if redis.call('HGET', revKey, 'parked') == job then flag = 3 end
  else
    local gen = redis.call('HINCRBY', revKey, 'gen', 1)
    job = rid .. '-' .. gen
    redis.call('HSET', revKey, 'job', job, 'openedAt', nowMs, 'openedBy', opener)
    redis.call('HDEL', revKey, 'parked', 'redrivenFrom', 'lostAnswer')
    -- A finished revocation's entry has the retention TTL: an open one must not expire.
    redis.call('PERSIST', revKey)
    flag = 1
  end
  local subs = prefix .. ':subs:' .. job
  for _, batchId in ipairs(batchIds) do redis.call('SADD', subs, batchId) end
  return flag, job
end
