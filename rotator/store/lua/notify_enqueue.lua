-- Queue one notice's deliveries, once per (subject, event) within the dedupe window.
-- KEYS[1] dedupe mark   KEYS[2] notify due   KEYS[3] notify deliveries
-- ARGV[1] dedupe window (whole seconds)   ARGV[2] most deliveries queued   ARGV[3] due time
-- ARGV[4..] pairs: delivery id, delivery record (JSON)
-- Returns 1 queued, 0 a duplicate (nothing queued), -1 the queue is full (nothing queued,
-- no mark kept: a later notice for the same event may still go).
local n = (#ARGV - 3) / 2
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('HLEN', KEYS[3]) + n > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1]))
for i = 0, n - 1 do
  local id = ARGV[4 + 2 * i]
  redis.call('HSET', KEYS[3], id, ARGV[5 + 2 * i])
  redis.call('ZADD', KEYS[2], ARGV[3], id)
end
return 1
