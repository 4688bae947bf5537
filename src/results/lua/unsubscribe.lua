-- unsubscribe.lua: a batch leaves a revocation job (it was cancelled before any call whose result
-- is unknown: its record says `cancelled`; or it expired: nothing to write).
--
-- includes: emit-event, batch-keys, finish-batch, write-record
-- KEYS: [1] subscriber set of the job, [2..8] the batch's keys (batch-keys order)
-- ARGV: [1] batch id, [2] field, [3] record JSON ('' = none), [4] outcome, [5] now ISO,
--       [6] breaker minimum outcomes, [7] breaker percent
-- Returns 1 when a record was written.
local written = 0
if ARGV[3] ~= '' then
  written = writeRecord(batchKeysAt(2), ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
end
redis.call('SREM', KEYS[1], ARGV[1])
return written
