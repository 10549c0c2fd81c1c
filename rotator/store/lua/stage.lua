-- Set target stage pointers (e.g. pending) and journal the step, fenced, renewing the lease.
-- KEYS[1] target lease   KEYS[2] target hash   KEYS[3] job journal
-- ARGV[1] fence   ARGV[2] lease ms   ARGV[3..] target field/value pairs, then '|',
-- then the journal step and its JSON
-- include: fence_check
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local i = 3
local fields = {}
while ARGV[i] ~= '|' do fields[#fields + 1] = ARGV[i]; i = i + 1 end
if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
return 1
