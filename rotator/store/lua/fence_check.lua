-- Fencing check, spliced by the loader where a script says `-- include: fence_check`.
-- KEYS[1] the target's lease key
-- ARGV[1] the fencing token the caller's lease was granted
-- Fails with LEASE_LOST unless the lease still holds "{fence}:{job_id}" for this fence.
local lease = redis.call('GET', KEYS[1])
if (not lease) or (string.sub(lease, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':') then
  return redis.error_reply('LEASE_LOST')
end
