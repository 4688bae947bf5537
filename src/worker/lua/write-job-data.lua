-- write-job-data.lua: replaces a revocation job's data only while the caller still holds the job's
-- lock. A run whose lock lapsed (a starved event loop, a GC pause) may still be running while
-- another worker has taken the job over; its writes must not overwrite the new run's call intent.
-- KEYS: [1] the job's lock (BullMQ: `<job key>:lock`, value = the holder's token), [2] the job hash
-- ARGV: [1] the caller's lock token, [2] the new data (JSON)
-- Returns 1 written, 0 the lock is not the caller's, -1 the job is gone.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('HSET', KEYS[2], 'data', ARGV[2])
return 1
