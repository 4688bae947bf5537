-- close-orphan.lua: drops a subscriber set the ledger no longer needs, atomically with the check.
--
-- KEYS: [1] revocation hash, [2] the subscriber set of job `job`, [3] the BullMQ hash of `job`
-- ARGV: [1] job id, [2] grace: the latest `openedAt` (ms) a missing open job may have to be
--       closed, [3] prefix, [4] revocation id
-- Returns 'kept' (the job exists, or it is the open job and still young, or a subscriber still
--   waits for it: the pending-record sweep re-adds it), 'dropped' (the set of a job that is no
--   longer the revocation's open job), or 'closed' (the open job never made it to BullMQ and no
--   subscriber waits: the revocation is closed, a later batch opens a new generation).
-- Subscriber batches' results hashes are named inside from the prefix (per-subscriber loop).
if redis.call('EXISTS', KEYS[3]) == 1 then return 'kept' end
if redis.call('HGET', KEYS[1], 'job') ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 'dropped'
end
if tonumber(redis.call('HGET', KEYS[1], 'openedAt') or '0') > tonumber(ARGV[2]) then return 'kept' end
local rid = ARGV[4]
for _, batchId in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local record = redis.call('HGET', ARGV[3] .. ':batch:' .. batchId .. ':results', rid)
  if record and string.sub(record, 1, 20) == '{"outcome":"pending"' then return 'kept' end
end
redis.call('HDEL', KEYS[1], 'job', 'openedAt', 'openedBy', 'parked', 'redrivenFrom', 'lostAnswer')
redis.call('DEL', KEYS[2])
return 'closed'
