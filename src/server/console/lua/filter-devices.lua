-- filter-devices.lua: one bounded step of the console's "devices with outcome X" table.
--
-- Walks a batch's devices from a position, keeps those whose record has the wanted outcome, and
-- stops after `maxMatches` matches or `maxExamined` devices, whichever comes first, so that one
-- call never holds Redis for long whatever the batch size (the caller loops under a time budget).
--
-- KEYS: [1] the batch's input order (sorted set, member = field, score = input line),
--       [2] the batch's results hash (field -> record JSON)
-- ARGV: [1] mode: 'order' (walk the input order by rank) or 'scan' (HSCAN the results hash: a
--       batch without an input order, e.g. a webhook's), [2] start: a rank ('order') or an HSCAN
--       cursor ('scan'), [3] needle: the exact text `"outcome":"<outcome>"`, [4] maxMatches,
--       [5] maxExamined
-- Returns: { next, examined, field1, line1, record1, field2, … } where `next` is the rank or
--   cursor to continue from, or '' when the walk reached the end; `line` is '' in scan mode.
-- A record's text holds `"outcome":"…"` only as its key: JSON escapes every '"' inside strings.
local mode, start, needle = ARGV[1], ARGV[2], ARGV[3]
local maxMatches, maxExamined = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = { '', 0 }
local matches, examined = 0, 0

if mode == 'order' then
  local rank = tonumber(start)
  local entries = redis.call('ZRANGE', KEYS[1], rank, rank + maxExamined - 1, 'WITHSCORES')
  local n = #entries / 2
  local stoppedAt = nil
  for i = 1, n do
    local field, line = entries[2 * i - 1], entries[2 * i]
    examined = examined + 1
    local record = redis.call('HGET', KEYS[2], field)
    if record and string.find(record, needle, 1, true) then
      matches = matches + 1
      out[#out + 1] = field
      out[#out + 1] = line
      out[#out + 1] = record
      if matches >= maxMatches then
        stoppedAt = rank + i
        break
      end
    end
  end
  if stoppedAt then
    out[1] = tostring(stoppedAt)
  elseif n == maxExamined then
    out[1] = tostring(rank + n)
  end
else
  local cursor = start
  repeat
    local page = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', 500)
    cursor = page[1]
    local flat = page[2]
    -- A page is taken whole (HSCAN cannot resume inside one): `maxMatches` may be passed by a page.
    for i = 1, #flat, 2 do
      examined = examined + 1
      if string.find(flat[i + 1], needle, 1, true) then
        matches = matches + 1
        out[#out + 1] = flat[i]
        out[#out + 1] = ''
        out[#out + 1] = flat[i + 1]
      end
    end
  until cursor == '0' or matches >= maxMatches or examined >= maxExamined
  if cursor ~= '0' then out[1] = cursor end
end
out[2] = examined
return out
