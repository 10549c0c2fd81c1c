-- Delete ended jobs older than the retention, with their journals and index entries.
-- KEYS[1] jobs index   KEYS[2] jobs dead   KEYS[3] jobs due
-- KEYS[4..] per candidate, in ARGV order: job hash, job journal
-- ARGV[1] cutoff (unix time: ended before it)   ARGV[2] terminal job states, comma-separated
-- ARGV[3..] candidate job ids (read from the index by the caller)
-- A job goes only when it is terminal, ended before the cutoff, owes no audit event and is not
-- due: an owed terminal event keeps its job until a delivery writes it. An index entry whose
-- hash is already gone is dropped. Returns {deleted, kept}.
local terminal = {}
for state in string.gmatch(ARGV[2], '[^,]+') do terminal[state] = true end
local cutoff = tonumber(ARGV[1])
local deleted, kept = 0, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local job, journal = KEYS[2 * (i - 3) + 4], KEYS[2 * (i - 3) + 5]
  local row = redis.call('HMGET', job, 'state', 'updated_at', 'audit_owed')
  local state, updated, owed = row[1], tonumber(row[2] or ''), row[3]
  if not state then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    deleted = deleted + 1
  elseif terminal[state] and updated and updated < cutoff and (not owed or owed == '')
      and not redis.call('ZSCORE', KEYS[3], id) then
    redis.call('DEL', job, journal)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    deleted = deleted + 1
  else
    kept = kept + 1
  end
end
return {deleted, kept}
