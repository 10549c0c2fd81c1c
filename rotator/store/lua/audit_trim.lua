-- Remove archived events and their index entries; optionally trim the stream and move the
-- chain anchor to the last archived event. Idempotent.
--
-- KEYS[1]   the audit stream
-- KEYS[2]   the audit head hash
-- KEYS[3 .. 2+ARGV[4]]  per-target zsets; the remaining keys are per-job lists
-- ARGV[1]   last archived stream id
-- ARGV[2]   its seq
-- ARGV[3]   its hash
-- ARGV[4]   number of per-target keys
-- ARGV[5]   '1' to trim the stream and move the anchor, '0' to prune indexes only
-- ARGV[6]   with ARGV[5] = '1': the smallest stream id to keep (XTRIM MINID)
-- ARGV[7]   kid of the chain key in force at the anchor
-- ARGV[8]   the anchor's signature: "{signer kid}:{mac}" (see rotator.audit.keyring)
-- Returns the number of stream entries removed.
local function parse(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end
local bms, bn = parse(ARGV[1])
local ntargets = tonumber(ARGV[4])
for i = 3, 2 + ntargets do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[2])
end
for i = 3 + ntargets, #KEYS do
  while true do
    local v = redis.call('LINDEX', KEYS[i], 0)
    if not v then break end
    local ms, n = parse(v)
    if ms == nil or ms > bms or (ms == bms and n > bn) then break end
    redis.call('LPOP', KEYS[i])
  end
end
local removed = 0
if ARGV[5] == '1' then
  removed = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[6])
  local cur = tonumber(redis.call('HGET', KEYS[2], 'archived_seq') or '0')
  if tonumber(ARGV[2]) > cur then
    redis.call('HSET', KEYS[2], 'archived_seq', ARGV[2], 'archived_hash', ARGV[3],
      'archived_kid', ARGV[7], 'archived_sig', ARGV[8])
  end
end
return removed
