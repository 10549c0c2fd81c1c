-- Store a sealed secret version, unless the same value was committed meanwhile.
-- KEYS[1] secret fingerprints   KEYS[2] secret versions
-- ARGV[1] fingerprint (raw bytes)   ARGV[2] version   ARGV[3] sealed token
-- ARGV[4] the fingerprint in hex (how entries stored before are keyed)
-- Returns the version that holds the value.
local existing = redis.call('HGET', KEYS[1], ARGV[1]) or redis.call('HGET', KEYS[1], ARGV[4])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return ARGV[2]
