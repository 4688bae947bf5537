-- mark-lost-answers.lua: after Redis came back as a new instance (a crash that may have lost its
-- last second of writes), a worker names the jobs whose calls it made recently: their call
-- intents may be gone, so their next runs must treat the earlier result as unknown (`lostAnswer`,
-- read by read-subscribers).
--
-- KEYS: [i] revocation hash of job i
-- ARGV: [i] job id i
-- Returns the number of revocations marked (those whose open job is still that job: a finished
-- one has its record, and a missing entry is not recreated).
local marked = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'job') == ARGV[i] then
    redis.call('HSET', KEYS[i], 'lostAnswer', ARGV[i])
    marked = marked + 1
  end
end
return marked
