-- Create a queued job unless the target already has a live (non-terminal) one.
-- KEYS[1] target active   KEYS[2] new job hash   KEYS[3] jobs due   KEYS[4] jobs index
-- KEYS[5] hash of the job ARGV[3] names (given only when ARGV[3] is not empty)
-- ARGV[1] new job id   ARGV[2] now   ARGV[3] the active job id the caller expects ('' = none)
-- ARGV[4] terminal job states, comma-separated   ARGV[5..] field/value pairs of the new job
-- Returns {live job id, 0}, {new job id, 1}, or {actual active id, -1} when KEYS[1] does not
-- hold ARGV[3]: the caller retries with that id, so the job it looks up is always a KEY.
local active = redis.call('GET', KEYS[1]) or ''
if active ~= ARGV[3] then return {active, -1} end
if active ~= '' then
  local terminal = {}
  for state in string.gmatch(ARGV[4], '[^,]+') do terminal[state] = true end
  local state = redis.call('HGET', KEYS[5], 'state')
  if state and not terminal[state] then return {active, 0} end
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return {ARGV[1], 1}
