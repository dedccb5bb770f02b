--[[ chat.lua - a batch of chat state changes: sends and confirmations.

  The gateway collects the sends and confirmations that arrive in one turn
  of its event loop and runs them here in one EVALSHA per Redis connection
  (store_batch.c), in the order they arrived. Each operation is atomic on its own
  and behaves exactly as if it ran alone; the batch only saves the per-call
  cost (script dispatch, argument and reply conversion, the MULTI/EXEC of
  effect replication) and takes one reading of the clock.

  KEYS and ARGV are the operations' keys and arguments, concatenated in
  operation order. Operation i's first argument names it, and that fixes how
  many keys and arguments it takes:

    ARGV  "claim"  + 2 arguments, 2 keys   (CLAIM below)
    ARGV  "send"   + 11 arguments, 5 keys  (SEND below)
    ARGV  "recive" + 4 arguments, 4 keys   (RECIVE below)

  Every key of one operation shares one user's hash tag {u:U}. On Redis
  Cluster a batch must therefore only hold operations on users of one hash
  slot (store_batch.c groups by connection; a cluster client would group by slot).

  Returns one reply per operation, in order; an operation that raised an
  error (out of memory, a wrong type) returns that error as its element and
  does not stop the others.

  Pushes: SEND publishes an M record on the receiver's channel, RECIVE a D
  record on the sender's. Their format is written down once, in
  gateway/store/push_record.h, whose codec the gateway reads them with;
  what is built here must match it.

  Data of one receiver R (store.h has the whole model):
    {u:R}:msg      hash: "<id>"       -> MESSAGE body JSON
                         "m:<msgID>"  -> "<sender uid>:<id>:<time ms>:<digest>:<f>",
                         the msgID's newest message; f is the sum of
                           1  pushed to a session or read by an init (a
                              later init marks it redelivered)
                           2  the sender asked for a delivered notice
                         digest: 16 hex digits, the start of the SHA-1 of
                         the content (chat.c). Entries written before the
                         digest existed lack it (and its ":"); those were
                         not counted in psend either, so confirming them
                         lowers no count
    {u:R}:pending  zset: unconfirmed ids (score = id)
    {u:R}:psend    hash: sender uid -> how many of the pending ids are that
                   sender's (those whose entry has a digest); a sender's
                   field goes when its count reaches 0
    {u:R}:user     hash: name (the receiver's username), and trimmed: the
                   history (what sync reads) is every id above it, at least
                   the last history_max ids (up to history_max + slack, see
                   trim below); ids are consecutive, so it needs no set
    {u:R}:seq      counter of R's message ids

  CLAIM (only with msgid_unique_per_sender; chat.c) - the sender S claims
  a msgID for one (receiver, content) before the send itself runs on the
  receiver's keys (which, on Redis Cluster, live in another slot: the two
  cannot be one operation).
    KEYS  {u:S}:sent, {u:S}:sent.old
          hashes msgID -> "<R>:<digest>", the msgIDs of S's latest sends:
          sent takes new claims; once it holds SENT_GEN of them it is
          renamed to sent.old (dropping the previous sent.old), so the last
          SENT_GEN to 2 * SENT_GEN claims of S are remembered. Both expire
          SENT_TTL_MS after the last new claim.
    ARGV  msgID, "<R>:<digest>"
    Reply {200}  first claim of this msgID, or the same receiver and
                 content again (a retry): go on with SEND
          {409}  S claimed this msgID for another receiver or content
    Claims are atomic per sender: of two sends with one msgID to two
    receivers, the one whose claim runs first goes on, the other gets 409.
    A claim stays when the send after it fails (404, 429, 507, Redis down):
    a retry of the same message still passes it.

  SEND - store one chat message durably and push it.
    KEYS  {u:R}:user, {u:R}:msg, {u:R}:pending, {u:R}:seq, {u:R}:psend
    ARGV  sender uid (decimal)
          msgID (client's id, [A-Za-z0-9_-]{8,64}, validated by the caller)
          max_pending  (507 when the pending inbox already holds this many)
          max_pending_per_sender  (429 when this many of the pending
                       messages are the sender's)
          history_max  (ids kept in the history, for sync)
          channel      cg:u:<R>
          body piece between id and receiver name:
            ,"chatID":"<msgID>","sender":"<sender name>","reciver":"
          body piece between receiver name and time:
            ","content":<content as a JSON string>,"time":
          body tail:  ,"senderId":<S>,"reciverId":<R>}
          "1" when the sender wants a delivered notice once R confirms
          (some session of S subscribes to /user/queue/delivered), else "0"
          digest of the content (16 hex digits)
    The body stored and pushed is therefore
      {"id":ID,"chatID":"..","sender":"..","reciver":"NAME","content":"..",
       "time":TIME,"senderId":S,"reciverId":R}
    in exactly that key order (PROTOCOL.md section 4).
    Reply {code, id, time ms}:
      {200, id, time}  stored (or a retry of the same (sender, msgID) with
                       the same content: the first id and time, nothing
                       stored or published again)
      {404, 0, 0}      the receiver does not exist
      {409, 1, 0}      the sender used this msgID for R before with other
                       content (its entry's digest differs)
      {409, 0, 0}      msgID is still pending for R from another sender.
                       Once that message is confirmed (no longer pending)
                       the msgID is free again for any sender: the new
                       message is stored and m:<msgID> points to it from
                       then on (PROTOCOL.md: "already pending ... from
                       another sender").
      {507, 0, 0}      R's pending inbox holds max_pending messages
      {429, 0, 0}      max_pending_per_sender of them are from this sender
    Nothing is written on any answer but a first 200.

  RECIVE - the receiver R confirms one message.
    KEYS  {u:R}:msg, {u:R}:pending, {u:R}:user, {u:R}:psend
    ARGV  "msgid" (the next argument is a msgID) or "id" (a message id, as
          a STOMP ACK names it; the msgID is read from the stored body)
          the msgID or the id (decimal, no leading zeros)
          R (decimal), for the notification
          channel prefix "cg:u:" (the sender's channel is prefix .. sender)
    Reply {code, sender uid, id, stored time ms, first, msgID}:
      {200, S, id, t, 1, msgID}  confirmed now: left the pending inbox (and
                                 S's count in psend, if counted), and,
                                 if the sender asked for it, the sender's
                                 channel got
                                 D{"msgID":"..","id":N,"reciverId":R,"time":T}
                                 (T = now, ms)
      {200, S, id, t, 0, msgID}  confirmed before: nothing changes, nothing
                                 is published
      {404, 0, 0, 0, 0, ""}      never addressed to R (or forgotten:
                                 confirmed and out of the history window)
    A confirmation by msgID applies to the newest message with that msgID
    (SEND lets a msgID be used again once its message is confirmed).
]]

-- History trimming is done in chunks, not one id per send: only every
-- (slack + 1)-th id (id % (slack + 1) == 0; ids are consecutive, so that
-- is every (slack + 1)-th stored message) moves trimmed up to
-- id - history_max and drops what fell out at once, with one call per
-- command rather than one per id. The history therefore holds between
-- history_max and history_max + slack ids. slack is 64, or less for a small
-- history_max (history_max / 16: 0 below 16, i.e. exact trimming). TRIM_MAX
-- bounds one step if history_max was lowered (the rest goes with the
-- following chunks).
local TRIM_MAX = 128

-- One reading of the clock for the whole batch: its operations are stored
-- in one atomic step. Read on first use (a batch of failed sends needs none).
local now_ms, now_str
local function clock()
    if not now_ms then
        local t = redis.call('TIME')
        now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        now_str = string.format('%d', now_ms)
    end
    return now_ms, now_str
end

-- Usernames are [A-Za-z0-9_.-] and need no escaping; anything else is
-- escaped by cjson (without its quotes) so the body stays valid JSON.
local function json_inner(s)
    if string.find(s, '^[%w_.%-]*$') then return s end
    return string.sub(cjson.encode(s), 2, -2)
end

-- The msgID of a stored body: it sits at a fixed place because SEND builds
-- every body.
local function body_chat_id(body)
    return string.match(body, '^{"id":%d+,"chatID":"([%w_%-]+)"')
end

-- "<sender>:<id>:<time>:[<digest>:]<f>" -> sender, id, time (strings), f
-- (a number), digest ('' when the entry has none). f stays last, so the
-- entries of before the digest read the same.
local PUSHED, NOTIFY = 1, 2
local function parse_entry(v)
    local s, id, t, d, f = string.match(v, '^(%d+):(%d+):(%d+):(%x*):?(%d)$')
    return s, id, t, tonumber(f), d
end

-- CLAIM's memory per sender: SENT_GEN msgIDs per generation, two
-- generations, gone a day after the sender's last new msgID.
local SENT_GEN = 1000
local SENT_TTL_MS = 86400000

-- Drop everything kept for the ids of gone (neither pending nor in the
-- history any more): their bodies and their msgID entries (only where the
-- msgID still points at that id), in two reads and one delete.
local function forget(K_MSG, gone)
    local bodies = redis.call('HMGET', K_MSG, unpack(gone))
    local mkeys, mkey_id = {}, {}
    for i, body in ipairs(bodies) do
        local cid = body and body_chat_id(body)
        if cid then
            mkeys[#mkeys + 1] = 'm:' .. cid
            mkey_id[#mkeys] = gone[i]
        end
    end
    local del = {unpack(gone)}
    if #mkeys > 0 then
        local vals = redis.call('HMGET', K_MSG, unpack(mkeys))
        for i, v in ipairs(vals) do
            if v and select(2, parse_entry(v)) == mkey_id[i] then
                del[#del + 1] = mkeys[i]
            end
        end
    end
    redis.call('HDEL', K_MSG, unpack(del))
end

-- Per receiver (its user key), what this batch knows: its name (false:
-- no such user) and its trimmed mark.
local names, trimmed = {}, {}

local function trimmed_of(K_USER)
    local t = trimmed[K_USER]
    if t == nil then
        t = tonumber(redis.call('HGET', K_USER, 'trimmed')) or 0
        trimmed[K_USER] = t
    end
    return t
end

-- Move R's history start to id - history_max: the ids that leave it are
-- dropped unless still pending (those go when confirmed, see RECIVE).
local function trim(K_USER, K_MSG, K_PENDING, id, history_max)
    local from, to = trimmed_of(K_USER), id - history_max
    if to <= from then return end
    if to - from > TRIM_MAX then to = from + TRIM_MAX end
    local still = {}
    for _, p in ipairs(redis.call('ZRANGEBYSCORE', K_PENDING, from + 1, to)) do
        still[p] = true
    end
    local gone = {}
    for i = from + 1, to do
        local sid = string.format('%d', i)
        if not still[sid] then gone[#gone + 1] = sid end
    end
    if #gone > 0 then forget(K_MSG, gone) end
    redis.call('HSET', K_USER, 'trimmed', string.format('%d', to))
    trimmed[K_USER] = to
end


local function claim(k, a)
    local K_SENT, K_OLD = KEYS[k], KEYS[k + 1]
    local msgid, v = ARGV[a], ARGV[a + 1]
    local have = redis.call('HGET', K_SENT, msgid) or redis.call('HGET', K_OLD, msgid)
    if have then
        return {have == v and 200 or 409}
    end
    if redis.call('HLEN', K_SENT) >= SENT_GEN then
        redis.call('RENAME', K_SENT, K_OLD)
    end
    redis.call('HSET', K_SENT, msgid, v)
    redis.call('PEXPIRE', K_SENT, SENT_TTL_MS)
    return {200}
end

local function send(k, a)
    local K_USER, K_MSG, K_PENDING, K_SEQ = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local K_PSEND = KEYS[k + 4]
    local sender, msgid = ARGV[a], ARGV[a + 1]
    local max_pending, per_sender = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local history_max = tonumber(ARGV[a + 4])
    local channel = ARGV[a + 5]
    local notify = ARGV[a + 9] == '1' and NOTIFY or 0
    local digest = ARGV[a + 10]

    local name = names[K_USER]
    if name == nil then
        name = redis.call('HGET', K_USER, 'name') or false
        names[K_USER] = name
    end
    if not name then
        return {404, 0, 0}
    end

    local mkey = 'm:' .. msgid
    local prev = redis.call('HGET', K_MSG, mkey)
    if prev then
        local s, pid, pt, _, pd = parse_entry(prev)
        if s == sender then
            -- An entry without a digest predates it: taken as a retry.
            if pd ~= '' and pd ~= digest then
                return {409, 1, 0}
            end
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
    if (tonumber(redis.call('HGET', K_PSEND, sender)) or 0) >= per_sender then
        return {429, 0, 0}
    end

    local id = redis.call('INCR', K_SEQ)
    local time, stime = clock()
    local sid = string.format('%d', id)
    local body = '{"id":' .. sid .. ARGV[a + 6] .. json_inner(name) .. ARGV[a + 7] ..
                 stime .. ARGV[a + 8]
    -- Pushed first, so the one HSET can record whether some gateway node
    -- holds a session of R (a positive count): a later init then reports
    -- the message as redelivered. Nothing is seen before the script ends,
    -- and the INCR above was its first write, after which Redis lets the
    -- script's writes through, so the push cannot outlive a failed store.
    -- The record: M<id>:<time>:<body> (gateway/store/push_record.h).
    local pushed = redis.call('PUBLISH', channel, 'M' .. sid .. ':' .. stime .. ':' .. body) > 0
    redis.call('HSET', K_MSG, sid, body, mkey,
               sender .. ':' .. sid .. ':' .. stime .. ':' .. digest .. ':' ..
               (notify + (pushed and PUSHED or 0)))
    redis.call('ZADD', K_PENDING, sid, sid)
    redis.call('HINCRBY', K_PSEND, sender, 1)

    local slack = math.min(64, math.floor(history_max / 16))
    if id % (slack + 1) == 0 then
        trim(K_USER, K_MSG, K_PENDING, id, history_max)
    end
    return {200, id, time}
end

local NOT_FOUND = {404, 0, 0, 0, 0, ''}

local function recive(k, a)
    local K_MSG, K_PENDING, K_USER, K_PSEND = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    local mode, key, reciver, prefix = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]

    local msgid = key
    if mode == 'id' then
        local body = redis.call('HGET', K_MSG, key)
        if not body then return NOT_FOUND end
        -- Every body is built by SEND with the chatID second; fall back to
        -- a full decode should that ever change.
        msgid = body_chat_id(body)
        if not msgid then
            local ok, doc = pcall(cjson.decode, body)
            if not ok or type(doc) ~= 'table' or type(doc.chatID) ~= 'string' then
                return NOT_FOUND
            end
            msgid = doc.chatID
        end
    end

    local mkey = 'm:' .. msgid
    local v = redis.call('HGET', K_MSG, mkey)
    if not v then return NOT_FOUND end
    local sender, id, t, flags, digest = parse_entry(v)
    if not sender then return NOT_FOUND end
    if mode == 'id' and id ~= key then
        -- The msgID was used again by a newer message after this one was
        -- confirmed (SEND): this one is confirmed already, answer as a
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
        -- Out of the history already (it was pending when the history
        -- moved past it): nothing keeps it now.
        if tonumber(id) <= trimmed_of(K_USER) then
            redis.call('HDEL', K_MSG, id, mkey)
        end
        -- Only entries with a digest were counted by SEND. Clamped at 0: a
        -- count never stays negative, whatever the data.
        if digest ~= '' and redis.call('HINCRBY', K_PSEND, sender, -1) <= 0 then
            redis.call('HDEL', K_PSEND, sender)
        end
        if flags >= NOTIFY then
            local _, ms = clock()
            -- The record: D<notice> (gateway/store/push_record.h).
            redis.call('PUBLISH', prefix .. sender,
                       'D{"msgID":"' .. msgid .. '","id":' .. id .. ',"reciverId":' ..
                       reciver .. ',"time":' .. ms .. '}')
        end
    end
    return {200, tonumber(sender), tonumber(id), tonumber(t), first, msgid}
end

-- name -> {function, keys, arguments after the name}
local OPS = {
    claim  = {claim, 2, 2},
    send   = {send, 5, 11},
    recive = {recive, 4, 4},
}

-- Check the layout of the whole batch before anything runs: a malformed
-- batch is the caller's bug and is refused as a whole.
local k, a = 1, 1
while a <= #ARGV do
    local op = OPS[ARGV[a]]
    if not op or a + op[3] > #ARGV then
        return redis.error_reply('ERR chat.lua: bad operation "' .. tostring(ARGV[a]) ..
                                 '" at argument ' .. a)
    end
    k, a = k + op[2], a + 1 + op[3]
end
if k ~= #KEYS + 1 then
    return redis.error_reply('ERR chat.lua: the operations take ' .. (k - 1) ..
                             ' keys, ' .. #KEYS .. ' were given')
end

local out = {}
k, a = 1, 1
while a <= #ARGV do
    local op = OPS[ARGV[a]]
    local ok, r = pcall(op[1], k, a + 1)
    if ok then
        out[#out + 1] = r
    else
        out[#out + 1] = {err = type(r) == 'table' and r.err or tostring(r)}
    end
    k, a = k + op[2], a + 1 + op[3]
end
return out
