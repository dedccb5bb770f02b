--[[ pending.lua - the size of one user's pending inbox and the time its
  oldest message was stored (for the pending-inbox gauges of /metrics).

  Both keys share the user's hash tag {u:U}, so the script runs on Redis
  Cluster. Read-only and O(log n): ZCARD, one ZRANGE of the first member,
  one HGET.

  KEYS[1] {u:U}:pending  zset: unconfirmed ids (score = id, so the lowest
                         id is the oldest message)
  KEYS[2] {u:U}:msg      hash: id -> MESSAGE body JSON

  Returns {count, oldest time ms}; the time is 0 when nothing is pending
  (or the body is missing, which chat.lua never leaves behind).
]]

local n = redis.call('ZCARD', KEYS[1])
if n == 0 then
    return {0, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
local body = first[1] and redis.call('HGET', KEYS[2], first[1])
local t = body and string.match(body, ',"time":(%d+),"senderId":%d+,"reciverId":%d+}$')
return {n, tonumber(t) or 0}
