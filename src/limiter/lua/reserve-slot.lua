-- reserve-slot.lua: reserves the earliest call slot that every given rate budget allows.
--
-- Each budget is a "next slot" time and a sorted set of the slots it handed out, both on Redis'
-- clock, shared by every process. The next-slot time spaces the budget's reservations window/rate
-- apart: it moves on from the budget's own turn (the later of now and its next slot), not from the
-- slot another budget pushed this call to. Otherwise, with two egress groups under one account, a
-- call held back by its own egress budget would drag the account's next slot with it, and the
-- other group's calls would queue behind it (measured: 346 of 480 calls/s). So a budget's slots
-- may be handed out out of order, and the exact backstop checks every half-open window of `window`
-- ms around the slot, later slots included (fits(), includes/fits.lua, which slot-reservations.ts
-- puts in front of this script): none may hold more than floor(rate) slots (which is what holds at
-- fractional rates too).
--
-- KEYS, for each budget i (1-based), three keys:
--   KEYS[3i-2] next-slot string (ms), KEYS[3i-1] window sorted set (member -> slot ms),
--   KEYS[3i]   adaptive rate string (per second; absent = the configured rate)
-- ARGV: [1] window ms, [2] unique member, [2+i] configured rate of budget i per second (may be fractional)
-- Returns: {the wait until the slot, Redis' time now}, both in microseconds (the caller maps
-- Redis' clock onto its own with the second: redis-clock.ts).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
local member = ARGV[2]
local budgets = #KEYS / 3
local rates = {}
local turns = {}
local slot = now
for i = 1, budgets do
  local rate = tonumber(ARGV[2 + i])
  local adaptive = tonumber(redis.call('GET', KEYS[3 * i]) or '')
  if adaptive ~= nil and adaptive > 0 and adaptive < rate then rate = adaptive end
  rates[i] = rate
  local turn = tonumber(redis.call('GET', KEYS[3 * i - 2]) or '0') or 0
  if turn < now then turn = now end
  turns[i] = turn
  if turn > slot then slot = turn end
end
local limits = {}
for i = 1, budgets do
  -- Slots older than any window that can still matter.
  redis.call('ZREMRANGEBYSCORE', KEYS[3 * i - 1], '-inf', '(' .. tostring(now - 2 * window))
  limits[i] = math.max(1, math.floor(rates[i]))
end

-- The earliest slot at or after s that is also after every slot of the budget and fits (the
-- limit-th latest slot a whole window before it). Behind every slot, one count decides.
local function afterAll(win, limit, s)
  local last = redis.call('ZREVRANGEBYSCORE', win, '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #last > 0 and tonumber(last[2]) > s then s = tonumber(last[2]) end
  local inWindow = redis.call('ZCOUNT', win, '(' .. tostring(s - window), '+inf')
  if inWindow >= limit then
    local edge = redis.call('ZRANGEBYSCORE', win, '(' .. tostring(s - window), '+inf', 'WITHSCORES', 'LIMIT', inWindow - limit, 1)
    local pushed = tonumber(edge[2]) + window
    if pushed > s then s = pushed end
  end
  return s
end

-- A slot pushed later for one budget can meet another budget's later slots: check again until
-- every budget fits. Each round only moves the slot later; after a few, take the slot behind
-- every budget's slots, where pushing it later can only lower the other budgets' counts.
local settled = false
for _ = 1, 6 do
  local moved = false
  for i = 1, budgets do
    local win = KEYS[3 * i - 1]
    if not fits(win, window, limits[i], slot) then
      slot = afterAll(win, limits[i], slot)
      moved = true
    end
  end
  if not moved then
    settled = true
    break
  end
end
if not settled then
  -- afterAll leaves the slot behind every slot of its budget, so the later budgets' pushes only
  -- lower the earlier ones' counts: one pass decides.
  for i = 1, budgets do
    slot = afterAll(KEYS[3 * i - 1], limits[i], slot)
  end
end
for i = 1, budgets do
  redis.call('SET', KEYS[3 * i - 2], tostring(turns[i] + window / rates[i]), 'PX', 60000)
  redis.call('ZADD', KEYS[3 * i - 1], slot, member)
  redis.call('PEXPIRE', KEYS[3 * i - 1], 60000)
end
return {math.floor((slot - now) * 1000), math.floor(now * 1000)}
