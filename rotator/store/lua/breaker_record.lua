-- Add one admitted attempt's provider calls to a host's window; open or close the breaker.
-- KEYS[1] breaker hash
-- ARGV[1] now   ARGV[2] calls   ARGV[3] of which failed   ARGV[4] window (s)
-- ARGV[5] min calls   ARGV[6] failure ratio   ARGV[7] probe interval (s)   ARGV[8] key ttl (s)
-- Returns the state after: 'closed' or 'open'.
local now, calls_made, calls_failed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ratio = tonumber(ARGV[6])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'open' then
  if calls_failed < ratio * calls_made then
    -- A probe (or an attempt admitted before the breaker opened) mostly got through: recovered.
    redis.call('DEL', KEYS[1])
    return 'closed'
  end
  return 'open'
end
local started = tonumber(redis.call('HGET', KEYS[1], 'window_start') or '0')
if now - started >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'window_start', now, 'calls', 0, 'failures', 0)
end
local calls = redis.call('HINCRBY', KEYS[1], 'calls', calls_made)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', calls_failed)
redis.call('EXPIRE', KEYS[1], ARGV[8])
if calls >= tonumber(ARGV[5]) and failures >= ratio * calls then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now,
    'probe_at', now + tonumber(ARGV[7]))
  return 'open'
end
return 'closed'
