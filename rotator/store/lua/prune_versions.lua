-- Delete a secret's stored versions beyond the cap, keeping every version still referenced.
-- KEYS[1] secret versions   KEYS[2] secret fingerprints (its '#seq' field, the sequence
--         number, names no version and is never deleted)
-- KEYS[3..] hashes that may name a version: the targets using the secret (current, previous,
-- pending) and their active jobs (secret_version, requested_version)
-- ARGV[1] how many of the newest versions to keep
-- Version ids are zero-padded (v000000000042), so they sort by sequence as strings.
-- Returns the number of versions deleted.
local keep = tonumber(ARGV[1])
if redis.call('HLEN', KEYS[1]) <= keep then return 0 end
local versions = redis.call('HKEYS', KEYS[1])
table.sort(versions)
local kept = {}
for i = math.max(1, #versions - keep + 1), #versions do kept[versions[i]] = true end
for i = 3, #KEYS do
  local named = redis.call('HMGET', KEYS[i], 'current', 'previous', 'pending',
    'secret_version', 'requested_version')
  for j = 1, #named do
    if named[j] then kept[named[j]] = true end
  end
end
local doomed = {}
for _, version in ipairs(versions) do
  if not kept[version] then doomed[version] = true end
end
local deleted = 0
for version in pairs(doomed) do
  redis.call('HDEL', KEYS[1], version)
  deleted = deleted + 1
end
if deleted > 0 then
  local fingerprints = redis.call('HGETALL', KEYS[2])
  for i = 1, #fingerprints, 2 do
    if doomed[fingerprints[i + 1]] then redis.call('HDEL', KEYS[2], fingerprints[i]) end
  end
end
return deleted
