-- The session operations of live.redis_engine, each atomic because Redis runs a
-- script to the end before anything else. One session is four keys sharing the
-- hash tag of its digest:
--   data      hash: session key -> its value as JSON text
--   versions  hash: session key -> version of its last set or delete (deleted
--             keys stay as tombstones, so If-Match sees "deleted after yours")
--   meta      hash: version (a counter), masked, expires, updated; the session
--             exists exactly when this key does
--   log       list: the timeline, newest first, each entry a JSON object
-- All four carry the session's expiry as their TTL.
--
-- KEYS[1..4] are one session's keys (data, versions, meta, log), and a call
-- touches no others, so it runs within one hash slot of a Redis Cluster; a
-- cycle_key, which moves a session to another slot, is three calls (export,
-- arrive, leave). ARGV[1] names the operation, ARGV[2] holds its
-- arguments as JSON. Values travel as JSON text and are never decoded here, so
-- numbers keep their exact spelling. Times travel as strings for the same reason.

local op = ARGV[1]
local a = cjson.decode(ARGV[2])

-- A hash as the text of a JSON object. One string parses far faster in the
-- client than a reply of two strings per field.
local function object(key)
  local flat, parts = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do
    parts[#parts + 1] = cjson.encode(flat[i]) .. ':' .. flat[i + 1]
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

local function state(k)
  local meta = redis.call('HMGET', KEYS[k + 2], 'version', 'masked', 'expires')
  return {meta[1], meta[2], meta[3], object(KEYS[k]), object(KEYS[k + 1])}
end

local function expire(k, at_ms)
  for i = k, k + 3 do
    redis.call('PEXPIREAT', KEYS[i], at_ms)
  end
end

-- The stored "_session_expiry" decides the expiry unless this write sets or
-- deletes it; the caller computed the expiry from the value it assumed, and is
-- told the real one to try again when they differ.
local function expiry_mismatch(data_key)
  if a.expiry_own then
    return nil
  end
  local stored = redis.call('HGET', data_key, '_session_expiry') or ''
  if stored ~= a.expiry_assumed then
    return {'expiry', stored}
  end
  return nil
end

local function prune_tombstones(k)
  local excess = redis.call('HLEN', KEYS[k + 1]) - redis.call('HLEN', KEYS[k]) - a.max_tombstones
  if excess <= 0 then
    return
  end
  local all = redis.call('HGETALL', KEYS[k + 1])
  local tombstones = {}
  for i = 1, #all, 2 do
    if redis.call('HEXISTS', KEYS[k], all[i]) == 0 then
      table.insert(tombstones, {all[i], tonumber(all[i + 1])})
    end
  end
  table.sort(tombstones, function(x, y) return x[2] < y[2] end)
  for i = 1, excess do
    redis.call('HDEL', KEYS[k + 1], tombstones[i][1])
  end
end

-- The size of one "key":value member of the session's JSON text, in bytes, as
-- Python's json spells it; cjson also escapes "/", which Python does not.
local function member_size(key, value)
  local _, slashes = string.gsub(key, '/', '')
  return #cjson.encode(key) - slashes + 1 + #value
end

-- The keys a diff sets (as a set) and the keys it deletes: all of them for a clear.
local function targets(k)
  local sets = {}
  for _, pair in ipairs(a.sets) do
    sets[pair[1]] = true
  end
  if a.wipe then
    return sets, redis.call('HKEYS', KEYS[k])
  end
  return sets, a.deletes
end

-- The session's JSON text size now and after the diff, computed before anything
-- is written, since a script cannot take back what it wrote.
local function sizes(k)
  local flat = redis.call('HGETALL', KEYS[k])
  local members, count = {}, 0
  for i = 1, #flat, 2 do
    members[flat[i]] = member_size(flat[i], flat[i + 1])
    count = count + 1
  end
  local function total()
    local sum = 0
    for _, size in pairs(members) do
      sum = sum + size
    end
    -- Braces, and a comma between members.
    return sum + 2 + math.max(count - 1, 0)
  end
  local before = total()
  local sets, deletes = targets(k)
  for _, key in ipairs(deletes) do
    if members[key] and not sets[key] then
      members[key] = nil
      count = count - 1
    end
  end
  for _, pair in ipairs(a.sets) do
    if not members[pair[1]] then
      count = count + 1
    end
    members[pair[1]] = member_size(pair[1], pair[2])
  end
  return before, total()
end

-- Apply a request's diff at `version`; return {op, key, value, old} per change.
local function apply(k, version)
  local sets, deletes = targets(k)
  local applied = {}
  for _, key in ipairs(deletes) do
    if not sets[key] then
      local old = redis.call('HGET', KEYS[k], key)
      if old then
        redis.call('HDEL', KEYS[k], key)
        redis.call('HSET', KEYS[k + 1], key, version)
        table.insert(applied, {'delete', key, false, old})
      end
    end
  end
  for _, pair in ipairs(a.sets) do
    local key, value = pair[1], pair[2]
    local old = redis.call('HGET', KEYS[k], key)
    -- Equal JSON text is an equal value; a rewrite of the same value is no change.
    if old ~= value then
      redis.call('HSET', KEYS[k], key, value)
      redis.call('HSET', KEYS[k + 1], key, version)
      table.insert(applied, {'set', key, value, old})
    end
  end
  prune_tombstones(k)
  return applied
end

local function record(k, version, applied, extra)
  local parts = {}
  for _, c in ipairs(applied) do
    local text = '{"op":"' .. c[1] .. '","key":' .. cjson.encode(c[2])
    if c[1] == 'set' then
      text = text .. ',"value":' .. c[3]
    end
    if c[4] then
      text = text .. ',"old":' .. c[4]
    end
    table.insert(parts, text .. '}')
  end
  if extra then
    table.insert(parts, extra)
  end
  local entry = '{"version":' .. string.format('%d', version) .. ',"ts":' .. a.now ..
    ',"source":' .. a.source .. ',"changes":[' .. table.concat(parts, ',') .. ']}'
  redis.call('LPUSH', KEYS[k + 3], entry)
  redis.call('LTRIM', KEYS[k + 3], 0, a.history - 1)
  return entry
end

local function stamp(k, version)
  redis.call('HSET', KEYS[k + 2], 'version', version, 'masked', a.masked,
    'expires', a.expires, 'updated', a.now)
end

-- The reply of a write: the state, then what was applied. The TTL is set last,
-- since an expiry in the past (set_expiry to a date gone by) deletes the keys.
local function written(k, applied)
  local result = state(k)
  table.insert(result, 1, 'ok')
  table.insert(result, applied)
  expire(k, a.expires_ms)
  return result
end

if op == 'read' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    return false
  end
  return state(1)

elseif op == 'exists' then
  return redis.call('EXISTS', KEYS[3])

elseif op == 'insert' then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return {'taken'}
  end
  -- Leftovers under this digest without a meta key belong to no session.
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
  for _, pair in ipairs(a.sets) do
    redis.call('HSET', KEYS[1], pair[1], pair[2])
    redis.call('HSET', KEYS[2], pair[1], 0)
  end
  stamp(1, 0)
  expire(1, a.expires_ms)
  return {'ok'}

elseif op == 'merge' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    return {'missing'}
  end
  for _, pair in ipairs(a.expect) do
    local seen = redis.call('HGET', KEYS[2], pair[1])
    if seen and tonumber(seen) > pair[2] then
      return {'conflict', pair[1], redis.call('HGET', KEYS[1], pair[1]) or false}
    end
  end
  local mismatch = expiry_mismatch(KEYS[1])
  if mismatch then
    return mismatch
  end
  -- Checked here, atomically, because concurrent writes that each fit could
  -- together pass the limit; a session already over it may shrink.
  local before, after = sizes(1)
  if after > a.max_bytes and after > before then
    return {'too_large', after}
  end
  local version = tonumber(redis.call('HGET', KEYS[3], 'version'))
  local applied = apply(1, version + 1)
  if #applied > 0 then
    version = redis.call('HINCRBY', KEYS[3], 'version', 1)
    local entry = record(1, version, applied, nil)
    -- The change's push, when the channel layer is on this Redis: sent with the
    -- change, in version order, in the layer's message format (msgpack). The
    -- entry stays JSON text, so that values keep their exact spelling.
    local push = a.publish
    if push then
      redis.call('PUBLISH', push.channel, cmsgpack.pack({type = push.type, digest = push.digest,
        entry = entry, expires_at = tonumber(a.expires)}))
    end
  end
  stamp(1, version)
  return written(1, applied)

elseif op == 'export' then
  -- The first step of a cycle_key: the session as it is stored, to move.
  if redis.call('EXISTS', KEYS[3]) == 0 then
    return false
  end
  return {redis.call('HGET', KEYS[3], 'version'), redis.call('HGETALL', KEYS[1]),
    redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[4], 0, -1),
    redis.call('HGET', KEYS[1], '_session_expiry') or ''}

