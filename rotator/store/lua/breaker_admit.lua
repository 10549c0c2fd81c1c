-- May an attempt call this provider host? One caller per probe interval gets through while open.
-- KEYS[1] breaker hash
-- ARGV[1] now   ARGV[2] probe interval (s)
-- Returns -1 to go ahead (closed), -2 to go ahead as the half-open probe, else the seconds
-- (string) until the next probe may be tried.
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return -1 end
local now = tonumber(ARGV[1])
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at') or '0')
if now >= probe_at then
  -- This caller is the half-open probe; the next one waits a whole interval.
  redis.call('HSET', KEYS[1], 'probe_at', now + tonumber(ARGV[2]))
  return -2
end
return tostring(probe_at - now)
