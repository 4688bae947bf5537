-- close-revocation.lua: a job with no subscriber left ends without a call.
--
-- KEYS: [1] revocation hash, [2] subscriber set of the job
-- ARGV: [1] job id
-- Returns 1 when closed; 0 when a batch subscribed since the job read its subscribers (it must
-- decide again: that batch wants the call).
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
if redis.call('HGET', KEYS[1], 'job') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'job', 'openedAt', 'openedBy', 'parked', 'redrivenFrom', 'lostAnswer')
end
return 1
