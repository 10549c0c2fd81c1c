-- Store a sealed secret version, unless the same value was committed meanwhile, and keep the
-- record of the newest version's field names (names only) current.
-- KEYS[1] secret fingerprints   KEYS[2] secret versions   KEYS[3] secret latest
-- ARGV[1] fingerprint   ARGV[2] version   ARGV[3] Fernet token
-- ARGV[4] the version's field names (JSON)   ARGV[5] MAC of version and names
-- Version ids are zero-padded (v000000000042): newer sorts later as a string, so a commit that
-- lost a race to a newer version leaves that one's record in place.
-- Returns the version that holds the value.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local newest = redis.call('HGET', KEYS[3], 'version')
if not newest or newest < ARGV[2] then
  redis.call('HSET', KEYS[3], 'version', ARGV[2], 'names', ARGV[4], 'mac', ARGV[5])
end
return ARGV[2]
