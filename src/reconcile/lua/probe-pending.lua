-- probe-pending.lua: for one page of a batch's records, what the reconciler must repair.
--
-- KEYS: [1] the batch's results hash, [1 + i] revocation hash of field i
-- ARGV: [1] prefix, [2] batch id, [3] BullMQ job key prefix of the revocation queue,
--       [3 + i] field i (revocation id)
-- Returns a flat array, per field: status, job id ('' when none), '1' when the batch was added back
--   to the job's subscriber set (a lost SADD), else ''. Status:
--   'done'    the record is final (nothing to do)
--   'ok'      pending, and the revocation's open job exists
--   'missing' pending, the ledger names an open job, and BullMQ has no such job (a producer that
--             died between REGISTER and addBulk, or an add lost to a Redis crash)
--   'nojob'   pending, and the revocation has no open job
-- Atomic per page: "job missing while the ledger names it" is one consistent reading. Job hashes
-- and subscriber sets are named inside (their job id is read here).
local out = {}
for i = 1, #ARGV - 3 do
  local field = ARGV[3 + i]
  local current = redis.call('HGET', KEYS[1], field)
  local status, job, resubscribed = 'done', '', ''
  if current and string.sub(current, 1, 20) == '{"outcome":"pending"' then
    job = redis.call('HGET', KEYS[1 + i], 'job') or ''
    if job == '' then
      status = 'nojob'
    else
      status = redis.call('EXISTS', ARGV[3] .. job) == 1 and 'ok' or 'missing'
      if redis.call('SADD', ARGV[1] .. ':subs:' .. job, ARGV[2]) == 1 then resubscribed = '1' end
    end
  end
  out[#out + 1] = status
  out[#out + 1] = job
  out[#out + 1] = resubscribed
end
return out
