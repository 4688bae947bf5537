-- refresh-lock.lua: extends the reconciler lock if this process still holds it.
--
-- KEYS: [1] lock string
-- ARGV: [1] this holder's token, [2] new lifetime ms
-- Returns 1 when extended, 0 when the lock is no longer this process's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
