#!lua name=sockeye
--[[ sockeye.lua -- the Redis function library every Sockeye node loads at start.

Connection state recovery needs a few multi-key steps to be atomic: giving a broadcast
its offset, storing it in its streams and publishing it must not interleave with another
publish (or pub/sub order would differ from offset order), and a session must be read and
taken over in one step (or two nodes could both restore it). Redis runs a function to
completion before anything else, so each step below is one FCALL, one round trip.

Key schema and field meanings: adapter/REDIS.md. Every key a function touches is passed in
KEYS (never built here), so the library works on Redis Cluster: the keys of one namespace
share the {N} hash tag, hence one slot. Loadable with FUNCTION LOAD REPLACE on Redis 7.0.

Times come from TIME, never from the callers, so offsets and the checks use one clock
even when the nodes' clocks disagree.

Two durations come with every call (the node computes both from its configuration):
  window_ms  how long a disconnected session stays recoverable (session TTLs);
  retain_ms  how long a stored entry is kept (trim threshold and stream expiry):
             window + heartbeat detection + 3 x SLACK_MS (rds_streams.c has the sum).
A restore needs no age test on the client's offset, but one on the session's 'read'
time: when its client was last known to have read everything sent to it (the node
reports it from the heartbeat: a pong proves everything queued before its ping was read).
Nothing in its rooms between its offset and that time can be unread, so what it missed
was published after 'read' minus the delivery latency. A take is refused once 'read' is
older than retain_ms - 2 x SLACK_MS: what it missed is then still kept, with SLACK_MS for
latency and SLACK_MS for the restore's own reads. That is what makes the window the same
for a quiet room (old offset, nothing missed) as for a busy one, and why taking a
session, or handing it back after a refused attempt, never extends it: only a read does.
With the defaults a client heard from within window + detection can always recover.
]]

local SLACK_MS = 10000

-- Milliseconds of Redis' clock.
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- "<ms>-<seq>" -> ms, seq (numbers); nil when malformed. Lua numbers are doubles: exact up
-- to 2^53, far above any millisecond clock or per-millisecond sequence.
local function parse_id(s)
    if type(s) ~= 'string' then
        return nil
    end
    local ms, seq = string.match(s, '^(%d+)%-(%d+)$')
    if ms == nil or #ms > 15 or #seq > 15 then
        return nil
    end
    return tonumber(ms), tonumber(seq)
end

local function fmt_id(ms, seq)
    return string.format('%.0f-%.0f', ms, seq)
end

local function ms_arg(v, what)
    local w = tonumber(v)
    if w == nil or w <= 0 or w ~= math.floor(w) then
        error('sockeye: ' .. what .. ' must be a positive integer, got ' .. tostring(v))
    end
    return w
end

-- -1, 0, 1 as id a is below, equal to or above id b.
local function cmp_id(ams, aseq, bms, bseq)
    if ams ~= bms then
        return ams < bms and -1 or 1
    end
    if aseq ~= bseq then
        return aseq < bseq and -1 or 1
    end
    return 0
end

-- msgpack str header for a string of n bytes (the forms notepack.io writes).
local function mp_str(s)
    local n = #s
    if n < 32 then
        return string.char(0xa0 + n) .. s
    elseif n < 256 then
        return string.char(0xd9, n) .. s
    end
    error('sockeye: offset too long')
end

