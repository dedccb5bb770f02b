--[[ fetch.lua - read a batch of a user's messages after a given id.

  Every key shares the user's hash tag {u:U}, so the script runs on Redis
  Cluster. Reads are bounded: one ZRANGEBYSCORE ... LIMIT, then a few
  calls over at most limit ids.

  KEYS[1] {u:U}:pending  zset: unconfirmed ids
  KEYS[2] {u:U}:user     hash: trimmed = the history is every id above it
                         (at least the last history_max; chat.lua)
  KEYS[3] {u:U}:seq      the user's newest id
  KEYS[4] {u:U}:msg      hash: id -> MESSAGE body JSON, and
                         m:<msgID> -> "<sender>:<id>:<time>:[<digest>:]<f>"
                         (f odd once pushed to a session or read by an
                         init; chat.lua has the rest, kept as it is)

  ARGV[1] "init" (read the pending inbox) or "sync" (read the history)
  ARGV[2] after: only ids > after (decimal; 0 = from the start)
  ARGV[3] limit: at most this many messages (clamped to 1..1000)

  Returns {more, position, id1, time1, redelivered1, body1, id2, ...},
  messages oldest first:
    more         1 when further messages follow the last one returned
    position     the user's newest id (seq) as this call read it: the end of
                 the user's stream, where a device that has read everything
                 continues its sync
    redelivered  init: 1 if the message was pushed before or read by an
                 earlier init; init then marks every returned message as
                 read. sync: 1 if it was pushed or read by an init, or is
                 no longer pending (confirmed); sync changes nothing.
  Five or six calls whatever the batch size: the position, the range, the
  bodies, their msgID entries, (sync) their pending scores, (init) the
  marks.
]]

local K_PENDING, K_USER, K_SEQ, K_MSG = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local init  = ARGV[1] == 'init'
local after = ARGV[2]
local limit = tonumber(ARGV[3]) or 1

-- The hard cap keeps one call short whatever the caller asks for.
if limit < 1 then limit = 1 end
if limit > 1000 then limit = 1000 end

local position = tonumber(redis.call('GET', K_SEQ)) or 0
local ids
if init then
    ids = redis.call('ZRANGEBYSCORE', K_PENDING, '(' .. after, '+inf', 'LIMIT', 0, limit + 1)
else
    -- The history is the consecutive ids trimmed+1 .. seq.
    local first = math.max(tonumber(after) or 0, tonumber(redis.call('HGET', K_USER, 'trimmed')) or 0) + 1
    local last = math.min(position, first + limit)
    ids = {}
    for i = first, last do ids[#ids + 1] = string.format('%d', i) end
end

local out = {0, position}
local n = #ids
if n > limit then
    out[1] = 1
    n = limit
    ids[limit + 1] = nil
end
if n == 0 then return out end

local bodies = redis.call('HMGET', K_MSG, unpack(ids))

-- The msgID entry of each body (absent for a body without one).
local mkeys, mkey_of = {}, {}
for i = 1, n do
    local cid = bodies[i] and string.match(bodies[i], '^{"id":%d+,"chatID":"([%w_%-]+)"')
    if cid then
        mkeys[#mkeys + 1] = 'm:' .. cid
        mkey_of[i] = #mkeys
    end
end
local entries = #mkeys > 0 and redis.call('HMGET', K_MSG, unpack(mkeys)) or {}
local pending = (not init) and redis.call('ZMSCORE', K_PENDING, unpack(ids)) or nil

local marks = {}
for i = 1, n do
    local body = bodies[i]
    if body then
        local id = ids[i]
        -- The time sits at a fixed place at the end of every body (the
        -- content before it is a JSON string, so it cannot fake the tail).
        local t = string.match(body, ',"time":(%d+),"senderId":%d+,"reciverId":%d+}$')
        local j = mkey_of[i]
        local e = j and entries[j]
        local s, eid, et, dig, f
        if e then s, eid, et, dig, f = string.match(e, '^(%d+):(%d+):(%d+):(.-)(%d)$') end
        -- An entry that no longer names this id: the msgID was used again
        -- after this message was confirmed.
        local own = eid == id
        local pushed = own and tonumber(f) % 2 == 1
        local red
        if init then
            red = (not own or pushed) and 1 or 0
            if own and not pushed then
                marks[#marks + 1] = mkeys[j]
                marks[#marks + 1] = s .. ':' .. eid .. ':' .. et .. ':' .. dig .. (tonumber(f) + 1)
            end
        else
            red = (pushed or not own or not pending[i]) and 1 or 0
        end
        out[#out + 1] = tonumber(id)
        out[#out + 1] = tonumber(t) or 0
        out[#out + 1] = red
        out[#out + 1] = body
    end
end
if #marks > 0 then
    redis.call('HSET', K_MSG, unpack(marks))
end

return out
