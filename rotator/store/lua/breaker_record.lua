-- Count one admitted attempt's outcome against a provider host; open or close the breaker.
-- KEYS[1] breaker hash
-- ARGV[1] now   ARGV[2] ok (1/0)   ARGV[3] window (s)   ARGV[4] min calls
-- ARGV[5] failure ratio   ARGV[6] probe interval (s)   ARGV[7] key ttl (s)
-- Returns the state after: 'closed' or 'open'.
local now, ok = tonumber(ARGV[1]), ARGV[2] == '1'
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'open' then
  if ok then
    -- A probe (or an attempt admitted before the breaker opened) got through: recovered.
    redis.call('DEL', KEYS[1])
    return 'closed'
  end
  return 'open'
end
local started = tonumber(redis.call('HGET', KEYS[1], 'window_start') or '0')
if now - started >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'window_start', now, 'calls', 0, 'failures', 0)
end
local calls = redis.call('HINCRBY', KEYS[1], 'calls', 1)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', ok and 0 or 1)
redis.call('EXPIRE', KEYS[1], ARGV[7])
if calls >= tonumber(ARGV[4]) and failures >= tonumber(ARGV[5]) * calls then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now,
    'probe_at', now + tonumber(ARGV[6]))
  return 'open'
end
return 'closed'
