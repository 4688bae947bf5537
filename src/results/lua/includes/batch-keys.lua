-- batch-keys.lua (include): the keys of one batch as a table.
--
-- batchKeys(prefix, batchId) names them from the prefix: used only in per-subscriber loops, where
-- the batches are read from a subscriber set inside the script and cannot be passed in. Everywhere
-- else the same seven keys come in as KEYS (batchKeysAt), in the order of `batchKeyList` in
-- result-store.ts: batch, results, rejected, parked, instances, producer, events outbox.
local function batchKeys(prefix, batchId)
  local b = prefix .. ':batch:' .. batchId
  return {
    batch = b, results = b .. ':results', rejected = b .. ':rejected', parked = b .. ':parked',
    instances = b .. ':instances', producer = b .. ':producer', outbox = prefix .. ':events:outbox',
  }
end

local function batchKeysAt(at)
  return {
    batch = KEYS[at], results = KEYS[at + 1], rejected = KEYS[at + 2], parked = KEYS[at + 3],
    instances = KEYS[at + 4], producer = KEYS[at + 5], outbox = KEYS[at + 6],
  }
end
