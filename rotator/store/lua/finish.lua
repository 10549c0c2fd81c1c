-- End a job in a terminal state, fenced: promotion and lease release in the same write.
-- KEYS[1] target lease   KEYS[2] job hash   KEYS[3] jobs due   KEYS[4] target active
-- KEYS[5] target hash   KEYS[6] jobs dead
-- ARGV[1] fence   ARGV[2] job id   ARGV[3] state   ARGV[4] now   ARGV[5] promote (0/1)
-- ARGV[6] version   ARGV[7] remote version   ARGV[8] dead (0/1)   ARGV[9] clear pending (0/1)
-- ARGV[10] owed terminal audit event (JSON, '' when none)   ARGV[11] settle deadline
-- ARGV[12..] job field/value pairs
-- The terminal audit event is owed until `settle`: the job stays in the due set until then, so
-- a worker killed between this write and the audit write leaves a job that a later delivery
-- finds terminal with its event still owed, and writes it.
-- include: fence_check
local fields = {}
for i = 12, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated_at', ARGV[4], 'audit_owed', ARGV[10],
  unpack(fields))
if ARGV[10] == '' then
  redis.call('ZREM', KEYS[3], ARGV[2])
else
  redis.call('ZADD', KEYS[3], ARGV[11], ARGV[2])
end
if redis.call('GET', KEYS[4]) == ARGV[2] then redis.call('DEL', KEYS[4]) end
-- The target hash: one read and one write, whatever the outcome.
local target = redis.call('HMGET', KEYS[5], 'current', 'pending')
local update = {'last_job', ARGV[2], 'last_outcome', ARGV[3]}
if ARGV[5] == '1' then
  if target[1] and target[1] ~= ARGV[6] then
    update[#update + 1] = 'previous'; update[#update + 1] = target[1]
  end
  for _, v in ipairs({'current', ARGV[6], 'rotated_at', ARGV[4], 'remote_version', ARGV[7]}) do
    update[#update + 1] = v
  end
end
if ARGV[9] == '1' or (ARGV[5] == '1' and target[2] == ARGV[6]) then
  for _, v in ipairs({'pending', '', 'pending_job', ''}) do update[#update + 1] = v end
end
redis.call('HSET', KEYS[5], unpack(update))
if ARGV[8] == '1' then redis.call('ZADD', KEYS[6], ARGV[4], ARGV[2]) end
redis.call('DEL', KEYS[1])
return 1
