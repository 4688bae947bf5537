-- release-lock.lua: gives up the reconciler lock if this process still holds it.
--
-- KEYS: [1] lock string
-- ARGV: [1] this holder's token
-- Returns 1 when released, 0 when another holds it (or it lapsed).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
