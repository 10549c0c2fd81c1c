-- Find a stored secret version by fingerprint, or reserve the next sequence number.
-- KEYS[1] secret fingerprints   KEYS[2] secret seq
-- ARGV[1] fingerprint
-- Returns {1, existing version} or {0, reserved sequence number}.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {1, existing} end
return {0, redis.call('INCR', KEYS[2])}
