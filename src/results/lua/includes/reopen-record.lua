-- reopen-record.lua (include; needs finish-batch): turns a `failed` record back into pending.
--
-- reopenFailed(k, field, placeholder) -> 1 when reopened. Only a `failed` record (a dead letter
-- being redriven) of a batch that exists and is not cancelled; the counters move back, a
-- completed batch runs again and its keys lose their TTL (an open batch never expires).
local function reopenFailed(k, field, placeholder)
  if redis.call('EXISTS', k.batch) == 0 then return 0 end
  local state = redis.call('HGET', k.batch, 'state')
  if state == 'cancelled' then return 0 end
  local current = redis.call('HGET', k.results, field)
  if not current then return 0 end
  local ok, record = pcall(cjson.decode, current)
  if not ok or type(record) ~= 'table' or record['outcome'] ~= 'failed' then return 0 end
  redis.call('HSET', k.results, field, placeholder)
  redis.call('HINCRBY', k.batch, 'failed', -1)
  redis.call('HINCRBY', k.batch, 'done', -1)
  if state == 'completed' then redis.call('HSET', k.batch, 'state', 'running') end
  redis.call('HDEL', k.batch, 'finishedAt')
  keepOpen(k)
  return 1
end