elseif op == 'arrive' then
  -- The second step: the exported session (if any) under the new key, with the
  -- pending diff merged and the version grown by one. A new key must be free
  -- unless this cycle wrote it on an earlier attempt.
  if a.fresh and redis.call('EXISTS', KEYS[3]) == 1 then
    return {'taken'}
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  local version = 0
  if a.moved then
    version = tonumber(a.moved.version)
    local data, versions = a.moved.data, a.moved.versions
    for i = 1, #data, 2 do
      redis.call('HSET', KEYS[1], data[i], data[i + 1])
    end
    for i = 1, #versions, 2 do
      redis.call('HSET', KEYS[2], versions[i], versions[i + 1])
    end
    for _, entry in ipairs(a.moved.log) do
      redis.call('RPUSH', KEYS[4], entry)
    end
  end
  local applied = apply(1, version + 1)
  stamp(1, version + 1)
  record(1, version + 1, applied, '{"op":"cycle","key":""}')
  return written(1, applied)

elseif op == 'leave' then
  -- The last step: the old key goes, but only as it was exported (version -1:
  -- absent); a change made meanwhile sends the cycle round again.
  local version = redis.call('HGET', KEYS[3], 'version')
  if tonumber(version or '-1') ~= a.version then
    return {'changed'}
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return {'ok'}

elseif op == 'delete' then
  local found = redis.call('DEL', KEYS[3])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
  return found
end

return redis.error_reply('unknown operation ' .. tostring(op))
