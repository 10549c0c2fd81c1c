-- Put a job back in the due set and release the lease, fenced.
-- KEYS[1] target lease   KEYS[2] job hash   KEYS[3] jobs due
-- ARGV[1] fence   ARGV[2] job id   ARGV[3] state   ARGV[4] run at   ARGV[5] now
-- ARGV[6..] job field/value pairs
-- include: fence_check
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated_at', ARGV[5], 'next_run_at', ARGV[4],
  unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
