--[[
  Reserves room for a webhook delivery's devices under the queue's high-water mark, in one step
  with the count: concurrent deliveries cannot all see room and together overshoot the mark.

  KEYS[1]  BullMQ's wait list of the revocation queue
  KEYS[2]  BullMQ's prioritized set of the revocation queue
  KEYS[3]  the reservations (sorted set: member "<token>:<devices>" → expiry, ms on Redis' clock)
  ARGV[1]  the high-water mark (jobs)
  ARGV[2]  devices to reserve
  ARGV[3]  this reservation's token
  ARGV[4]  ms the reservation holds if the process dies before releasing it

  Returns -1 when reserved; otherwise the jobs waiting plus reserved now (no room).
  A reservation is released (ZREM) once its jobs are on the queue, where they count instead.
]]
local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowMs)
local reserved = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  reserved = reserved + (tonumber(string.match(member, ':(%d+)$')) or 0)
end
local used = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + reserved
if used + tonumber(ARGV[2]) > tonumber(ARGV[1]) then
  return used
end
redis.call('ZADD', KEYS[3], nowMs + tonumber(ARGV[4]), ARGV[3] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]))
return -1
