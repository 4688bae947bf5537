-- snapshot-complete.lua: marks an existence snapshot complete (every page listed). Only a complete
-- snapshot can say a device was absent; an incomplete one only that a device was present.
-- KEYS: [1] snapshot facts hash
-- ARGV: none
-- Returns the completion time (ms on Redis' clock), or -1 when the snapshot does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], 'completedAt', now)
return tonumber(redis.call('HGET', KEYS[1], 'completedAt'))
