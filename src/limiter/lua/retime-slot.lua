-- retime-slot.lua: moves a reserved slot to now, for a caller that woke up late for it.
--
-- A late caller cannot call at its slot any more. Calling now is allowed when, with the slot
-- moved to now, no half-open window of `window` ms around now holds more than floor(rate) slots
-- in any budget (fits(), includes/fits.lua); otherwise the slot is given up and the caller
-- reserves a new one. Either way the slot it missed is not used twice.
--
-- Late callers come in bursts (a pause of the process wakes several at once), and this script
-- holds Redis while it runs: it reads only the slots it must (a whole ±window of them took
-- 1.3 ms of Redis per call, measured).
--
-- KEYS: as reserve-slot.lua (three per budget: next slot, window set, adaptive rate).
-- ARGV: [1] window ms, [2] the member reserved earlier, [2+i] configured rate of budget i.
-- Returns: Redis' time now in microseconds when the slot moved to now (call now), 0 when it was
-- given up (reserve again).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local member = ARGV[2]
local budgets = #KEYS / 3
for i = 1, budgets do
  redis.call('ZREM', KEYS[3 * i - 1], member)
end
for i = 1, budgets do
  local rate = tonumber(ARGV[2 + i])
  local adaptive = tonumber(redis.call('GET', KEYS[3 * i]) or '')
  if adaptive ~= nil and adaptive > 0 and adaptive < rate then rate = adaptive end
  if not fits(KEYS[3 * i - 1], window, math.max(1, math.floor(rate)), now) then return 0 end
end
for i = 1, budgets do
  redis.call('ZADD', KEYS[3 * i - 1], now, member)
end
return math.floor(now * 1000)
