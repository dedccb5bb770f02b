--[[ send.lua - store one chat message durably and push it (atomic).

  One receiver R; every key shares R's hash tag {u:R}, so the script runs on
  Redis Cluster. The push channel is passed in ARGV (PUBLISH is not a key
  access and is broadcast across a cluster).

  KEYS[1] {u:R}:user     hash: name (the receiver's username)
  KEYS[2] {u:R}:ids      hash: msgID -> "<sender uid>:<id>:<time ms>"
  KEYS[3] {u:R}:msg      hash: id -> MESSAGE body JSON
  KEYS[4] {u:R}:pending  zset: unconfirmed ids (score = id)
  KEYS[5] {u:R}:hist     zset: at least the last history_max ids (score =
                         id; up to history_max + slack, see TRIM below)
  KEYS[6] {u:R}:seq      counter of R's message ids
  KEYS[7] {u:R}:dlv      set: ids pushed (or read by init) at least once

  ARGV[1] sender uid (decimal)
  ARGV[2] msgID (client's id, [A-Za-z0-9_-]{8,64}, validated by the caller)
  ARGV[3] max_pending  (507 when the pending inbox already holds this many)
  ARGV[4] history_max  (ids kept in hist for sync)
  ARGV[5] channel      cg:u:<R>
  ARGV[6] body piece between id and receiver name:
            ,"chatID":"<msgID>","sender":"<sender name>","reciver":"
  ARGV[7] body piece between receiver name and time:
            ","content":<content as a JSON string>,"time":
  ARGV[8] body tail:  ,"senderId":<S>,"reciverId":<R>}

  The body stored and pushed is therefore
    {"id":ID,"chatID":"..","sender":"..","reciver":"NAME","content":"..",
     "time":TIME,"senderId":S,"reciverId":R}
  in exactly that key order (PROTOCOL.md section 4).

  Returns {code, id, time ms}:
    {200, id, time}  stored (or a retry of the same (sender, msgID): the
                     first id and time, nothing stored or published again)
    {404, 0, 0}      the receiver does not exist
    {409, 0, 0}      msgID is still pending for R from another sender.
                     Once that message is confirmed (no longer pending) the
                     msgID is free again for any sender: the new message is
                     stored and ids[msgID] points to it from then on
                     (PROTOCOL.md: "already pending ... from another
                     sender").
    {507, 0, 0}      R's pending inbox holds max_pending messages
  Nothing is written on any answer but a first 200.
]]

local K_USER, K_IDS, K_MSG, K_PENDING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_HIST, K_SEQ, K_DLV = KEYS[5], KEYS[6], KEYS[7]

local sender      = ARGV[1]
local msgid       = ARGV[2]
local max_pending = tonumber(ARGV[3])
local history_max = tonumber(ARGV[4])
local channel     = ARGV[5]

-- History trimming is done in chunks, not one id per send: only every
-- (slack + 1)-th id (id % (slack + 1) == 0; ids are consecutive, so that
-- is every (slack + 1)-th stored message) looks at the history size and
-- then drops everything beyond history_max at once, with one call per
-- command rather than one per id. The history therefore holds between
-- history_max and history_max + slack ids. slack is 64, or less for a small
-- history_max (history_max / 16: 0 below 16, i.e. exact trimming). TRIM_MAX
-- bounds one call if history_max was lowered (the rest goes with the
-- following chunks).
local TRIM_MAX = 128
local slack = math.floor(history_max / 16)
if slack > 64 then slack = 64 end

-- Usernames are [A-Za-z0-9_.-] and need no escaping; anything else is
-- escaped by cjson (without its quotes) so the body stays valid JSON.
local function json_inner(s)
    if string.find(s, '^[%w_.%-]*$') then return s end
    return string.sub(cjson.encode(s), 2, -2)
end

-- The msgID of a stored body: it sits at a fixed place because this script
-- builds every body.
local function body_chat_id(body)
    return string.match(body, '^{"id":%d+,"chatID":"([%w_%-]+)"')
end

-- Drop everything kept for the ids of gone (neither pending nor in the
-- history any more): their bodies, their msgID entries (only where the
-- msgID still points at that id) and their dlv marks, a few calls in all.
local function forget(gone)
    local bodies = redis.call('HMGET', K_MSG, unpack(gone))
    local cids, cid_id = {}, {}
    for i, body in ipairs(bodies) do
        local cid = body and body_chat_id(body)
        if cid then
            cids[#cids + 1] = cid
            cid_id[#cids] = gone[i]
        end
    end
    if #cids > 0 then
        local vals = redis.call('HMGET', K_IDS, unpack(cids))
        local del = {}
        for i, v in ipairs(vals) do
            if v and string.match(v, '^%d+:(%d+):') == cid_id[i] then
                del[#del + 1] = cids[i]
            end
        end
        if #del > 0 then
            redis.call('HDEL', K_IDS, unpack(del))
        end
    end
    redis.call('HDEL', K_MSG, unpack(gone))
    redis.call('SREM', K_DLV, unpack(gone))
end

local name = redis.call('HGET', K_USER, 'name')
if not name then
    return {404, 0, 0}
end

local prev = redis.call('HGET', K_IDS, msgid)
if prev then
    local s, pid, pt = string.match(prev, '^(%d+):(%d+):(%d+)$')
    if s == sender then
        return {200, tonumber(pid), tonumber(pt)}
    end
    if redis.call('ZSCORE', K_PENDING, pid) then
        return {409, 0, 0}
    end
    -- Confirmed: the msgID is free again (see 409 above).
end

if redis.call('ZCARD', K_PENDING) >= max_pending then
    return {507, 0, 0}
end

local id = redis.call('INCR', K_SEQ)
local now = redis.call('TIME')
local time = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local sid, stime = string.format('%d', id), string.format('%d', time)

local body = '{"id":' .. sid .. ARGV[6] .. json_inner(name) .. ARGV[7] ..
             stime .. ARGV[8]

redis.call('HSET', K_MSG, sid, body)
redis.call('ZADD', K_PENDING, id, sid)
redis.call('ZADD', K_HIST, id, sid)
redis.call('HSET', K_IDS, msgid, sender .. ':' .. sid .. ':' .. stime)

if id % (slack + 1) == 0 then
    local excess = redis.call('ZCARD', K_HIST) - history_max
    if excess > 0 then
        if excess > TRIM_MAX then excess = TRIM_MAX end
        local old = redis.call('ZRANGE', K_HIST, 0, excess - 1)
        redis.call('ZREMRANGEBYRANK', K_HIST, 0, excess - 1)
        -- The ones still pending stay: one range read finds them (scores
        -- are ids; old holds the history's lowest ids, in order).
        local still = {}
        for _, p in ipairs(redis.call('ZRANGEBYSCORE', K_PENDING, old[1], old[#old])) do
            still[p] = true
        end
        local gone = {}
        for _, oid in ipairs(old) do
            if not still[oid] then gone[#gone + 1] = oid end
        end
        if #gone > 0 then forget(gone) end
    end
end

-- A positive count means some gateway node holds a session of R and got
-- the push: a later init reports the message as redelivered.
if redis.call('PUBLISH', channel, 'M' .. sid .. ':' .. stime .. ':' .. body) > 0 then
    redis.call('SADD', K_DLV, sid)
end

return {200, id, time}
