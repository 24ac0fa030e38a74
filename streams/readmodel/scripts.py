"""The Lua the read model's writer (``streams.readmodel.writer``, whose text lists the keys) runs in Redis: ``APPLY``
writes a chunk of customer rows (its arguments: ``streams.readmodel.rows.script_args``), ``ERASE`` takes
customers out. Each is one atomic call."""

APPLY = """
local prefix, keep, moves_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local SEP = string.char(31)  -- the unit separator of a movement field: dimension, from, to
-- The rows, one flat array (``streams.readmodel.rows.script_args``): per row its ten fields (customer, epoch, seq,
-- segments JSON, amount, partition, tags JSON or '', purchases, story entries n, moves n), then n story entries of
-- two (change id, entry) and n moves of six (change id, day, dimension, from, to, amount); the n-th row's record is
-- ARGV[4 + n]. Flat, the decoding builds one table for the call instead of five a row.
local rows = cjson.decode(ARGV[4])
-- Three passes: every row read and decided; then every counter increment, all or nothing; then the rest. Amounts
-- travel as text (Lua's numbers are doubles, Redis' counters 64-bit integers): the chunk's increments of one hash
-- field are summed here while that stays exact (texts of 15 characters at most, sums below 2^52) and sent once, so
-- a chunk of customers moving between the same segments costs one increment per field, not one per customer.
local EXACT = 4503599627370496
local function table_in(outer, key)  -- outer[key], a new table the first time
  local inner = outer[key]
  if not inner then
    inner = {}
    outer[key] = inner
  end
  return inner
end
local function negated(text)
  if string.sub(text, 1, 1) == '-' then return string.sub(text, 2) end
  if text == '0' then return text end
  return '-' .. text
end
local increments, summed = {}, {}
local function add(key, field, text)
  if #text > 15 then
    increments[#increments + 1] = {key, field, text}
    return
  end
  local n = tonumber(text)  -- 15 characters at most: exact as a double
  local fields = table_in(summed, key)
  local at = fields[field]
  if at then
    local total = increments[at][3] + n
    if total < EXACT and total > -EXACT then
      increments[at][3] = total
      return
    end
  end
  increments[#increments + 1] = {key, field, n}
  fields[field] = #increments
end
-- A segment's sums, added (sign '') or taken out (sign '-') for one member: keys and fields built once per call.
local dim_keys, seg_fields = {}, {}
local function sums(dim, seg, sign, amount, purchases)
  local keys, fields = dim_keys[dim], seg_fields[seg]
  if not keys then
    keys = {prefix .. ':amt:' .. dim, prefix .. ':kpi:' .. dim}
    dim_keys[dim] = keys
  end
  if not fields then
    fields = {seg .. SEP .. 'p', seg .. SEP .. 'r'}
    seg_fields[seg] = fields
  end
  add(keys[1], seg, sign == '' and amount or negated(amount))
  add(keys[2], fields[1], sign == '' and purchases or negated(purchases))
  if tonumber(purchases) >= 2 then add(keys[2], fields[2], sign .. '1') end
end
local function known(listed, id)  -- a change already in the story list (``listed``)
  local head = id .. ' '
  for _, old_entry in ipairs(listed) do
    if string.sub(old_entry, 1, #head) == head then return true end
  end
  return false
end
local NONE = {}
-- A segments document decoded once per call: a chunk's rows share a few distinct ones, and the tables are only read.
local decoded = {}
local function segments_of(text)
  local found = decoded[text]
  if not found then
    found = cjson.decode(text)
    decoded[text] = found
  end
  return found
end
local held = {}  -- customer -> where its row starts, for a customer listed twice (the later row reads that one)
-- The rows to write, in parallel arrays (a table a row would cost more): where the row starts, its record's
-- argument, its key, its old tags, whether Redis held it, its segments before and after (false: unchanged), its
-- story entries (false: none).
local p_at, p_state, p_key, p_old_tags, p_new, p_before, p_after, p_entries = {}, {}, {}, {}, {}, {}, {}, {}
local expiring = {}
local at, n, last = 1, 0, #rows
while at <= last do
  n = n + 1
  local customer, segs, amount, purchases = rows[at], rows[at + 3], rows[at + 4], rows[at + 7]
  local story_at = at + 10
  local moves_at = story_at + 2 * rows[at + 8]
  local next_at = moves_at + 6 * rows[at + 9]
  local key = prefix .. ':c:' .. customer
  local cur_epoch, cur_seq, old, old_amount, old_tags, old_purchases
  local prior = held[customer]
  if prior then
    cur_epoch, cur_seq, old, old_amount = rows[prior + 1], rows[prior + 2], rows[prior + 3], rows[prior + 4]
    old_tags, old_purchases = rows[prior + 6], rows[prior + 7]
  else
    local cur = redis.call('HMGET', key, 'epoch', 'seq', 'segments', 'amount_minor', 'tags', 'purchases')
    cur_epoch, cur_seq, old, old_amount, old_tags, old_purchases = cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]
  end
  local epoch, seq = tonumber(rows[at + 1]), tonumber(rows[at + 2])
  local was_epoch, was_seq = tonumber(cur_epoch or '-1'), tonumber(cur_seq or '-1')
  if epoch > was_epoch or (epoch == was_epoch and seq > was_seq) then
    old_amount, old_purchases = old_amount or '0', old_purchases or '0'
    local k = #p_at + 1
    p_at[k], p_state[k], p_key[k], p_old_tags[k], p_new[k] = at, n + 4, key, old_tags or '', not cur_seq
    p_before[k], p_after[k], p_entries[k] = false, false, false
    if old ~= segs or old_amount ~= amount or old_purchases ~= purchases then
      -- per dimension: a segment kept with the same sums moves nothing (a rules change moves one dimension)
      local before, after = old and segments_of(old) or NONE, segments_of(segs)
      local same_sums = old_amount == amount and old_purchases == purchases
      for dim, seg in pairs(before) do
        if not (same_sums and after[dim] == seg) then sums(dim, seg, '-', old_amount, old_purchases) end
      end
      for dim, seg in pairs(after) do
        if not (same_sums and before[dim] == seg) then sums(dim, seg, '', amount, purchases) end
      end
      if old ~= segs then p_before[k], p_after[k] = before, after end
    end
    -- within one epoch a change reaches here once (a retried write of an applied row is skipped above); a new
    -- epoch (a restart, another owner) may replay changes already listed: only then are they looked for
    local listed = (story_at < next_at and cur_seq and epoch > was_epoch)
                   and redis.call('LRANGE', prefix .. ':h:' .. customer, 0, -1) or NONE
    for m = moves_at, next_at - 1, 6 do  -- id, day, dimension, from, to, amount: the day's movement summary
      if not known(listed, rows[m]) then
        local mkey, field = prefix .. ':mv:' .. rows[m + 1], rows[m + 2] .. SEP .. rows[m + 3] .. SEP .. rows[m + 4]
        add(mkey, field, '1')
        add(mkey, field .. SEP .. 'a', rows[m + 5])
        expiring[mkey] = true
      end
    end
    if story_at < moves_at then
      local entries = {}
      for h = story_at, moves_at - 1, 2 do
        if not known(listed, rows[h]) then entries[#entries + 1] = rows[h] .. ' ' .. rows[h + 1] end
      end
      p_entries[k] = entries
    end
    held[customer] = at
  end
  at = next_at
end
-- The increments: a sum Redis refuses (64-bit overflow, a foreign value) undoes those sent before it and fails
-- the call with nothing written (the writer then sends the chunk's rows one by one to find the row).
for k, inc in ipairs(increments) do
  local by = inc[3]
  if type(by) == 'number' then by = by == 0 and '0' or string.format('%.0f', by) end
  inc[3] = by
  local done = redis.pcall('HINCRBY', inc[1], inc[2], by)
  if type(done) == 'table' and done.err then
    for u = k - 1, 1, -1 do redis.call('HINCRBY', increments[u][1], increments[u][2], negated(increments[u][3])) end
    return redis.error_reply((n == 1 and 'ROW 1 ' or 'ROWS 1-' .. n .. ' ') .. done.err)
  end
end
for mkey in pairs(expiring) do redis.call('EXPIRE', mkey, moves_ttl) end
-- Memberships as the chunk leaves them (the last row of a customer wins), sent one command per set.
local members, sets = {}, {}
local function member(key, customer, now)
  local set = members[key]
  if not set then
    set = {}
    members[key] = set
    sets[#sets + 1] = key
  end
  set[customer] = now
end
local member_keys = {}  -- dimension -> segment -> its member set's key, built once per call
local function member_key(dim, seg)
  local keys = table_in(member_keys, dim)
  local key = keys[seg]
  if not key then
    key = prefix .. ':m:' .. dim .. ':' .. seg
    keys[seg] = key
  end
  return key
end
for k, at in ipairs(p_at) do
  local customer, tags, old_tags = rows[at], rows[at + 6], p_old_tags[k]
  local before, after = p_before[k], p_after[k]
  if before then
    for dim, seg in pairs(before) do
      if after[dim] ~= seg then member(member_key(dim, seg), customer, false) end
    end
    for dim, seg in pairs(after) do
      if before[dim] ~= seg then member(member_key(dim, seg), customer, true) end
    end
  end
  if tags ~= old_tags then
    if old_tags ~= '' then
      for _, tag in ipairs(cjson.decode(old_tags)) do member(prefix .. ':t:' .. tag, customer, false) end
    end
    if tags ~= '' then
      for _, tag in ipairs(cjson.decode(tags)) do member(prefix .. ':t:' .. tag, customer, true) end
    end
  end
  redis.call('HSET', p_key[k], 'epoch', rows[at + 1], 'seq', rows[at + 2], 'segments', rows[at + 3],
             'amount_minor', rows[at + 4], 'purchases', rows[at + 7], 'partition', rows[at + 5], 'tags', tags,
             'state', ARGV[p_state[k]])
  local entries = p_entries[k]
  if entries and entries[1] then
    local hkey = prefix .. ':h:' .. customer
    if redis.call('LPUSH', hkey, unpack(entries)) > keep then redis.call('LTRIM', hkey, 0, keep - 1) end
  end
  if p_new[k] then
    member(prefix .. ':customers', customer, true)
    member(prefix .. ':p:' .. rows[at + 5], customer, true)
  end
end
local SLICE = 1000  -- members per command (Lua's unpack is bounded by its stack)
local function send(command, key, ids)
  for at = 1, #ids, SLICE do redis.call(command, key, unpack(ids, at, math.min(at + SLICE - 1, #ids))) end
end
for _, key in ipairs(sets) do
  local added, removed = {}, {}
  for customer, now in pairs(members[key]) do
    if now then added[#added + 1] = customer else removed[#removed + 1] = customer end
  end
  send('SREM', key, removed)
  send('SADD', key, added)
end
return #p_at
"""

