-- Claim due schedule entries; each gets a provisional score, so it is claimable again if the
-- dispatcher dies before setting its real next due time.
-- KEYS[1] schedule
-- ARGV[1] now   ARGV[2] limit   ARGV[3] provisional score
-- Returns target, due time, target, due time, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], ARGV[3], due[i]) end
return due
