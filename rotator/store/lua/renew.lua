-- Heartbeat: extend the lease while the attempt runs, fenced, and move the job's due score to
-- the new expiry, so a job whose worker dies comes due when its lease has run out.
-- KEYS[1] target lease   KEYS[2] jobs due
-- ARGV[1] lease value   ARGV[2] lease ms   ARGV[3] job id   ARGV[4] due score (lease expiry)
-- include: fence_check
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', ARGV[4], ARGV[3])
return 1