ERASE = """
local prefix = ARGV[1]
local SEP = string.char(31)
local function negated(text)
  if string.sub(text, 1, 1) == '-' then return string.sub(text, 2) end
  if text == '0' then return text end
  return '-' .. text
end
for i = 2, #ARGV do
  local customer = ARGV[i]
  local key = prefix .. ':c:' .. customer
  local cur = redis.call('HMGET', key, 'segments', 'amount_minor', 'tags', 'partition', 'purchases')
  if cur[1] then
    local purchases = cur[5] or '0'
    for dim, seg in pairs(cjson.decode(cur[1])) do
      redis.call('SREM', prefix .. ':m:' .. dim .. ':' .. seg, customer)
      redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, negated(cur[2] or '0'))
      redis.call('HINCRBY', prefix .. ':kpi:' .. dim, seg .. SEP .. 'p', negated(purchases))
      if tonumber(purchases) >= 2 then redis.call('HINCRBY', prefix .. ':kpi:' .. dim, seg .. SEP .. 'r', -1) end
    end
  end
  if cur[3] and cur[3] ~= '' then
    for _, tag in ipairs(cjson.decode(cur[3])) do redis.call('SREM', prefix .. ':t:' .. tag, customer) end
  end
  if cur[4] then redis.call('SREM', prefix .. ':p:' .. cur[4], customer) end
  redis.call('SREM', prefix .. ':customers', customer)
  redis.call('DEL', key, prefix .. ':h:' .. customer)
  redis.call('HDEL', prefix .. ':quarantine', customer)
end
return #ARGV - 1
"""
