-- A delivery comes due again later (backoff or rate limit), with its updated record.
-- KEYS[1] notify due   KEYS[2] notify deliveries
-- ARGV[1] delivery id   ARGV[2] due time   ARGV[3] record (JSON)
-- Returns 0 when the delivery is gone (settled by another drainer), else 1.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
