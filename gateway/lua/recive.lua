--[[ recive.lua - the receiver R confirms one message (atomic).

  Every key shares R's hash tag {u:R}; the sender's channel name is built
  from the prefix in ARGV (PUBLISH is not a key access), so the script runs
  on Redis Cluster.

  KEYS[1] {u:R}:ids      hash: msgID -> "<sender uid>:<id>:<time ms>"
  KEYS[2] {u:R}:msg      hash: id -> MESSAGE body JSON
  KEYS[3] {u:R}:pending  zset: unconfirmed ids
  KEYS[4] {u:R}:hist     zset: at least the last history_max ids
  KEYS[5] {u:R}:dlv      set: ids pushed at least once

  ARGV[1] "msgid" (ARGV[2] is a msgID) or "id" (ARGV[2] is a message id, as
          a STOMP ACK names it; the msgID is read from the stored body)
  ARGV[2] the msgID or the id (decimal, no leading zeros)
  ARGV[3] R (decimal), for the notification
  ARGV[4] channel prefix "cg:u:" (the sender's channel is prefix .. sender)

  Returns {code, sender uid, id, stored time ms, first, msgID}:
    {200, S, id, t, 1, msgID}  confirmed now: left the pending inbox, and the
                               sender's channel got
                               D{"msgID":"..","id":N,"reciverId":R,"time":T}
                               (T = now, ms)
    {200, S, id, t, 0, msgID}  confirmed before: nothing changes, nothing
                               is published
    {404, 0, 0, 0, 0, ""}      never addressed to R (or forgotten: confirmed
                               and out of the history window)
  A confirmation by msgID applies to the newest message with that msgID
  (send.lua lets a msgID be used again once its message is confirmed).
]]

local K_IDS, K_MSG, K_PENDING, K_HIST, K_DLV =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local mode    = ARGV[1]
local key     = ARGV[2]
local reciver = ARGV[3]
local prefix  = ARGV[4]

local NOT_FOUND = {404, 0, 0, 0, 0, ''}

local msgid = key
if mode == 'id' then
    local body = redis.call('HGET', K_MSG, key)
    if not body then return NOT_FOUND end
    -- Every body is built by send.lua with the chatID second; fall back to
    -- a full decode should that ever change.
    msgid = string.match(body, '^{"id":%d+,"chatID":"([%w_%-]+)"')
    if not msgid then
        local ok, doc = pcall(cjson.decode, body)
        if not ok or type(doc) ~= 'table' or type(doc.chatID) ~= 'string' then
            return NOT_FOUND
        end
        msgid = doc.chatID
    end
end

local v = redis.call('HGET', K_IDS, msgid)
if not v then return NOT_FOUND end
local sender, id, t = string.match(v, '^(%d+):(%d+):(%d+)$')
if not sender then return NOT_FOUND end
if mode == 'id' and id ~= key then
    -- The msgID was used again by a newer message after this one was
    -- confirmed (send.lua): this one is confirmed already, answer as a
    -- repeated confirmation, from what its body says.
    if redis.call('ZSCORE', K_PENDING, key) then return NOT_FOUND end
    local body = redis.call('HGET', K_MSG, key)
    local bt, bs = string.match(body, ',"time":(%d+),"senderId":(%d+),"reciverId":%d+}$')
    if not bt then return NOT_FOUND end
    return {200, tonumber(bs), tonumber(key), tonumber(bt), 0, msgid}
end

local first = 0
if redis.call('ZREM', K_PENDING, id) == 1 then
    first = 1
    redis.call('SREM', K_DLV, id)
    if not redis.call('ZSCORE', K_HIST, id) then
        redis.call('HDEL', K_MSG, id)
        redis.call('HDEL', K_IDS, msgid)
    end
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    redis.call('PUBLISH', prefix .. sender,
               'D{"msgID":"' .. msgid .. '","id":' .. id .. ',"reciverId":' ..
               reciver .. ',"time":' .. string.format('%d', ms) .. '}')
end

return {200, tonumber(sender), tonumber(id), tonumber(t), first, msgid}
