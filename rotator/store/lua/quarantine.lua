-- Move an unparseable job out of the job tables into the quarantine.
-- KEYS[1] job hash   KEYS[2] jobs quarantine   KEYS[3] jobs due   KEYS[4] jobs index
-- ARGV[1] job id   ARGV[2] JSON record {reason, raw, at}
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
