-- fits.lua: the window check shared by reserve-slot.lua and retime-slot.lua (prepended to each by
-- slot-reservations.ts).
--
-- Whether a slot at s keeps every half-open window (y, y + window] around it within `limit` slots
-- of the sorted set `win`. With the slots f1 < f2 < ... after s (within a window), the fullest such
-- window that holds f1..fj starts at fj - window: it holds the slots in (fj - window, s], s itself
-- and those j. The slots in (fj - window, s] are the `before` slots of (s - window, s] less those
-- that the window leaves behind as it slides from s to fj: one read of the slots in
-- (s - window, f_last - window] counts them for every j (a few dozen calls into Redis per slot
-- otherwise, and this runs for every call of every worker). Answers false (not known to fit) when
-- more than MAX_LATER slots lie after s: each process holds at most 8 reserved slots (its local
-- order), so that takes more than 8 processes on one budget, and the caller then takes the slot
-- behind them all.
local MAX_LATER = 64
local function fits(win, window, limit, s)
  local before = redis.call('ZCOUNT', win, '(' .. tostring(s - window), tostring(s))
  if before >= limit then return false end
  local later = redis.call('ZRANGEBYSCORE', win, '(' .. tostring(s), '(' .. tostring(s + window), 'WITHSCORES', 'LIMIT', 0, MAX_LATER + 1)
  local count = #later / 2
  if count > MAX_LATER then return false end
  if before + count < limit then return true end
  local leaving = redis.call('ZRANGEBYSCORE', win, '(' .. tostring(s - window), tostring(tonumber(later[2 * count]) - window), 'WITHSCORES')
  local left = 0
  local leavingCount = #leaving / 2
  for j = 1, count do
    local edge = tonumber(later[2 * j]) - window
    while left < leavingCount and tonumber(leaving[2 * left + 2]) <= edge do left = left + 1 end
    if before - left + j >= limit then return false end
  end
  return true
end
