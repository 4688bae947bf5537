-- snapshot-page.lua: adds one listing page to an existence snapshot, stamped with Redis' clock
-- (the time is taken after the page's answer arrived, so it is never earlier than the listing
-- saw the device). The first page also creates the snapshot's facts and indexes it under its
-- (instance, CA); the index keeps the newest ARGV[6] snapshots (older ones expire on their own).
-- KEYS: [1] snapshot hash (serial → seen at ms), [2] snapshot facts hash, [3] (instance, CA) index
-- ARGV: [1] snapshot id, [2] TTL seconds, [3] instance id, [4] CA serial, [5] source,
--       [6] snapshots kept per (instance, CA), [7..] device serials of the page
-- Returns the page's time (ms on Redis' clock).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
if redis.call('HSETNX', KEYS[2], 'startedAt', now) == 1 then
  redis.call('HSET', KEYS[2], 'mqttInstanceId', ARGV[3], 'caSn', ARGV[4], 'source', ARGV[5], 'devices', 0)
  redis.call('ZADD', KEYS[3], now, id)
  local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[6])
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1) end
end
local added = 0
for i = 7, #ARGV do
  added = added + redis.call('HSETNX', KEYS[1], ARGV[i], now)
end
redis.call('HINCRBY', KEYS[2], 'devices', added)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
return now
