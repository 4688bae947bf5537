-- park.lua: a job waits for a resume: its id goes into the parked set of each batch given (any
-- of their resumes wakes it), and the revocation remembers it is parked (a batch that subscribes
-- later wakes it: see open-revocation). Refused when the reason to park is gone already (a resume
-- between the job's read and this step would otherwise miss it, and the job would sleep until its
-- safety delay): the caller decides again.
--
-- KEYS: [1] revocation hash, [2] subscriber set of the job, [3] account pause hash,
--       [4..] parked sets of the batches
-- ARGV: [1] job id, [2] prefix, [3] mode: 'account' (refused when the account pause is gone),
--       'batch' (refused when a subscriber runs), 'force' (never refused)
-- Returns the number of parked sets written, or -1 when refused.
-- Subscribers' batch hashes are named inside from the prefix (per-subscriber loop).
local mode = ARGV[3]
if mode == 'account' and redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if mode == 'batch' then
  for _, batchId in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local state = redis.call('HGET', ARGV[2] .. ':batch:' .. batchId, 'state')
    if state == 'running' or state == 'enqueuing' then return -1 end
  end
end
for i = 4, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
if redis.call('HGET', KEYS[1], 'job') == ARGV[1] then redis.call('HSET', KEYS[1], 'parked', ARGV[1]) end
return #KEYS - 3
