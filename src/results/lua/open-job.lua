-- open-job.lua: the reconciler found pending records of these batches and no open job for their
-- revocation: subscribes them to the open job (one appeared meanwhile) or opens a generation.
--
-- includes: open-revocation
-- KEYS: [1] revocation hash
-- ARGV: [1] prefix, [2] revocation id, [3] now ms, [4] opener label, [5..] batch ids
-- Returns { flag, job id } (flags of open-revocation).
local batchIds = {}
for i = 5, #ARGV do batchIds[#batchIds + 1] = ARGV[i] end
local flag, job = openOrFollow(ARGV[1], KEYS[1], ARGV[2], batchIds, ARGV[3], ARGV[4], ARGV[1] .. ':lostmarks')
return { flag, job }
