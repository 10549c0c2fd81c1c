-- Start a job attempt: take the target's lease with a new fencing token and read what the
-- attempt starts from, in one step.
-- KEYS[1] target lease   KEYS[2] target fence   KEYS[3] job hash   KEYS[4] job journal
-- KEYS[5] target hash   KEYS[6] jobs due
-- ARGV[1] job id   ARGV[2] lease ms   ARGV[3] now   ARGV[4] due score (lease expiry)
-- ARGV[5] terminal job states, comma-separated   ARGV[6] lease nonce (random, per lease)
-- The lease value is "{fence}:{nonce}:{job_id}"; every fenced script compares all of it.
-- Returns {'missing'}, {'terminal', state, owed audit event}, {'busy', lease, lease pttl} or
-- {'ok', lease value, job, journal, target}.
local state = redis.call('HGET', KEYS[3], 'state')
if not state and redis.call('EXISTS', KEYS[3]) == 0 then return {'missing'} end
for terminal in string.gmatch(ARGV[5], '[^,]+') do
  if state == terminal then
    return {'terminal', state, redis.call('HGET', KEYS[3], 'audit_owed') or ''}
  end
end
local lease = redis.call('GET', KEYS[1])
if lease then return {'busy', lease, tostring(redis.call('PTTL', KEYS[1]))} end
local fence = redis.call('INCR', KEYS[2])
local value = fence .. ':' .. ARGV[6] .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HSET', KEYS[3], 'state', 'running', 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
return {'ok', value, redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5])}
