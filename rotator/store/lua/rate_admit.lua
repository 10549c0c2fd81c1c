-- May one more request go under every one of these rate budgets? All or nothing.
-- KEYS[1..n]  one sliding log (zset: grant id -> grant time in s) per budget
-- ARGV[1] now in seconds, or '' to use the Redis server's clock (production: one clock for
--         every process on every host; tests pass their own)
-- ARGV[2] grant id (unique per call)
-- ARGV[3..] per key, in KEYS order: the number of windows w, then w pairs (window s, limit)
-- Returns 'ok' when the request was counted in every log; otherwise nothing is counted and the
-- reply is the seconds (a string, at least 0.001) until it would fit every window of every budget.
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end  -- exact; tostring keeps 14 digits
local wait = 0
local longest = {}
local arg = 3
for i = 1, #KEYS do
  local count = tonumber(ARGV[arg])
  arg = arg + 1
  local span = 0
  for _ = 1, count do
    local window = tonumber(ARGV[arg])
    local limit = tonumber(ARGV[arg + 1])
    arg = arg + 2
    if window > span then span = window end
    local since = '(' .. fmt(now - window)
    if redis.call('ZCOUNT', KEYS[i], since, '+inf') >= limit then
      -- The grant ``limit`` places back from the newest must leave this window first.
      local back = redis.call('ZREVRANGEBYSCORE', KEYS[i], '+inf', since, 'WITHSCORES', 'LIMIT', limit - 1, 1)
      local leaves = tonumber(back[2]) + window - now
      if leaves > wait then wait = leaves end
    end
  end
  longest[i] = span
end
if wait > 0 then return fmt(math.max(wait, 0.001)) end
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', fmt(now - longest[i]))
  redis.call('ZADD', KEYS[i], fmt(now), ARGV[2])
  redis.call('PEXPIRE', KEYS[i], math.ceil(longest[i] * 1000) + 1000)
end
return 'ok'
