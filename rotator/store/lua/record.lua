-- Journal a step (and optionally job fields), fenced, renewing the lease.
-- KEYS[1] target lease   KEYS[2] job journal   KEYS[3] job hash
-- ARGV[1] fence   ARGV[2] lease ms   ARGV[3] step   ARGV[4] step JSON
-- ARGV[5..] job field/value pairs
-- include: fence_check
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if #ARGV > 4 then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[3], unpack(fields))
end
return 1
