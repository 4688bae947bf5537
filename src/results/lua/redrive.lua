-- redrive.lua: brings a dead-lettered revocation back: reopens the `failed` record of each batch
-- given (those still open or completed, not cancelled or gone; a batch whose record is still
-- pending comes along as it is) and subscribes them to the revocation's open job, or opens a new
-- generation (the caller adds it with the kept history).
--
-- includes: emit-event, batch-keys, finish-batch, reopen-record, open-revocation
-- KEYS: [1] revocation hash, then 7 keys per candidate batch (batch-keys order)
-- ARGV: [1] prefix, [2] revocation id, [3] now ms, [4] dead letter id, [5] m candidates,
--       [6] '1' when the dead letter's history holds a call whose answer was lost,
--       [7] the dead-lettered job's id, then per candidate j: [6 + 2j] batch id,
--       [7 + 2j] placeholder JSON
-- Returns { flag, job id, batch ids waiting for it... }: flag 0 = no batch can take the device
--   back (no job); else the flag of open-revocation (1 add the job, 2 follow an open job, 3 follow
--   a parked one: wake it).
-- If the dead-lettered job is still the revocation's open job (its records were never written:
-- a crash between the dead letter and the records, or its job removed by hand), flag 1 with that
-- job id: the caller adds it again (a no-op if it still exists). When it opens a generation, the
-- revocation remembers the dead letter (`redrivenFrom`), so that a reconciler rebuilding a lost
-- add keeps the history; when it joins another open job and the dead letter's history holds a
-- lost answer, the revocation says so (`lostAnswer`, read by every run of that job).
local prefix, rid, nowMs, deadLetter, m, lost, deadJob = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7]
local waiting = {}
for j = 1, m do
  local batchId, placeholder = ARGV[6 + 2 * j], ARGV[7 + 2 * j]
  local k = batchKeysAt(2 + 7 * (j - 1))
  if reopenFailed(k, rid, placeholder) == 1 then
    waiting[#waiting + 1] = batchId
  elseif redis.call('EXISTS', k.batch) == 1 and redis.call('HGET', k.batch, 'state') ~= 'cancelled' then
    local current = redis.call('HGET', k.results, rid)
    if current and string.sub(current, 1, 20) == '{"outcome":"pending"' then waiting[#waiting + 1] = batchId end
  end
end
if #waiting == 0 then return { 0, '' } end
local flag, job
if deadJob ~= '' and redis.call('HGET', KEYS[1], 'job') == deadJob then
  flag, job = 1, deadJob
  for _, batchId in ipairs(waiting) do redis.call('SADD', prefix .. ':subs:' .. job, batchId) end
  redis.call('HSET', KEYS[1], 'redrivenFrom', deadLetter)
else
  flag, job = openOrFollow(prefix, KEYS[1], rid, waiting, nowMs, 'redrive', prefix .. ':lostmarks')
  if flag == 1 then
    redis.call('HSET', KEYS[1], 'redrivenFrom', deadLetter)
  elseif lost then
    -- The open job's own history does not hold the lost answer: the ledger tells its runs, so that
    -- "not registered" after it is `gone`, never `not_found`.
    redis.call('HSET', KEYS[1], 'lostAnswer', job)
  end
end
local out = { flag, job }
for _, batchId in ipairs(waiting) do out[#out + 1] = batchId end
return out
