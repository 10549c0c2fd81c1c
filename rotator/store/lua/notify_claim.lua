-- Claim due deliveries: each comes due again at the visibility deadline unless settled first
-- (a drainer killed mid-delivery loses nothing).
-- KEYS[1] notify due   KEYS[2] notify deliveries
-- ARGV[1] now   ARGV[2] limit   ARGV[3] visibility deadline
-- Returns {id, record, id, record, ...}; a due id without a record is dropped.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = id
    out[#out + 1] = record
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
