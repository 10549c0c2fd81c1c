-- Journal one or more steps with the job and target fields they go with, in one fenced write
-- that renews the lease (e.g. the pinned secret version and the target's `pending` pointer).
-- KEYS[1] target lease   KEYS[2] target hash   KEYS[3] job journal   KEYS[4] job hash
-- ARGV[1] fence   ARGV[2] lease ms   ARGV[3] number of target field/value pairs (t)
-- ARGV[4] number of job field/value pairs (j)   ARGV[5..] the t target pairs, the j job
-- pairs, then step/JSON pairs
-- include: fence_check
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t, j = tonumber(ARGV[3]), tonumber(ARGV[4])
local first = 5
local function hset(key, from, count)
  if count == 0 then return end
  local fields = {}
  for i = from, from + 2 * count - 1 do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', key, unpack(fields))
end
hset(KEYS[2], first, t)
hset(KEYS[4], first + 2 * t, j)
local steps = first + 2 * t + 2 * j
hset(KEYS[3], steps, (#ARGV - steps + 1) / 2)
return 1
