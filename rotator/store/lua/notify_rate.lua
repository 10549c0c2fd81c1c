-- May a delivery go to this webhook now? GCRA, shared by every process.
-- KEYS[1] the webhook's rate key (theoretical arrival time)
-- ARGV[1] now   ARGV[2] emission interval (s: 60 / rate per minute)   ARGV[3] burst
-- Returns -1 (and takes the slot) to go ahead, else the seconds (string) until a slot is free.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tau = interval * (tonumber(ARGV[3]) - 1)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if now < tat - tau then return tostring(tat - tau - now) end
local new = tat + interval
redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
return -1
