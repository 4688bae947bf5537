--[[
  Stores the answer of a claimed delivery over this request's own marker, or where the marker
  expired meanwhile (a very slow delivery), but never over a marker another request took since.

  KEYS[1]  the delivery's key
  ARGV[1]  this request's marker (as claimed)
  ARGV[2]  the stored answer (JSON)
  ARGV[3]  seconds the answer is kept

  Returns 1 when stored, 0 when another request owns the key now.
]]
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] or current == false then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
