-- read-subscribers.lua: what a revocation job's run needs to decide (read at the start of a run).
--
-- KEYS: [1] subscriber set of the job, [2] account pause hash, [3] revocation hash
-- ARGV: [1] prefix, [2] job id
-- Returns { account pause reason or '', '1' when a redrive that joined this job brought an earlier
--   call whose answer was lost (else ''), then per subscriber: batch id, state ('' = the batch is
--   gone), priority ('' = normal) }.
-- Also forgets that the job was parked: it runs now. Batch hashes are named inside from the
-- prefix (per-subscriber loop).
if redis.call('HGET', KEYS[3], 'parked') == ARGV[2] then redis.call('HDEL', KEYS[3], 'parked') end
local lost = redis.call('HGET', KEYS[3], 'lostAnswer') == ARGV[2] and '1' or ''
local out = { redis.call('HGET', KEYS[2], 'reason') or '', lost }
for _, batchId in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HMGET', ARGV[1] .. ':batch:' .. batchId, 'state', 'priority')
  out[#out + 1] = batchId
  out[#out + 1] = fields[1] or ''
  out[#out + 1] = fields[2] or ''
end
return out
