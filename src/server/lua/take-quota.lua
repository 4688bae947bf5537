--[[
  Takes devices from a sender's hourly quota: a token bucket holding at most the quota, refilled
  continuously at quota / hour, on Redis' clock (one clock for every server).

  KEYS[1]  the sender's bucket (hash: tokens, atMs)
  ARGV[1]  the quota (devices per hour)
  ARGV[2]  devices to take

  Returns 0 when taken; otherwise the ms until the bucket will hold enough (nothing is taken).
]]
local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local quota = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local perMs = quota / 3600000
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or quota)
local atMs = tonumber(redis.call('HGET', KEYS[1], 'atMs') or nowMs)
tokens = math.min(quota, tokens + math.max(0, nowMs - atMs) * perMs)
if wanted > tokens then
  return math.ceil((wanted - tokens) / perMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - wanted), 'atMs', tostring(nowMs))
-- A full bucket is the same as no key: let it go once it would be full again.
redis.call('PEXPIRE', KEYS[1], 3600000)
return 0
