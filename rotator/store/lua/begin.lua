-- Start a job attempt: take the target's lease with a new fencing token and read what the
-- attempt starts from, in one step.
-- KEYS[1] target lease   KEYS[2] job hash   KEYS[3] job journal   KEYS[4] target hash
-- KEYS[5] jobs due
-- ARGV[1] job id   ARGV[2] lease ms   ARGV[3] now   ARGV[4] due score (lease expiry)
-- ARGV[5] terminal job states, comma-separated   ARGV[6] lease nonce (random, per lease)
-- The lease value is "{fence}:{nonce}:{job_id}"; every fenced script compares all of it. The
-- fence counter is the target hash's `fence` field (it was a key of its own before: a key per
-- target at rest). A counter that starts again, there or after a failover, is harmless: the
-- random nonce keeps every lease value unique.
-- Returns {'missing'}, {'terminal', state, owed audit event}, {'busy', lease, lease pttl} or
-- {'ok', lease value, job, journal, target}.
local state = redis.call('HGET', KEYS[2], 'state')
if not state and redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
for terminal in string.gmatch(ARGV[5], '[^,]+') do
  if state == terminal then
    return {'terminal', state, redis.call('HGET', KEYS[2], 'audit_owed') or ''}
  end
end
local lease = redis.call('GET', KEYS[1])
if lease then return {'busy', lease, tostring(redis.call('PTTL', KEYS[1]))} end
local fence = redis.call('HINCRBY', KEYS[4], 'fence', 1)
local value = fence .. ':' .. ARGV[6] .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'state', 'running', 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
return {'ok', value, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4])}
