-- pause-batch.lua: moves an open batch to `paused` with a reason (again if already paused: the
-- newest reason wins, the state before the first pause is kept); one `paused` event per transition.
--
-- includes: emit-event
-- KEYS: [1] batch hash, [2] events outbox
-- ARGV: [1] reason, [2] now ISO, [3] marker field to set ('' = none; `instancePaused:<id>` records
--       that an instance error paused it, see the worker's instance rule)
-- Returns 1 when the batch is paused now, 0 when it was not open.
local s = redis.call('HGET', KEYS[1], 'state')
if s ~= 'enqueuing' and s ~= 'running' and s ~= 'paused' then return 0 end
local before = s
if s == 'paused' then before = redis.call('HGET', KEYS[1], 'stateBeforePause') or 'running' end
redis.call('HSET', KEYS[1], 'state', 'paused', 'reason', ARGV[1], 'stateBeforePause', before)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[2]) end
if s ~= 'paused' then emit(KEYS[1], KEYS[2], 'paused', ARGV[2]) end
return 1
