-- mark-enqueued.lua: the batch's input has been read to the end (or the producer stopped: `note`
-- says so); finishes the batch if every device already has a record. Idempotent: a resent or
-- repeated call finds `enqueued` set and changes nothing (no second completion event).
--
-- includes: emit-event, batch-keys, finish-batch
-- KEYS: [1..7] the batch's keys (batch-keys order)
-- ARGV: [1] now ISO, [2] note ('' = none): why the input ended early
-- Returns the batch's state afterwards, or false when the batch does not exist.
local k = batchKeysAt(1)
if redis.call('EXISTS', k.batch) == 0 then return false end
if redis.call('HGET', k.batch, 'enqueued') ~= '1' then
  redis.call('HSET', k.batch, 'enqueued', '1')
  if redis.call('HGET', k.batch, 'state') == 'enqueuing' then redis.call('HSET', k.batch, 'state', 'running') end
  if ARGV[2] ~= '' then
    redis.call('HSET', k.batch, 'inputNote', ARGV[2])
    if redis.call('HEXISTS', k.batch, 'reason') == 0 then redis.call('HSET', k.batch, 'reason', ARGV[2]) end
  end
  redis.call('DEL', k.producer)
  maybeFinish(k, ARGV[1])
end
return redis.call('HGET', k.batch, 'state')
