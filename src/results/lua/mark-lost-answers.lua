-- mark-lost-answers.lua: after Redis came back as a new instance (a crash that may have lost its
-- last second of writes), a worker names the jobs whose calls it made recently: their call
-- intents may be gone, so their next runs must treat the earlier result as unknown (`lostAnswer`,
-- read by read-subscribers).
--
-- A job of a generation the entry does not have yet (job id `<rid>-<gen>` past the entry's `gen`,
-- or no entry at all) lost the ledger entry that opened it with the crash (the producer's chunk
-- went too, and the producer sends it again): the job id goes into the lost-marks hash (an hour),
-- and the generation that opens that same job id again takes the mark (open-revocation). A job
-- whose generation the entry has and which is not open any more finished: it needs no mark (most
-- of a journal after a busy second are such calls, and REGISTER reads the hash while it exists).
--
-- KEYS: [1] lost-marks hash, [1 + i] revocation hash of job i
-- ARGV: [i] job id i
-- Returns the number of revocations marked (those whose open job is still that job: a finished
-- one has its record, and a missing entry is not recreated).
local marked = 0
local remembered = 0
for i = 1, #ARGV do
  local entry = redis.call('HMGET', KEYS[1 + i], 'job', 'gen')
  if entry[1] == ARGV[i] then
    redis.call('HSET', KEYS[1 + i], 'lostAnswer', ARGV[i])
    marked = marked + 1
  elseif not entry[1] and (tonumber(string.match(ARGV[i], '%-(%d+)$')) or 0) > (tonumber(entry[2]) or 0) then
    redis.call('HSET', KEYS[1], ARGV[i], '1')
    remembered = remembered + 1
  end
end
if remembered > 0 then redis.call('EXPIRE', KEYS[1], 3600) end
return marked
