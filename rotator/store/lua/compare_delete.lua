-- Delete a key only while it still holds the value the caller knows: releases a token-mint
-- lock only by its holder (a lock that expired and was taken by another is left alone), and
-- drops a shared token only if it is still the one the provider rejected.
-- KEYS[1] the key
-- ARGV[1] the value it must hold
-- Returns 1 if deleted, 0 if it held something else (or nothing).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
