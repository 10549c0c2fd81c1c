-- A delivery is settled: delivered, or given up (then kept, bounded, for inspection).
-- KEYS[1] notify due   KEYS[2] notify deliveries   KEYS[3] notify failed
-- ARGV[1] delivery id   ARGV[2] failed record (JSON; '' when delivered)   ARGV[3] failed cap
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
end
return 1
