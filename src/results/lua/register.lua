-- register.lua: accepts a chunk of devices into a batch and, in ledger mode, subscribes the batch
-- to each device's revocation (opening a job generation where none is open). Idempotent per
-- request id: the answer is kept for an hour, and a resent request (ioredis resends a command
-- whose reply was lost to a reconnect; the Enqueuer retries a failed chunk) returns it unchanged.
--
-- includes: open-revocation
-- KEYS: [1] batch hash, [2] results hash, [3] request answer (string), [4] instances hash,
--       [5] producer heartbeat (string), [5 + i] revocation hash of device i (ledger mode only)
-- ARGV: [1] prefix, [2] batch id, [3] mode: 'ledger' | 'records' (a record without a revocation
--       job: a CA deletion's devices), [4] heartbeat ms, [5] now ms, [6] n devices, then per
--       device i: [4 + 3i] field (revocation id), [5 + 3i] placeholder JSON, [6 + 3i] instance id
-- Returns a flat array, per device a flag and a job id:
--   0 ''  duplicate within the batch (counted, nothing to queue)
--   1 id  new revocation job: the caller adds job `id`
--   2 id  follows the open job `id` (its outcome is written into this batch too)
--   3 id  follows the open job `id`, which is parked: the caller wakes it
--   (records mode: 1 '' for a new device, 0 '' for a duplicate)
-- Subscriber sets (`<prefix>:subs:<job id>`) are named inside: see open-revocation.
local cached = redis.call('GET', KEYS[3])
if cached then return cjson.decode(cached) end

local prefix, batchId, ledger = ARGV[1], ARGV[2], ARGV[3] == 'ledger'
local nowMs, n = ARGV[5], tonumber(ARGV[6])
local out = {}
local added = 0
local perInstance = {}
for i = 1, n do
  local base = 6 + 3 * (i - 1)
  local field, placeholder, instance = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if redis.call('HSETNX', KEYS[2], field, placeholder) == 0 then
    out[#out + 1] = 0
    out[#out + 1] = ''
  else
    added = added + 1
    perInstance[instance] = (perInstance[instance] or 0) + 1
    if ledger then
      local flag, job = openOrFollow(prefix, KEYS[5 + i], field, { batchId }, nowMs, batchId)
      out[#out + 1] = flag
      out[#out + 1] = job
    else
      out[#out + 1] = 1
      out[#out + 1] = ''
    end
  end
end
redis.call('HINCRBY', KEYS[1], 'accepted', added)
redis.call('HINCRBY', KEYS[1], 'duplicates', n - added)
for instance, count in pairs(perInstance) do redis.call('HINCRBY', KEYS[4], instance, count) end
redis.call('SET', KEYS[5], '1', 'PX', ARGV[4])
redis.call('SET', KEYS[3], cjson.encode(out), 'EX', 3600)
return out
