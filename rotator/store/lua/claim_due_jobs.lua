-- Claim due jobs: each claimed job comes due again at the visibility deadline.
-- KEYS[1] jobs due
-- ARGV[1] now   ARGV[2] limit   ARGV[3] visibility deadline
-- Returns the claimed job ids.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
