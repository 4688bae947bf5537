-- mark-lost-answers.lua: after Redis came back as a new instance (a crash that may have lost its
-- last second of writes), a worker names the jobs whose calls it made recently: their call
-- intents may be gone, so their next runs must treat the earlier result as unknown (`lostAnswer`,
-- read by read-subscribers).
--
-- A job whose revocation has no open job at all may have lost its whole ledger entry with the
-- crash (the producer's chunk went too, and the producer sends it again): the job id goes into the
-- lost-marks hash (an hour), and the generation that opens that same job id again takes the mark
-- (open-revocation). A finished revocation's entry keeps no open job either; a mark for it is
-- never taken, and goes with the hour.
--
-- KEYS: [1] lost-marks hash, [1 + i] revocation hash of job i
-- ARGV: [i] job id i
-- Returns the number of revocations marked (those whose open job is still that job: a finished
-- one has its record, and a missing entry is not recreated).
local marked = 0
local remembered = 0
for i = 1, #ARGV do
  local job = redis.call('HGET', KEYS[1 + i], 'job')
  if job == ARGV[i] then
    redis.call('HSET', KEYS[1 + i], 'lostAnswer', ARGV[i])
    marked = marked + 1
  elseif not job then
    redis.call('HSET', KEYS[1], ARGV[i], '1')
    remembered = remembered + 1
  end
end
if remembered > 0 then redis.call('EXPIRE', KEYS[1], 3600) end
return marked
