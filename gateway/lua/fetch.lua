--[[ fetch.lua - read a batch of a user's messages after a given id.

  Every key shares the user's hash tag {u:U}, so the script runs on Redis
  Cluster. Reads are bounded: one ZRANGEBYSCORE ... LIMIT and at most limit
  HGETs.

  KEYS[1] {u:U}:pending  zset: unconfirmed ids
  KEYS[2] {u:U}:hist     zset: at least the last history_max ids (send.lua
                         trims in chunks of up to 64)
  KEYS[3] {u:U}:msg      hash: id -> MESSAGE body JSON
  KEYS[4] {u:U}:dlv      set: ids pushed (or read by init) at least once

  ARGV[1] "init" (read the pending inbox) or "sync" (read the history)
  ARGV[2] after: only ids > after (decimal; 0 = from the start)
  ARGV[3] limit: at most this many messages (clamped to 1..1000)

  Returns {more, id1, time1, redelivered1, body1, id2, ...}, oldest first:
    more         1 when further messages follow the last one returned
    redelivered  init: 1 if the id was already in dlv (pushed before or read
                 by an earlier init); init then adds every returned id to
                 dlv. sync: 1 if the id is in dlv or no longer pending
                 (confirmed); sync changes nothing.
]]

local K_PENDING, K_HIST, K_MSG, K_DLV = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local init  = ARGV[1] == 'init'
local after = ARGV[2]
local limit = tonumber(ARGV[3]) or 1

-- The hard cap keeps one call short whatever the caller asks for.
if limit < 1 then limit = 1 end
if limit > 1000 then limit = 1000 end

local src = init and K_PENDING or K_HIST
local ids = redis.call('ZRANGEBYSCORE', src, '(' .. after, '+inf',
                       'LIMIT', 0, limit + 1)

local out = {0}
local n = #ids
if n > limit then
    out[1] = 1
    n = limit
end

for i = 1, n do
    local id = ids[i]
    local body = redis.call('HGET', K_MSG, id)
    if body then
        -- The time sits at a fixed place at the end of every body (the
        -- content before it is a JSON string, so it cannot fake the tail).
        local t = string.match(body, ',"time":(%d+),"senderId":%d+,"reciverId":%d+}$')
        local red
        if init then
            red = (redis.call('SADD', K_DLV, id) == 0) and 1 or 0
        elseif redis.call('SISMEMBER', K_DLV, id) == 1 or
               not redis.call('ZSCORE', K_PENDING, id) then
            red = 1
        else
            red = 0
        end
        out[#out + 1] = tonumber(id)
        out[#out + 1] = tonumber(t) or 0
        out[#out + 1] = red
        out[#out + 1] = body
    end
end

return out