--[[ sockeye_publish
KEYS[1]  P:{N}:last
KEYS[2+] the streams: P:{N}:all, or P:{N}:r:<room> for each target room
ARGV     retain_ms, channel, message (msgpack [uid, packet, opts], a 3-element array)
Returns the new offset. The next id is strictly greater than P:{N}:last (same or earlier
millisecond: sequence + 1), so ids are unique and ordered across the namespace's streams
even when Redis' clock steps back. ]]
local function publish(keys, args)
    local retain = ms_arg(args[1], 'retain_ms')
    local channel, msg = args[2], args[3]
    if #keys < 2 then
        error('sockeye_publish: needs the last-offset key and at least one stream')
    end
    if type(msg) ~= 'string' or string.byte(msg, 1) ~= 0x93 then
        error('sockeye_publish: message is not a msgpack 3-element array (first byte 0x93)')
    end
    local now = now_ms()
    local base_ms, base_seq = parse_id(redis.call('GET', keys[1]))
    if base_ms == nil then
        -- P:{N}:last expired (namespace quiet for two retention periods) or was lost:
        -- the streams may still hold ids above the clock after a clock step, and XADD
        -- refuses ids that are not above a stream's top, after the earlier XADDs were done.
        for i = 2, #keys do
            local top = redis.call('XREVRANGE', keys[i], '+', '-', 'COUNT', 1)
            if top[1] ~= nil then
                local ms, seq = parse_id(top[1][1])
                if ms ~= nil and (base_ms == nil or cmp_id(ms, seq, base_ms, base_seq) > 0) then
                    base_ms, base_seq = ms, seq
                end
            end
        end
    end
    local id
    if base_ms == nil or now > base_ms then
        id = fmt_id(now, 0)
    else
        id = fmt_id(base_ms, base_seq + 1)
    end
    local minid = fmt_id(math.max(now - retain, 0), 0)
    for i = 2, #keys do
        redis.call('XADD', keys[i], 'MINID', '~', minid, id, 'm', msg)
        redis.call('PEXPIRE', keys[i], retain)
    end
    redis.call('SET', keys[1], id, 'PX', 2 * retain)
    -- [uid, packet, opts] -> [uid, packet, opts, offset]: Node nodes read three elements.
    redis.call('PUBLISH', channel, string.char(0x94) .. string.sub(msg, 2) .. mp_str(id))
    return id
end

-- The namespace's last offset, created from the clock when missing so that the next
-- publish gets a strictly greater id (a session offset must never equal a later entry).
local function last_offset(key, retain)
    local last = redis.call('GET', key)
    if parse_id(last) ~= nil then
        return last
    end
    last = fmt_id(now_ms(), 0)
    redis.call('SET', key, last, 'PX', 2 * retain)
    return last
end

-- The caller's mark (the last offset its node had delivered in the namespace when the
-- socket connected: what was published before it never reached the socket), or the
-- namespace's last offset when the node had seen none yet.
local function mark_or_last(mark, key, retain)
    if parse_id(mark) ~= nil then
        return mark
    end
    return last_offset(key, retain)
end

-- The joined map the owner node sent (room -> join mark, for the rooms joined after the
-- session's start; the node tracks them per socket, so a write that never arrived does
-- not move a mark). "?" is a join while the node had no mark yet (the first moments after
-- it subscribed): the stored mark when there is one, else the session's start -- a mark
-- too low only replays a little of what came before the join, one too high (the
-- namespace's last offset when this write runs, say) could skip what came after it.
-- "" (no map sent) keeps the stored.
local function joined_sent(sent, stored, start)
    if sent == nil or sent == '' then
        return stored or '{}'
    end
    local ok, j = pcall(cjson.decode, sent)
    if not ok or type(j) ~= 'table' then
        error('sockeye_session_update: joined is not a JSON object')
    end
    local ok2, old = pcall(cjson.decode, stored or '{}')
    if not ok2 or type(old) ~= 'table' then
        old = {}
    end
    local out, n = {}, 0
    for room, m in pairs(j) do
        if type(room) == 'string' and type(m) == 'string' then
            if m == '?' then
                m = type(old[room]) == 'string' and old[room] or start
            end
            out[room], n = m, n + 1
        end
    end
    if n == 0 then
        return '{}' -- cjson writes an empty table as an object, but say it plainly
    end
    return cjson.encode(out)
end

-- Raises the session's read time to now - age (age: ms, as the owner node measured it,
-- so node clocks do not matter; "" = unknown). It never goes back.
local function raise_read(key, age, now)
    local a = tonumber(age)
    if a == nil or a < 0 then
        return
    end
    local t = now - a
    local cur = tonumber(redis.call('HGET', key, 'read'))
    if cur == nil or t > cur then
        redis.call('HSET', key, 'read', string.format('%.0f', t))
    end
end

--[[ sockeye_session_open
KEYS[1] P:{N}:sess:<pid>    KEYS[2] P:{N}:last
ARGV    window_ms, retain_ms, owner, sid, pid, rooms (JSON array), data (JSON), mark,
        read age, joined (both ignored: a new session has read everything and every room
        counts from its start)
Writes the whole session with offset = mark (or the namespace's last offset) and read =
now; returns that offset. ]]
local function session_open(keys, args)
    local window = ms_arg(args[1], 'window_ms')
    local retain = ms_arg(args[2], 'retain_ms')
    local offset = mark_or_last(args[8], keys[2], retain)
    redis.call('DEL', keys[1])
    redis.call('HSET', keys[1], 'sid', args[4], 'pid', args[5], 'rooms', args[6],
               'data', args[7], 'offset', offset, 'joined', '{}', 'owner', args[3],
               'read', string.format('%.0f', now_ms()))
    redis.call('PEXPIRE', keys[1], window + SLACK_MS)
    return offset
end

--[[ sockeye_session_update
KEYS[1] P:{N}:sess:<pid>    KEYS[2] P:{N}:last
ARGV    window_ms, retain_ms, owner, sid, pid, rooms (JSON array), data (JSON), mark
        (unused), read age (ms, "" unknown), joined (JSON object, see joined_sent)
Rewrites sid/pid/rooms/data/joined and the TTL when owner still holds the session; read
is raised. Returns 1, or 0 when the session is gone or another connection took it over
(a stale write). ]]
local function session_update(keys, args)
    local window = ms_arg(args[1], 'window_ms')
    local retain = ms_arg(args[2], 'retain_ms')
    local h = redis.call('HMGET', keys[1], 'owner', 'joined', 'offset')
    if h[1] ~= args[3] then
        return 0
    end
    local joined = joined_sent(args[10], h[2] or nil, h[3] or '0-0')
    redis.call('HSET', keys[1], 'sid', args[4], 'pid', args[5], 'rooms', args[6],
               'data', args[7], 'joined', joined)
    raise_read(keys[1], args[9], now_ms())
    redis.call('PEXPIRE', keys[1], window + SLACK_MS)
    return 1
end

--[[ sockeye_session_refresh
KEYS    P:{N}:sess:<pid> ...
ARGV    window_ms, then one read age per key (ms, "" unknown)
Extends each existing session to window + slack from now and raises its read time.
Returns how many existed. ]]
local function session_refresh(keys, args)
    local window = ms_arg(args[1], 'window_ms')
    local now = now_ms()
    local n = 0
    for i = 1, #keys do
        if redis.call('PEXPIRE', keys[i], window + SLACK_MS) == 1 then
            n = n + 1
            raise_read(keys[i], args[i + 1], now)
        end
    end
    return n
end

--[[ sockeye_session_release
KEYS[1] P:{N}:sess:<pid>
ARGV    window_ms, owner, recoverable ("1" or "0")
The socket is gone: a recoverable session lives one window from now, another is deleted.
Only the current owner may do it; returns 1, or 0 for a stale owner / no session. ]]
local function session_release(keys, args)
    local window = ms_arg(args[1], 'window_ms')
    if redis.call('HGET', keys[1], 'owner') ~= args[2] then
        return 0
    end
    if args[3] == '1' then
        redis.call('PEXPIRE', keys[1], window)
    else
        redis.call('DEL', keys[1])
    end
    return 1
end

--[[ sockeye_session_take
KEYS[1] P:{N}:sess:<pid>    KEYS[2] P:{N}:last
ARGV    window_ms, owner, offset ("" = the client received nothing: use the session's),
        retain_ms
Looks the session up for a restore and makes owner its holder in the same step.
Returns {sid, pid, rooms, data, offset, now_ms, joined}, where offset is the client's
raised to the session's own (entries before the session began were never its own), or
an integer: 0 no (complete) session, -1 malformed offset, -2 an offset this namespace
never gave out (above its last one), -3 its client unheard of for too long (what it
missed may be trimmed; see the top of this file). A refused take changes nothing. ]]
local function session_take(keys, args)
    local window = ms_arg(args[1], 'window_ms')
    local retain = ms_arg(args[4], 'retain_ms')
    local h = redis.call('HMGET', keys[1], 'sid', 'pid', 'rooms', 'data', 'offset', 'joined',
                         'read')
    if not h[1] or not h[2] or not h[3] or not h[5] then
        return 0
    end
    local floor_ms, floor_seq = parse_id(h[5])
    if floor_ms == nil then
        return 0
    end
    local offset = args[3]
    if offset == nil or offset == '' then
        offset = h[5]
    end
    local ms, seq = parse_id(offset)
    if ms == nil then
        return -1
    end
    local now = now_ms()
    local last_ms, last_seq = parse_id(redis.call('GET', keys[2]))
    if last_ms == nil then
        last_ms, last_seq = now, 0 -- quiet for two retention periods: ids follow the clock
    end
    if cmp_id(ms, seq, last_ms, last_seq) > 0 then
        return -2
    end
    local read = tonumber(h[7])
    if read == nil then
        -- written before read times were kept: the offset's age decides, as it did then
        if ms < now - window then
            return -3
        end
    elseif now - read > retain - 2 * SLACK_MS then
        return -3
    end
    if cmp_id(ms, seq, floor_ms, floor_seq) < 0 then
        offset = h[5]
    end
    redis.call('HSET', keys[1], 'owner', args[2])
    redis.call('PEXPIRE', keys[1], window + SLACK_MS)
    return {h[1], h[2], h[3], h[4] or 'null', offset, string.format('%.0f', now),
            h[6] or '{}'}
end

--[[ Durable queues (issue 10; adapter/redis/REDIS.md "Queues").

A queue Q is the stream P:{q:T}:Q, where T is Q without its trailing ".dead" suffixes, so
a queue and its dead-letter queue share a hash slot; its registry hash P:{q:T}:Q:c maps
"<group>\n<consumer>" to the uid of the node that owns the consumer. Each Redis consumer
group is a queue group; inside it each message is held by one consumer (its pending
entry), and the consumer ~ret holds the messages given back to the group until a take
hands them out, oldest first. Every step that moves a message between consumers is one
function here, so two nodes (or a node and a sweep) never both hand out one message:
Redis runs a function to completion before anything else.

Times come from TIME, ids from XADD '*': one clock, Redis', for ids and ages. A function
checks its arguments before its first write (a script error keeps earlier writes). ]]

local Q_RET = '~ret'
local Q_PAGE = 1000       -- ids per XPENDING page
local Q_PAGES = 10        -- pages one call walks at most (a bounded call: the next one goes on)
local Q_TRIM_BATCH = 1000 -- entries one call drops by the bounds at most

local function q_num(v, what)
    local n = tonumber(v)
    if n == nil or n < 0 or n ~= math.floor(n) then
        error('sockeye: ' .. what .. ' must be a non-negative integer, got ' .. tostring(v))
    end
    return n
end

local function q_name(v, what)
    if type(v) ~= 'string' or v == '' then
        error('sockeye: ' .. what .. ' must be a non-empty string')
    end
    return v
end

-- The id right after id: MINID of what follows it.
local function q_next(id)
    local ms, seq = parse_id(id)
    return fmt_id(ms, seq + 1)
end

local function q_is_nogroup(r)
    return type(r) == 'table' and type(r.err) == 'string' and
               string.find(r.err, 'NOGROUP', 1, true) ~= nil
end

-- XPENDING extended form, or nil when the group (or the stream) does not exist.
local function q_pending(key, group, ...)
    local r = redis.pcall('XPENDING', key, group, ...)
    if q_is_nogroup(r) then
        return nil
    elseif type(r) == 'table' and r.err then
        error(r.err)
    end
    return r
end

-- Creates group at the oldest message the queue keeps (and the stream) when missing.
local function q_group(key, group)
    local r = redis.pcall('XGROUP', 'CREATE', key, group, '0', 'MKSTREAM')
    if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then
        error(r.err)
    end
end

-- XINFO GROUPS as a list of {name, ldi, pending}; {} when the stream does not exist.
local function q_groups(key)
    if redis.call('EXISTS', key) == 0 then
        return {}
    end
    local out = {}
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local t = {}
        for i = 1, #g, 2 do
            t[g[i]] = g[i + 1]
        end
        out[#out + 1] = {name = t['name'], ldi = t['last-delivered-id'], pending = t['pending']}
    end
    return out
end

-- The payload of an entry's fields: 'm' (msgpack) wins over 'j' (JSON text); '', '' when
-- it has neither (written by someone else: the node hands it out as null).
local function q_payload(f)
    local j
    for i = 1, #f, 2 do
        if f[i] == 'm' then
            return 'm', f[i + 1]
        elseif f[i] == 'j' then
            j = f[i + 1]
        end
    end
    if j ~= nil then
        return 'j', j
    end
    return '', ''
end

--[[ The bounds: drops the oldest entries while the stream is longer than max_len or they
are older than max_age (ms; 0 = no bound), at most Q_TRIM_BATCH per call, and counts
them: trimmed, and of those unread = some group had not acknowledged it (not delivered
to the group yet, or pending in it). Exact (XTRIM MINID =): what is counted is what is
dropped. ]]
local function q_bound(key, max_len, max_age, now)
    local over = 0
    if max_len > 0 then
        over = redis.call('XLEN', key) - max_len
    end
    local want, age_cut = over, nil
    if max_age > 0 then
        age_cut = now - max_age
        local head = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
        if head[1] ~= nil and parse_id(head[1][1]) < age_cut then
            want = Q_TRIM_BATCH
        end
    end
    if want <= 0 then
        return 0, 0
    end
    if want > Q_TRIM_BATCH then
        want = Q_TRIM_BATCH
    end
    local ids, set = {}, {}
    for i, e in ipairs(redis.call('XRANGE', key, '-', '+', 'COUNT', want)) do
        if i > over and (age_cut == nil or parse_id(e[1]) >= age_cut) then
            break
        end
        ids[i], set[e[1]] = e[1], true
    end
    local n = #ids
    if n == 0 then
        return 0, 0
    end
    local unread, groups = {}, q_groups(key)
    if #groups == 0 then
        -- no group yet: nobody has read any of it (the memory store counts the same)
        redis.call('XTRIM', key, 'MINID', '=', q_next(ids[n]))
        return n, n
    end
    for _, g in ipairs(groups) do
        local lms, lseq = parse_id(g.ldi)
        for _, id in ipairs(ids) do
            local ms, seq = parse_id(id)
            if cmp_id(ms, seq, lms, lseq) > 0 then
                unread[id] = true
            end
        end
        if g.pending > 0 then
            for _, p in ipairs(redis.call('XPENDING', key, g.name, '-', ids[n], g.pending)) do
                if set[p[1]] then
                    unread[p[1]] = true
                end
            end
        end
    end
    local u = 0
    for _ in pairs(unread) do
        u = u + 1
    end
    redis.call('XTRIM', key, 'MINID', '=', q_next(ids[n]))
    return n, u
end

-- Moves the pending entry id of group (handed out count times) to the dead-letter stream
-- (its payload fields, plus from, group, deliveries) and acknowledges it. Returns 1, or 0
-- when the entry is gone (trimmed): then it is only acknowledged.
local function q_dead(key, dkey, group, id, count)
    local e = redis.call('XRANGE', key, id, id)
    local moved = 0
    if e[1] ~= nil then
        local a = {'XADD', dkey, '*'}
        local f = e[1][2]
        for i = 1, #f, 2 do
            if f[i] ~= 'from' and f[i] ~= 'group' and f[i] ~= 'deliveries' then
                a[#a + 1], a[#a + 2] = f[i], f[i + 1]
            end
        end
        a[#a + 1], a[#a + 2] = 'from', id
        a[#a + 1], a[#a + 2] = 'group', group
        a[#a + 1], a[#a + 2] = 'deliveries', string.format('%d', count)
        redis.call(unpack(a))
        moved = 1
    end
    redis.call('XACK', key, group, id)
    return moved
end

-- Appends a handed-out entry to the reply: consumer index, id, deliveries, field, value.
local function q_out(out, idx, id, deliveries, fields)
    local f, v = q_payload(fields)
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = idx, id, deliveries, f, v
end

-- Hands consumer the pending entries ids (their counts in counts, by id) again: XCLAIM
-- raises each count (entries trimmed meanwhile are dropped from the pending set and not
-- returned). Returns how many were handed out.
local function q_claim(out, key, group, consumer, idx, ids, counts)
    if #ids == 0 then
        return 0
    end
    local got = redis.call('XCLAIM', key, group, consumer, 0, unpack(ids))
    for _, e in ipairs(got) do
        q_out(out, idx, e[1], counts[e[1]] + 1, e[2])
    end
    return #got
end

-- XCLAIM ... JUSTID of ids to consumer: the idle time restarts, counts stay.
local function q_justid(key, group, consumer, min_idle, ids)
    local a = {'XCLAIM', key, group, consumer, min_idle}
    for _, id in ipairs(ids) do
        a[#a + 1] = id
    end
    a[#a + 1] = 'JUSTID'
    return redis.call(unpack(a))
end

-- The registry field of a consumer, and whether node uid may act for it: it owns it, or
-- nobody does (a consumer never registered, such as a backend worker).
local function q_owner_ok(ckey, group, consumer, uid)
    local field = group .. '\n' .. consumer
    local o = redis.call('HGET', ckey, field)
    return o == false or o == uid, field
end

-- Dead letters of a take or an adopt: bound the dead-letter stream and wake its watchers.
local function q_dead_done(out, dkey, dchannel, max_len, max_age)
    if out[1] > 0 then
        local n, u = q_bound(dkey, max_len, max_age, now_ms())
        out[2], out[3] = out[2] + n, out[3] + u
        redis.call('PUBLISH', dchannel, '')
    end
end

--[[ sockeye_qpush
KEYS[1] the stream P:{q:T}:Q
ARGV    channel (P:{q:T}:Q:ready), max_length, max_age_ms (0 = no bound), field ('j': JSON
        text, 'm': msgpack), value
Appends the message, applies the bounds, wakes the queue's watchers. Returns {id,
trimmed, trimmed_unread}. ]]
local function qpush(keys, args)
    local key, channel = keys[1], q_name(args[1], 'channel')
    local max_len, max_age = q_num(args[2], 'max_length'), q_num(args[3], 'max_age_ms')
    if args[4] ~= 'j' and args[4] ~= 'm' then
        error("sockeye_qpush: field must be 'j' or 'm'")
    end
    local id = redis.call('XADD', key, '*', args[4], args[5] or '')
    local n, u = q_bound(key, max_len, max_age, now_ms())
    redis.call('PUBLISH', channel, id)
    return {id, n, u}
end

--[[ sockeye_qtake
KEYS[1] the stream    KEYS[2] its registry    KEYS[3] the dead-letter stream (<Q>.dead)
ARGV    group, node uid, max_deliveries (0 = no limit), dead-letter channel, max_length,
        max_age_ms (bounds of the dead-letter stream), then consumer, want pairs
Each consumer in turn gets up to want messages: those ~ret holds first (oldest first,
their count raised), then new ones (XREADGROUP >, count 1); one that would be handed out
a (max_deliveries + 1)-th time goes to the dead-letter stream instead. A consumer that
got any is registered as the node's. The group is created (at the oldest message) when
missing. Returns {dead_lettered, trimmed, trimmed_unread, then per message: consumer
index (0-based), id, deliveries, field, value}. ]]
local function qtake(keys, args)
    local key, ckey, dkey = keys[1], keys[2], keys[3]
    local group, uid = q_name(args[1], 'group'), q_name(args[2], 'uid')
    local maxd = q_num(args[3], 'max_deliveries')
    local dchannel = q_name(args[4], 'channel')
    local max_len, max_age = q_num(args[5], 'max_length'), q_num(args[6], 'max_age_ms')
    if (#args - 6) % 2 ~= 0 then
        error('sockeye_qtake: consumer, want pairs expected')
    end
    local cons, want = {}, {}
    for i = 7, #args, 2 do
        cons[#cons + 1] = q_name(args[i], 'consumer')
        want[#want + 1] = q_num(args[i + 1], 'want')
    end
    local out = {0, 0, 0}
    if q_pending(key, group, '-', '+', 1, Q_RET) == nil then
        q_group(key, group)
    end
    local ret_cursor, ret_done, new_done = '-', false, false
    for ci, consumer in ipairs(cons) do
        local need, before = want[ci], #out
        local pages = 0
        while need > 0 and not ret_done and pages < Q_PAGES do
            pages = pages + 1
            local page = q_pending(key, group, ret_cursor, '+', need, Q_RET) or {}
            if #page < need then
                ret_done = true
            end
            local ids, counts = {}, {}
            for _, p in ipairs(page) do
                ret_cursor = '(' .. p[1]
                if maxd > 0 and p[4] + 1 > maxd then
                    out[1] = out[1] + q_dead(key, dkey, group, p[1], p[4])
                else
                    ids[#ids + 1], counts[p[1]] = p[1], p[4]
                end
            end
            need = need - q_claim(out, key, group, consumer, ci - 1, ids, counts)
        end
        if need > 0 and not new_done then
            local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', need,
                                 'STREAMS', key, '>')
            local es = r and r[1][2] or {}
            for _, e in ipairs(es) do
                q_out(out, ci - 1, e[1], 1, e[2])
            end
            if #es < need then
                new_done = true
            end
        end
        if #out > before then
            local field = group .. '\n' .. consumer
            if redis.call('HGET', ckey, field) ~= uid then
                redis.call('HSET', ckey, field, uid)
            end
        end
    end
    q_dead_done(out, dkey, dchannel, max_len, max_age)
    return out
end

--[[ sockeye_qadopt
KEYS[1] the stream    KEYS[2] its registry    KEYS[3] the dead-letter stream
ARGV    group, consumer, node uid, max_deliveries, dead-letter channel, max_length,
        max_age_ms
The session named consumer came back on node uid: the consumer is registered as its, and
everything it holds is handed out again (counts raised; past max_deliveries: dead
letters). Returns as sockeye_qtake (consumer index 0). ]]
local function qadopt(keys, args)
    local key, ckey, dkey = keys[1], keys[2], keys[3]
    local group, consumer = q_name(args[1], 'group'), q_name(args[2], 'consumer')
    local uid, maxd = q_name(args[3], 'uid'), q_num(args[4], 'max_deliveries')
    local dchannel = q_name(args[5], 'channel')
    local max_len, max_age = q_num(args[6], 'max_length'), q_num(args[7], 'max_age_ms')
    local out = {0, 0, 0}
    if q_pending(key, group, '-', '+', 1, consumer) == nil then
        q_group(key, group)
    end
    redis.call('HSET', ckey, group .. '\n' .. consumer, uid)
    local cursor = '-'
    for _ = 1, Q_PAGES do
        local page = q_pending(key, group, cursor, '+', Q_PAGE, consumer) or {}
        local ids, counts = {}, {}
        for _, p in ipairs(page) do
            cursor = '(' .. p[1]
            if maxd > 0 and p[4] + 1 > maxd then
                out[1] = out[1] + q_dead(key, dkey, group, p[1], p[4])
            else
                ids[#ids + 1], counts[p[1]] = p[1], p[4]
            end
        end
        q_claim(out, key, group, consumer, 0, ids, counts)
        if #page < Q_PAGE then
            break
        end
    end
    q_dead_done(out, dkey, dchannel, max_len, max_age)
    return out
end

--[[ sockeye_qrelease
KEYS[1] the stream    KEYS[2] its registry
ARGV    channel, group, consumer, node uid, then ids
Gives the ids back to the group (to ~ret, counts unchanged), each only if consumer still
holds it, and only when node uid may act for consumer (another node adopted it: its
messages are not ours to give back). Wakes the watchers when any. Returns how many. ]]
local function qrelease(keys, args)
    local key, ckey, channel = keys[1], keys[2], q_name(args[1], 'channel')
    local group, consumer = q_name(args[2], 'group'), q_name(args[3], 'consumer')
    local uid = q_name(args[4], 'uid')
    if not q_owner_ok(ckey, group, consumer, uid) then
        return 0
    end
    local ids = {}
    for i = 5, #args do
        local p = q_pending(key, group, args[i], args[i], 1, consumer)
        if p == nil then
            return 0
        end
        if p[1] ~= nil then
            ids[#ids + 1] = args[i]
        end
    end
    if #ids == 0 then
        return 0
    end
    q_justid(key, group, Q_RET, 0, ids)
    redis.call('PUBLISH', channel, '')
    return #ids
end

-- Moves everything consumer holds to target (XCLAIM JUSTID: counts unchanged, idle time
-- restarted), page by page in id order; returns how many. target = consumer refreshes
-- the idle time only (hold); target = ~ret gives everything back.
local function q_move_all(key, group, consumer, target)
    local n, cursor = 0, '-'
    for _ = 1, Q_PAGES do
        local page = q_pending(key, group, cursor, '+', Q_PAGE, consumer) or {}
        local ids = {}
        for _, p in ipairs(page) do
            ids[#ids + 1], cursor = p[1], '(' .. p[1]
        end
        if #ids > 0 then
            q_justid(key, group, target, 0, ids)
        end
        n = n + #ids
        if #page < Q_PAGE then
            break
        end
    end
    return n
end

--[[ sockeye_qrelease_all
KEYS[1] the stream    KEYS[2] its registry
ARGV    channel, group, consumer, node uid
Gives back everything consumer holds and forgets it (XGROUP DELCONSUMER, registry
field), when node uid may act for it. Returns how many were given back, or -1 when
another node owns the consumer. ]]
local function qrelease_all(keys, args)
    local key, ckey, channel = keys[1], keys[2], q_name(args[1], 'channel')
    local group, consumer = q_name(args[2], 'group'), q_name(args[3], 'consumer')
    local ok, field = q_owner_ok(ckey, group, consumer, q_name(args[4], 'uid'))
    if not ok then
        return -1
    end
    redis.call('HDEL', ckey, field)
    if q_pending(key, group, '-', '+', 1) == nil then
        return 0
    end
    local n = q_move_all(key, group, consumer, Q_RET)
    if q_pending(key, group, '-', '+', 1, consumer)[1] == nil then
        redis.call('XGROUP', 'DELCONSUMER', key, group, consumer)
    end
    if n > 0 then
        redis.call('PUBLISH', channel, '')
    end
    return n
end

--[[ sockeye_qhold
KEYS[1] the stream
ARGV    group, consumer
Resets the idle time of everything consumer holds (XCLAIM to itself, JUSTID: counts
unchanged), so that the sweep leaves it alone for another min-idle. Returns how many. ]]
local function qhold(keys, args)
    local group, consumer = q_name(args[1], 'group'), q_name(args[2], 'consumer')
    return q_move_all(keys[1], group, consumer, consumer)
end

--[[ sockeye_qsweep
KEYS[1] the stream
ARGV    channel, group, min_idle_ms
Gives back to the group (~ret, counts unchanged) every message a consumer other than ~ret
has held for min_idle_ms without a word (its node died, or a worker did), and wakes the
watchers when any. Returns how many. ]]
local function qsweep(keys, args)
    local key, channel = keys[1], q_name(args[1], 'channel')
    local group, idle = q_name(args[2], 'group'), q_num(args[3], 'min_idle_ms')
    local n, cursor = 0, '-'
    for _ = 1, Q_PAGES do
        local page = q_pending(key, group, 'IDLE', idle, cursor, '+', Q_PAGE) or {}
        local ids = {}
        for _, p in ipairs(page) do
            cursor = '(' .. p[1]
            if p[2] ~= Q_RET then
                ids[#ids + 1] = p[1]
            end
        end
        if #ids > 0 then
            q_justid(key, group, Q_RET, idle, ids)
        end
        n = n + #ids
        if #page < Q_PAGE then
            break
        end
    end
    if n > 0 then
        redis.call('PUBLISH', channel, '')
    end
    return n
end

--[[ sockeye_qtrim
KEYS[1] the stream
ARGV    max_length, max_age_ms
Retention: drops what every group acknowledged, i.e. below the lowest of, per group, its
oldest pending id and the id after its last-delivered-id (a queue without groups keeps
everything: nobody acknowledged anything). Then the bounds. Returns {acknowledged
entries dropped, trimmed, trimmed_unread}. ]]
local function qtrim(keys, args)
    local key = keys[1]
    local max_len, max_age = q_num(args[1], 'max_length'), q_num(args[2], 'max_age_ms')
    local groups = q_groups(key)
    local acked = 0
    if #groups > 0 then
        local fms, fseq
        for _, g in ipairs(groups) do
            local ms, seq = parse_id(q_next(g.ldi))
            if g.pending > 0 then
                local s = redis.call('XPENDING', key, g.name)
                local pms, pseq = parse_id(s[2])
                if pms ~= nil and cmp_id(pms, pseq, ms, seq) < 0 then
                    ms, seq = pms, pseq
                end
            end
            if fms == nil or cmp_id(ms, seq, fms, fseq) < 0 then
                fms, fseq = ms, seq
            end
        end
        acked = redis.call('XTRIM', key, 'MINID', '=', fmt_id(fms, fseq))
    end
    local n, u = q_bound(key, max_len, max_age, now_ms())
    return {acked, n, u}
end

redis.register_function('sockeye_publish', publish)
redis.register_function('sockeye_session_open', session_open)
redis.register_function('sockeye_session_update', session_update)
redis.register_function('sockeye_session_refresh', session_refresh)
redis.register_function('sockeye_session_release', session_release)
redis.register_function('sockeye_session_take', session_take)
redis.register_function('sockeye_qpush', qpush)
redis.register_function('sockeye_qtake', qtake)
redis.register_function('sockeye_qadopt', qadopt)
redis.register_function('sockeye_qrelease', qrelease)
redis.register_function('sockeye_qrelease_all', qrelease_all)
redis.register_function('sockeye_qhold', qhold)
redis.register_function('sockeye_qsweep', qsweep)
redis.register_function('sockeye_qtrim', qtrim)
