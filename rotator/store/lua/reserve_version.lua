-- Find a stored secret version by fingerprint, or reserve the next sequence number.
-- KEYS[1] secret fingerprints: fingerprint -> version (the 32-byte HMAC; 64 hex digits in
--         entries stored before), and '#seq', the last version sequence number
-- KEYS[2] secret seq: where the sequence number was kept before it moved into KEYS[1]; while
--         it exists it is kept in step, so a process still running the earlier code never
--         reserves a number again (a new secret never gets it: one key less per secret)
-- ARGV[1] fingerprint (raw bytes)   ARGV[2] the same fingerprint in hex
-- Returns {1, existing version} or {0, reserved sequence number}.
local found = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2], '#seq')
local existing = found[1] or found[2]
if existing then return {1, existing} end
local legacy = redis.call('GET', KEYS[2])
local seq = math.max(tonumber(found[3] or '0'), tonumber(legacy or '0')) + 1
redis.call('HSET', KEYS[1], '#seq', string.format('%d', seq))
if legacy then redis.call('SET', KEYS[2], string.format('%d', seq)) end
return {0, seq}
