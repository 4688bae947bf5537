-- open-revocation.lua (include): subscribes batches to a revocation's open job, or opens one.
--
-- openOrFollow(prefix, revKey, rid, batchIds, nowMs, opener, lostMarks) -> flag, jobId
--   the revocation hash has an open `job`: the batches join its subscriber set; flag 2, or 3 when
--   that job is parked (the caller wakes it: a running batch now wants it);
--   otherwise a new generation: `gen` + 1, job id `<rid>-<gen>`, flag 1 (the caller adds the job).
--   `lostMarks` (the lost-marks hash, or nil when the caller knows it is empty): a worker called
--   the API for that very job id before a Redis crash took its ledger entry (mark-lost-answers):
--   the new generation starts with `lostAnswer` set, so that "not registered" is not `not_found`.
-- The subscriber set `<prefix>:subs:<job id>` is named here: the job id is only known once read.
--
-- A revocation hash exists only with `gen` (this is its only creator; every other writer sets
-- fields while `job` is set, or removes fields): no `gen` means no entry, so the first generation
-- of a device (the bulk of every large batch) is one read and one write, with nothing to clear.
local function openOrFollow(prefix, revKey, rid, batchIds, nowMs, opener, lostMarks)
  local entry = redis.call('HMGET', revKey, 'job', 'parked', 'gen')
  local job = entry[1]
  local flag = 2
  if job then
    if entry[2] == job then flag = 3 end
  else
    local previous = entry[3]
    local gen = (tonumber(previous) or 0) + 1
    job = rid .. '-' .. gen
    if previous then
      -- A finished revocation's entry: its marks go, and it has the retention TTL, which an open
      -- one must not have.
      redis.call('HDEL', revKey, 'parked', 'redrivenFrom', 'lostAnswer')
      redis.call('PERSIST', revKey)
    end
    redis.call('HSET', revKey, 'gen', gen, 'job', job, 'openedAt', nowMs, 'openedBy', opener)
    if lostMarks and redis.call('HDEL', lostMarks, job) == 1 then redis.call('HSET', revKey, 'lostAnswer', job) end
    flag = 1
  end
  local subs = prefix .. ':subs:' .. job
  for _, batchId in ipairs(batchIds) do redis.call('SADD', subs, batchId) end
  return flag, job
end
