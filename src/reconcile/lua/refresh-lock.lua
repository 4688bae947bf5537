-- refresh-lock.lua: extends the reconciler lock while this process holds it, or takes it back
-- when it lapsed and nobody took it meanwhile (a page slower than the lock's lifetime: a stalled
-- Redis or event loop). A sweep refreshes at every page, so the lock can be short and a holder
-- that died (SIGKILL mid-sweep) holds back the others only that long.
--
-- KEYS: [1] lock string
-- ARGV: [1] this holder's token, [2] new lifetime ms
-- Returns 1 when the lock is this process's for [2] ms more, 0 when another process holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
