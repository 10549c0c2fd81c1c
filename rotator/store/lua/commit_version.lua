-- Store a sealed secret version, unless the same value was committed meanwhile.
-- KEYS[1] secret fingerprints   KEYS[2] secret versions
-- ARGV[1] fingerprint   ARGV[2] version   ARGV[3] Fernet token
-- Returns the version that holds the value.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return ARGV[2]
