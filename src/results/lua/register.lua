-- register.lua: one chunk of a batch's input in one step: accepts its devices into the batch and,
-- in ledger mode, subscribes the batch to each device's revocation (opening a job generation where
-- none is open); records the input line of each accepted device (the report's order) and the
-- chunk's rejected rows. Idempotent per request id: the answer is kept for an hour, and a resent
-- request (ioredis resends a command whose reply was lost to a reconnect; the Enqueuer retries a
-- failed chunk) returns it unchanged and writes nothing.
--
-- includes: open-revocation
-- KEYS: [1] batch hash, [2] results hash, [3] request answer (string), [4] instances hash,
--       [5] producer heartbeat (string), [6] input order (sorted set), [7] rejected rows (list),
--       [8] the revocation queue's prioritized set, [9] its wait list (for the waiting count),
--       [9 + i] revocation hash of device i (ledger mode only)
-- ARGV: [1] prefix, [2] batch id, [3] mode: 'ledger' | 'records' (a record without a revocation
--       job: a CA deletion's devices), [4] heartbeat ms, [5] now ms, [6] n devices,
--       [7] m rejected rows, then per device i: [4 + 4i] field (revocation id),
--       [5 + 4i] placeholder JSON, [6 + 4i] instance id, [7 + 4i] input line ('' = not recorded),
--       then the m rejected rows (JSON), after the devices
-- Returns { state, waiting, then per device a flag and a generation }:
--   state: the batch's state ('cancelled': ledger mode registered nothing and answers no device)
--   waiting: jobs waiting in the queue (prioritized + wait), for the producer's flow control
--   0 0    duplicate within the batch (counted, nothing to queue)
--   1 gen  new revocation job `<field>-<gen>`: the caller adds it
--   2 gen  follows the open job `<field>-<gen>` (its outcome is written into this batch too)
--   3 gen  follows the open job `<field>-<gen>`, which is parked: the caller wakes it
--   (a job id not of that form comes back whole, as a string, instead of the generation)
--   (records mode: 1 0 for a new device, 0 0 for a duplicate)
--   a resent request's answer is the first one with one more element, 'cached', at the end
-- Subscriber sets (`<prefix>:subs:<job id>`) are named inside: see open-revocation.
local cached = redis.call('GET', KEYS[3])
if cached then
  -- A trailing odd element tells the caller the answer is the first one (the chunk is in).
  local answer = cjson.decode(cached)
  answer[#answer + 1] = 'cached'
  return answer
end

local prefix, batchId, ledger = ARGV[1], ARGV[2], ARGV[3] == 'ledger'
local nowMs, n, m = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state') or ''
local waiting = redis.call('ZCARD', KEYS[8]) + redis.call('LLEN', KEYS[9])
-- A cancelled batch takes no more devices: the producer stops (nothing written, nothing cached).
if ledger and state == 'cancelled' then return { state, waiting } end

local out = { state, waiting }
-- Marks of calls whose ledger entries a Redis crash took (mark-lost-answers): almost always none.
local lostMarks = prefix .. ':lostmarks'
if redis.call('EXISTS', lostMarks) == 0 then lostMarks = nil end
local added = 0
local perInstance = {}
local order = {}
for i = 1, n do
  local base = 7 + 4 * (i - 1)
  local field, placeholder, instance, line = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  if redis.call('HSETNX', KEYS[2], field, placeholder) == 0 then
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    added = added + 1
    perInstance[instance] = (perInstance[instance] or 0) + 1
    if line ~= '' then
      order[#order + 1] = line
      order[#order + 1] = field
    end
    if ledger then
      local flag, job = openOrFollow(prefix, KEYS[9 + i], field, { batchId }, nowMs, batchId, lostMarks)
      out[#out + 1] = flag
      -- The job id is `<field>-<gen>`: the generation alone keeps answer and cache small.
      local gen = string.sub(job, 1, #field + 1) == field .. '-' and tonumber(string.sub(job, #field + 2)) or nil
      out[#out + 1] = gen or job
    else
      out[#out + 1] = 1
      out[#out + 1] = 0
    end
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'accepted', added)
  for instance, count in pairs(perInstance) do redis.call('HINCRBY', KEYS[4], instance, count) end
end
if n > added then redis.call('HINCRBY', KEYS[1], 'duplicates', n - added) end
-- No TTL here: the input order lives as long as its batch (finish-batch gives it the retention).
if #order > 0 then redis.call('ZADD', KEYS[6], 'NX', unpack(order)) end
if m > 0 then
  redis.call('RPUSH', KEYS[7], unpack(ARGV, 8 + 4 * n, 7 + 4 * n + m))
  redis.call('HINCRBY', KEYS[1], 'rejected', m)
end
redis.call('SET', KEYS[5], '1', 'PX', ARGV[4])
redis.call('SET', KEYS[3], cjson.encode(out), 'EX', 3600)
return out
