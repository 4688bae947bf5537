-- reserve-slot.lua: reserves the earliest call slot that every given rate budget allows.
--
-- Each budget is a "next slot" time and a sorted set of the slots it handed out, both on Redis'
-- clock, shared by every process. A slot is at least window/rate after the budget's previous one
-- (spacing), and no half-open window of `window` ms may hold more than floor(rate) slots (the
-- exact backstop, which is what holds at fractional rates). Slots only move forward, so every
-- slot already in a set is at or before the new one and one count per budget decides.
--
-- KEYS, for each budget i (1-based), three keys:
--   KEYS[3i-2] next-slot string (ms), KEYS[3i-1] window sorted set (member -> slot ms),
--   KEYS[3i]   adaptive rate string (per second; absent = the configured rate)
-- ARGV: [1] window ms, [2] unique member, [2+i] configured rate of budget i per second (may be fractional)
-- Returns: the wait until the slot, in microseconds (0 = now).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local member = ARGV[2]
local budgets = #KEYS / 3
local rates = {}
local slot = now
for i = 1, budgets do
  local rate = tonumber(ARGV[2 + i])
  local adaptive = tonumber(redis.call('GET', KEYS[3 * i]) or '')
  if adaptive ~= nil and adaptive > 0 and adaptive < rate then rate = adaptive end
  rates[i] = rate
  local nextSlot = tonumber(redis.call('GET', KEYS[3 * i - 2]) or '0') or 0
  if nextSlot > slot then slot = nextSlot end
end
for i = 1, budgets do
  local win = KEYS[3 * i - 1]
  -- Slots older than any window that can still matter.
  redis.call('ZREMRANGEBYSCORE', win, '-inf', '(' .. tostring(now - 2 * window))
  local limit = math.max(1, math.floor(rates[i]))
  local inWindow = redis.call('ZCOUNT', win, '(' .. tostring(slot - window), '+inf')
  if inWindow >= limit then
    -- The limit-th most recent slot must lie a whole window before this one.
    local edge = redis.call('ZRANGEBYSCORE', win, '(' .. tostring(slot - window), '+inf', 'WITHSCORES', 'LIMIT', inWindow - limit, 1)
    local pushed = tonumber(edge[2]) + window
    if pushed > slot then slot = pushed end
  end
end
for i = 1, budgets do
  redis.call('SET', KEYS[3 * i - 2], tostring(slot + window / rates[i]), 'PX', 60000)
  redis.call('ZADD', KEYS[3 * i - 1], slot, member)
  redis.call('PEXPIRE', KEYS[3 * i - 1], 60000)
end
return math.floor((slot - now) * 1000)
