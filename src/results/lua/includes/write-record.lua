-- write-record.lua (include; needs finish-batch): a device's terminal record in one batch, once.
--
-- writeRecord(k, field, record, outcome, now, minOutcomes, percent) writes only over a pending
-- placeholder of a batch that still exists: never over a final record (a device is counted once
-- however often its job runs), never into an expired batch (that would recreate its keys without
-- a TTL). Moves the counters, finishes the batch (finish-batch) or trips the not_found breaker.
-- Returns 1 when written, 0 otherwise.
local function writeRecord(k, field, record, outcome, now, minOutcomes, percent)
  local current = redis.call('HGET', k.results, field)
  if not current or string.sub(current, 1, 20) ~= '{"outcome":"pending"' then return 0 end
  if redis.call('EXISTS', k.batch) == 0 then return 0 end
  redis.call('HSET', k.results, field, record)
  redis.call('HINCRBY', k.batch, outcome, 1)
  local done = redis.call('HINCRBY', k.batch, 'done', 1)
  if maybeFinish(k, now) then return 1 end
  if outcome == 'not_found' and minOutcomes > 0 and done >= minOutcomes then
    -- The not_found breaker: a wrong CaSn or instance makes most devices look unregistered.
    local notFound = tonumber(redis.call('HGET', k.batch, 'not_found') or '0')
    local state = redis.call('HGET', k.batch, 'state')
    if notFound * 100 > done * percent and (state == 'running' or state == 'enqueuing') and redis.call('HGET', k.batch, 'notFoundBreaker') ~= 'off' then
      redis.call('HSET', k.batch, 'state', 'paused', 'stateBeforePause', state, 'reason',
        'not_found breaker: ' .. notFound .. ' of the first ' .. done .. ' devices were not registered; check the CaSn and instance, then resume (the breaker then stays off) or cancel')
      emit(k.batch, k.outbox, 'paused', now)
    end
  end
  return 1
end
