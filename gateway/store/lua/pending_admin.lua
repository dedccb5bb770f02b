--[[ pending_admin.lua - the backend API's operator view of one user's
  pending inbox (PROTOCOL.md section 8): a page of it, and a bounded purge.

  Kept apart from chat.lua on purpose: the chat path never loads it, and a
  change to one does not touch the other. Every key shares the user's hash
  tag {u:R}, so it runs on Redis Cluster. Each call does bounded work: a
  page reads at most `limit` members (the caller bounds it, 100 at most),
  a purge removes at most `max` (the caller sends 500 at most per call and
  loops across calls), so a user with 100 000 pending messages never holds
  Redis for long.

  The data model is chat.lua's (store.h has it whole):
    {u:R}:pending  zset: unconfirmed ids (score = id)
    {u:R}:msg      hash: "<id>" -> body; "m:<msgID>" ->
                   "<sender>:<id>:<time>:<digest>:<f>" (no "<digest>:" in
                   entries written before the digest existed)
    {u:R}:user     hash: ... trimmed: the history is every id above it
    {u:R}:psend    hash: sender uid -> its pending messages here (those
                   whose entry has a digest; chat.lua)

  ARGV[1] names the operation:

  PAGE  KEYS {u:R}:pending, {u:R}:msg
        ARGV "page", after (ids above it; "0" from the start), limit
        Returns {id1, body1, id2, body2, ...}, oldest first; a body is
        false when missing (chat.lua never leaves one missing).

  PURGE KEYS {u:R}:pending, {u:R}:msg, {u:R}:user, {u:R}:psend
        ARGV "purge", max
        Removes the oldest max pending ids as a confirmation would (no
        delivered notice): each leaves the pending set and its sender's
        count in psend (when counted); one already out of the history loses
        its body and its msgID entry (where that entry still names it).
        Returns {purged, remaining}.
]]

-- "<sender>:<id>:<time>:[<digest>:]<f>" -> sender, id, digest ('' when
-- the entry has none), as chat.lua reads it.
local function parse_entry(v)
    local s, id, d = string.match(v, '^(%d+):(%d+):%d+:(%x*):?%d$')
    return s, id, d
end

local function body_chat_id(body)
    return string.match(body, '^{"id":%d+,"chatID":"([%w_%-]+)"')
end

local op = ARGV[1]

if op == 'page' then
    local K_PENDING, K_MSG = KEYS[1], KEYS[2]
    local after, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
    local ids = redis.call('ZRANGEBYSCORE', K_PENDING, '(' .. after, '+inf', 'LIMIT', 0, limit)
    if #ids == 0 then return {} end
    local bodies = redis.call('HMGET', K_MSG, unpack(ids))
    local out = {}
    for i, id in ipairs(ids) do
        out[#out + 1] = id
        out[#out + 1] = bodies[i]
    end
    return out
end

if op == 'purge' then
    local K_PENDING, K_MSG, K_USER, K_PSEND = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
    local max = tonumber(ARGV[2])
    local ids = redis.call('ZRANGE', K_PENDING, 0, max - 1)
    if #ids == 0 then return {0, 0} end
    redis.call('ZREM', K_PENDING, unpack(ids))
    local trimmed = tonumber(redis.call('HGET', K_USER, 'trimmed')) or 0
    local bodies = redis.call('HMGET', K_MSG, unpack(ids))
    local del, mkeys, mkey_id = {}, {}, {}
    for i, id in ipairs(ids) do
        local body = bodies[i]
        if body then
            if tonumber(id) <= trimmed then del[#del + 1] = id end
            local cid = body_chat_id(body)
            if cid then
                mkeys[#mkeys + 1] = 'm:' .. cid
                mkey_id[#mkeys] = id
            end
        end
    end
    -- Per-sender counts of what was purged (sender uid -> messages), for
    -- the entries chat.lua counted: those that still name their id and
    -- have a digest.
    local by_sender = {}
    if #mkeys > 0 then
        local vals = redis.call('HMGET', K_MSG, unpack(mkeys))
        for i, v in ipairs(vals) do
            local s, eid, d
            if v then s, eid, d = parse_entry(v) end
            if s and eid == mkey_id[i] then
                if d ~= '' then by_sender[s] = (by_sender[s] or 0) + 1 end
                if tonumber(eid) <= trimmed then del[#del + 1] = mkeys[i] end
            end
        end
    end
    if #del > 0 then redis.call('HDEL', K_MSG, unpack(del)) end
    -- As chat.lua's recive does per message; never below 0.
    for s, n in pairs(by_sender) do
        if redis.call('HINCRBY', K_PSEND, s, -n) <= 0 then
            redis.call('HDEL', K_PSEND, s)
        end
    end
    return {#ids, redis.call('ZCARD', K_PENDING)}
end

return redis.error_reply('ERR pending_admin.lua: unknown operation "' .. tostring(op) .. '"')
