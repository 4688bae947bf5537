-- resume-batch.lua: a paused batch runs again (enqueuing again if its input is still being read).
-- Resuming after the not_found breaker means the operator checked: the breaker stays off.
--
-- KEYS: [1] batch hash
-- ARGV: none
-- Returns 1 when resumed, 0 when it was not paused.
if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return 0 end
local before = redis.call('HGET', KEYS[1], 'stateBeforePause') or 'running'
local reason = redis.call('HGET', KEYS[1], 'reason') or ''
if string.sub(reason, 1, 17) == 'not_found breaker' then redis.call('HSET', KEYS[1], 'notFoundBreaker', 'off') end
if redis.call('HGET', KEYS[1], 'enqueued') == '1' then before = 'running' end
redis.call('HSET', KEYS[1], 'state', before)
redis.call('HDEL', KEYS[1], 'reason', 'stateBeforePause')
return 1
