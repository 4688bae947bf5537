-- finalize.lua: a revocation's outcome, written into every subscribed batch whose record of it
-- is still pending, each with its own batch id; then the revocation's job is closed.
--
-- includes: emit-event, batch-keys, finish-batch, write-record
-- KEYS: [1] revocation hash, [2] subscriber set of the job, [3..9] the opening batch's keys
--       (batch-keys order)
-- ARGV: [1] prefix, [2] field (revocation id), [3] job id ('' = a record outside the ledger, e.g.
--       a CA deletion's device: only the opening batch), [4] record JSON (the opening batch's),
--       [5] outcome, [6] now ISO, [7] breaker minimum outcomes (0 = off), [8] breaker percent,
--       [9] opening batch id
-- Returns the ids of the batches whose record it wrote.
-- The opening batch is always a candidate (if the subscriber set was lost, it still gets its
-- record); other subscribers' keys are named inside from the prefix (per-subscriber loop).
-- The revocation's `job` is cleared only if it is still this job (a stale run of an older
-- generation never closes a newer one); the entry keeps the longest retention of its batches.
local prefix, field, jobId, record, outcome, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local minOutcomes, percent, opener = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local written = {}
local seen = {}
local retention = 0
local decoded = nil

local function writeInto(batchId, k)
  if seen[batchId] then return end
  seen[batchId] = true
  local text = record
  if batchId ~= opener then
    decoded = decoded or cjson.decode(record)
    decoded['batchId'] = batchId
    text = cjson.encode(decoded)
  end
  if writeRecord(k, field, text, outcome, now, minOutcomes, percent) == 1 then written[#written + 1] = batchId end
  if redis.call('EXISTS', k.batch) == 1 then retention = math.max(retention, retentionOf(k)) end
end

writeInto(opener, batchKeysAt(3))
if jobId ~= '' then
  for _, batchId in ipairs(redis.call('SMEMBERS', KEYS[2])) do writeInto(batchId, batchKeys(prefix, batchId)) end
  redis.call('DEL', KEYS[2])
  if redis.call('HGET', KEYS[1], 'job') == jobId then
    redis.call('HDEL', KEYS[1], 'job', 'openedAt', 'openedBy', 'parked', 'redrivenFrom', 'lostAnswer')
    redis.call('EXPIRE', KEYS[1], retention > 0 and retention or DEFAULT_RETENTION_SECONDS)
  end
end
return written
