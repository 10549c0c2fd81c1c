-- Fencing check, spliced by the loader where a script says `-- include: fence_check`.
-- KEYS[1] the target's lease key
-- ARGV[1] the whole lease value the caller was granted: "{fence}:{nonce}:{job_id}"
-- Fails with LEASE_LOST unless the lease holds exactly that value. The counter alone is not
-- enough: after a Redis failover or an AOF rollback the counter can repeat, and a random nonce
-- per lease keeps one holder from writing (or renewing) under another's lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE_LOST')
end
