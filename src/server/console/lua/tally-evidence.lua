-- tally-evidence.lua: one bounded step of counting a finished batch's records by outcome and
-- evidence (the batch hash counts outcomes only).
--
-- KEYS: [1] the batch's results hash
-- ARGV: [1] HSCAN cursor ('0' to begin), [2] COUNT hint of the step
-- Returns: { next cursor ('0' when done), outcome1, evidence1, n1, outcome2, … }: the step's
--   records counted by (outcome, evidence); a record without evidence counts as ''.
-- The hash of a finished batch no longer grows, so HSCAN returns each record exactly once.
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local counts = {}
local flat = page[2]
for i = 2, #flat, 2 do
  local record = flat[i]
  local outcome = string.match(record, '"outcome":"(%a[%a_]*)"') or ''
  local evidence = string.match(record, '"evidence":"(%a[%a_]*)"') or ''
  local key = outcome .. '\t' .. evidence
  counts[key] = (counts[key] or 0) + 1
end
local out = { page[1] }
for key, n in pairs(counts) do
  local tab = string.find(key, '\t', 1, true)
  out[#out + 1] = string.sub(key, 1, tab - 1)
  out[#out + 1] = string.sub(key, tab + 1)
  out[#out + 1] = n
end
return out
