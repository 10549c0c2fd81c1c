-- Store a sealed secret version, unless the same value was committed meanwhile, and keep the
-- record of the newest version's field names (names only) current.
-- KEYS[1] secret fingerprints   KEYS[2] secret versions
-- ARGV[1] fingerprint (raw bytes)   ARGV[2] version   ARGV[3] sealed token
-- ARGV[4] the fingerprint in hex (how entries stored before are keyed)
-- ARGV[5] the '#latest' record: "{version}|{keyed digest of its field names}"
-- Version ids are zero-padded (v000000000042): newer sorts later as a string, so a commit that
-- lost a race to a newer version leaves that one's record in place.
-- Returns the version that holds the value.
local found = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[4], '#latest')
local existing = found[1] or found[2]
if existing then return existing end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local newest = found[3]
if not newest or string.sub(newest, 1, #ARGV[2]) < ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], '#latest', ARGV[5])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return ARGV[2]
