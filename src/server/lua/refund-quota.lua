--[[
  Gives devices back to a sender's quota (a delivery refused after taking them: queue full).

  KEYS[1]  the sender's bucket (hash: tokens, atMs)
  ARGV[1]  the quota (devices per hour)
  ARGV[2]  devices to give back

  Returns 1 when the bucket existed, 0 otherwise (nothing to give back to: it is full).
]]
local tokens = redis.call('HGET', KEYS[1], 'tokens')
if not tokens then return 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tonumber(tokens) + tonumber(ARGV[2]))))
return 1
