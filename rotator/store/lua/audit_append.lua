-- Append a batch of chained audit events, atomically, if the head is still where the caller
-- computed the chain from; otherwise return the current head so the caller can re-chain.
--
-- KEYS[1]   the audit stream
-- KEYS[2]   the audit head hash
-- KEYS[3]   the key check hash (audit_kid, audit_epoch, audit:{n})
-- KEYS[4..] per-target zsets and per-job lists, referenced by position from ARGV
-- ARGV[1]   expected head seq
-- ARGV[2]   expected head hash
-- ARGV[3]   genesis hash (the head hash of an empty log)
-- ARGV[4]   earliest event time in the batch (unix seconds)
-- ARGV[5]   latest event time in the batch (unix seconds)
-- ARGV[6]   kid of the key the batch is chained with (must be the store's current audit key)
-- ARGV[7]   kid of the next key when the batch ends with a key rotation, else ''
-- ARGV[8..] four per event: hash, payload, target key index, job key index (0: none);
--           event i gets seq head + i
-- Returns {1, ids} when appended, {0, head seq, head hash} when the head moved, an error
-- ROTATOR_AUDIT_KEY_MISMATCH when the batch is chained with another key than the store's: a
-- link nobody could ever verify is never appended.
local kid = redis.call('HGET', KEYS[3], 'audit_kid')
if not kid then
  -- The first writer's key becomes epoch 1 (processes check keys before writing anything).
  redis.call('HSET', KEYS[3], 'audit_kid', ARGV[6], 'audit_epoch', '1', 'audit:1', ARGV[6])
elseif kid ~= ARGV[6] then
  return redis.error_reply('ROTATOR_AUDIT_KEY_MISMATCH epoch ' ..
    (redis.call('HGET', KEYS[3], 'audit_epoch') or '?'))
end
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash', 'max_lag', 'max_lead')
if not head[1] and redis.call('XLEN', KEYS[1]) > 0 then
  return redis.error_reply('ROTATOR_AUDIT_HEAD_MISSING audit head is missing but the stream is not')
end
local cur_seq = head[1] or '0'
local cur_hash = head[2] or ARGV[3]
if cur_seq ~= ARGV[1] or cur_hash ~= ARGV[2] then
  return {0, cur_seq, cur_hash}
end
local n = (#ARGV - 7) / 4
if n < 1 or n ~= math.floor(n) then
  return redis.error_reply('ROTATOR_AUDIT_BAD_BATCH malformed batch')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_lag = math.max(tonumber(head[3]) or 0, now - tonumber(ARGV[4]))
local max_lead = math.max(tonumber(head[4]) or 0, tonumber(ARGV[5]) - now)
local base = tonumber(cur_seq)
local ids = {}
for i = 1, n do
  local b = 7 + (i - 1) * 4
  local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[b + 2], 'hash', ARGV[b + 1])
  local ti = tonumber(ARGV[b + 3])
  if ti > 0 then redis.call('ZADD', KEYS[ti], base + i, id) end
  local ji = tonumber(ARGV[b + 4])
  if ji > 0 then redis.call('RPUSH', KEYS[ji], id) end
  ids[i] = id
end
redis.call('HSET', KEYS[2], 'seq', string.format('%d', base + n), 'hash', ARGV[7 + (n - 1) * 4 + 1],
  'id', ids[n], 'max_lag', string.format('%.3f', max_lag),
  'max_lead', string.format('%.3f', max_lead))
if ARGV[7] ~= '' then
  local epoch = redis.call('HINCRBY', KEYS[3], 'audit_epoch', 1)
  redis.call('HSET', KEYS[3], 'audit_kid', ARGV[7], 'audit:' .. epoch, ARGV[7])
end
return {1, ids}
