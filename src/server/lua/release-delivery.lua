--[[
  Gives up a claimed delivery without an answer: deletes the key only if it still holds this
  request's marker (it may have expired and been taken by another request).

  KEYS[1]  the delivery's key
  ARGV[1]  this request's marker

  Returns 1 when deleted, 0 otherwise.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
