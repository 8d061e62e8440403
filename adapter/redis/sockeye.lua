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

redis.register_function('sockeye_publish', publish)
redis.register_function('sockeye_session_open', session_open)
redis.register_function('sockeye_session_update', session_update)
redis.register_function('sockeye_session_refresh', session_refresh)
redis.register_function('sockeye_session_release', session_release)
redis.register_function('sockeye_session_take', session_take)
