-- cancel-batch.lua: marks an open batch cancelled. Its devices then leave their revocations one by
-- one as their jobs run (the worker records `cancelled` where no call of revoker's can have changed
-- the certificate); the batch finishes (finish-batch) once every device has a record.
--
-- includes: emit-event, batch-keys, finish-batch
-- KEYS: [1..7] the batch's keys (batch-keys order)
-- ARGV: [1] reason, [2] now ISO
-- Returns 1 when cancelled, 0 when it was not open.
local k = batchKeysAt(1)
local s = redis.call('HGET', k.batch, 'state')
if s ~= 'enqueuing' and s ~= 'running' and s ~= 'paused' then return 0 end
redis.call('HSET', k.batch, 'state', 'cancelled', 'reason', ARGV[1])
-- The event of a cancel is the batch's end: written when it finishes (now, if nothing is pending).
maybeFinish(k, ARGV[2])
return 1
