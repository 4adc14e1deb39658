-- Apply one order event (state, refund or deletion) to a shop's aggregates, atomically.
--
-- The order hash keeps the newest raw state seen, what is known about its deletion, and the
-- contribution it last made to the calendar buckets. Every call recomputes the contribution
-- from what is stored and, when it differs, subtracts the old one and adds the new one. Every
-- stored fact is a maximum or a union (newest state, latest deletion, latest sign of life,
-- largest amount per refund id), so the result does not depend on the order in which the
-- events arrive, and applying an event twice changes nothing. A refund or deletion seen
-- before its order is kept and applied once the order arrives.
--
-- ARGV[1] shop prefix, e.g. "xs:{shop.example}:"
-- ARGV[2] kind: "state" | "refund" | "delete"
-- ARGV[3] order id
-- ARGV[4] delivery id (marked done here, with the effect)
-- ARGV[5] seconds a done delivery id is remembered
-- ARGV[6] pending-entry id to clear (see the connector)
-- ARGV[7] payload, JSON:
--   state:  {v, d, [s,] n, k, t, b, m, p, [u,] cur, a, refunds: [[refund id, units], ...],
--            [rc: the same list when it is the order's complete list of refunds]}
--           v = updated_at, a = the latest instant the order is known to exist (v, or the
--           receipt of a restore), both in microseconds; u = "1" when a line item is marked
--           as an accepted upsell (absent otherwise); s = the order's stage (absent: 0)
--   refund: {refunds: [[refund id, units]]}
--   delete: {x, f}  x = receipt of the deletion in microseconds, f = "1" when final
-- Money is in integer units of 1/10000, passed as strings.
-- Returns "applied", "unchanged" or "stale".

local P = ARGV[1]
local kind = ARGV[2]
local okey = P .. 'o:' .. ARGV[3]
local rkey = okey .. ':r'
local ev = cjson.decode(ARGV[7])

local function fmt(x) return string.format('%d', x) end

local function hincr_or_del(key, field, by)
  local n = redis.call('HINCRBY', key, field, by)
  if n == 0 then redis.call('HDEL', key, field) end
  return n
end

local function is_multi(bk, k)
  local mo = redis.call('HGET', bk .. ':mo', k)
  if mo and tonumber(mo) > 0 then return true end
  return redis.call('HLEN', bk .. ':sp:' .. k) >= 2
end

-- Add (s = 1) or remove (s = -1) one order's contribution to each of its buckets.
local function contribute(c, s)
  if c.n ~= '1' then return end
  local r = fmt(s * tonumber(c.r))
  for B in string.gmatch(c.b, '[^,]+') do
    local bk = P .. 'b:' .. B
    redis.call('HINCRBY', bk, 'orders', s)
    redis.call('HINCRBY', bk, 'revenue', r)
    if c.k ~= '' then
      redis.call('HINCRBY', bk, 'named_revenue', r)
      local was_multi = is_multi(bk, c.k)
      local n = hincr_or_del(bk .. ':co', c.k, s)
      if s == 1 and n == 1 then redis.call('HINCRBY', bk, 'customers', 1) end
      if s == 1 and n == 2 then redis.call('HINCRBY', bk, 'repeat_customers', 1) end
      if s == -1 and n == 0 then redis.call('HINCRBY', bk, 'customers', -1) end
      if s == -1 and n == 1 then redis.call('HINCRBY', bk, 'repeat_customers', -1) end
      if c.m == '1' then
        hincr_or_del(bk .. ':mo', c.k, s)
      elseif c.p ~= '' then
        hincr_or_del(bk .. ':sp:' .. c.k, c.p, s)
      end
      local now_multi = is_multi(bk, c.k)
      if was_multi ~= now_multi then
        redis.call('HINCRBY', bk, 'multi_product_customers', now_multi and 1 or -1)
      end
      -- An accepted upsell in the order: presented to and accepted by its customer. The
      -- per-customer counts are shared with the offer events (apply_offer.lua).
      if c.u == '1' then
        for _, f in ipairs({{':uo', 'upsell_offered_customers'},
                            {':ua', 'upsell_accepted_customers'}}) do
          local n = hincr_or_del(bk .. f[1], c.k, s)
          if s == 1 and n == 1 then redis.call('HINCRBY', bk, f[2], 1) end
          if s == -1 and n == 0 then redis.call('HINCRBY', bk, f[2], -1) end
        end
      end
    end
  end
end

-- 1. Refunds are facts keyed by their id: merge them whatever the state's age. The amount
--    of a refund only grows (pending transactions succeed), so the largest seen wins.
--    A state whose refund list is complete (rc) is not merged here: step 2 takes its list
--    whole if the state wins, so a refund deleted in the store is gone from the figures.
if ev.refunds and not ev.rc then
  for _, rf in ipairs(ev.refunds) do
    local seen = redis.call('HGET', rkey, rf[1])
    if not seen or tonumber(rf[2]) > tonumber(seen) then
      redis.call('HSET', rkey, rf[1], rf[2])
    end
  end
end

local function raise(field, value)
  local seen = redis.call('HGET', okey, field)
  if not seen or tonumber(value) > tonumber(seen) then
    redis.call('HSET', okey, field, value)
    return true
  end
  return false
end

-- 2. The newest state wins; of equal timestamps the later stage of the order's life (s), then
--    the digest, so any delivery order ends in the same state. Deletions are kept apart.
local outcome = 'applied'
if kind == 'state' then
  local cur = redis.call('HMGET', okey, 'v', 'd', 's')
  local newer, same_state = true, false
  if cur[1] then
    local sv, nv = tonumber(cur[1]), tonumber(ev.v)
    local ss, ns = tonumber(cur[3] or '0'), tonumber(ev.s or '0')
    newer = nv > sv or (nv == sv and (ns > ss or (ns == ss and ev.d > cur[2])))
    same_state = nv == sv and ns == ss and ev.d == cur[2]
  end
  local alive = raise('a', ev.a)
  if newer then
    redis.call('HSET', okey, 'v', ev.v, 'd', ev.d, 's', ev.s or '0', 'n', ev.n, 'k', ev.k,
      't', ev.t, 'b', ev.b, 'm', ev.m, 'p', ev.p, 'u', ev.u or '0')
    redis.call('HSET', P .. 'meta', 'currency', ev.cur)
    if ev.rc then
      redis.call('DEL', rkey)
      for _, rf in ipairs(ev.rc) do redis.call('HSET', rkey, rf[1], rf[2]) end
    end
  elseif not alive and not same_state then
    -- An older state; the very same state again is a duplicate ("unchanged"), not stale.
    outcome = 'stale'
  end
elseif kind == 'delete' then
  local later = raise('x', ev.x)
  local final = false
  if ev.f == '1' and redis.call('HSET', okey, 'f', '1') == 1 then final = true end
  if not later and not final then outcome = 'stale' end
end

-- 3. The contribution the stored state makes now, against the one it made before. The order
--    is deleted when a final deletion was seen, or a deletion later than its last sign of life.
local raw = redis.call('HMGET', okey, 'n', 'k', 't', 'b', 'm', 'p', 'cn', 'ck', 'cr', 'cb', 'cm', 'cp',
  'a', 'x', 'f', 'u', 'cu')
local new = nil
if raw[1] then
  local refunded = 0
  for _, units in ipairs(redis.call('HVALS', rkey)) do refunded = refunded + tonumber(units) end
  local deleted = raw[15] == '1' or (raw[14] ~= false and tonumber(raw[14]) > tonumber(raw[13]))
  new = { n = deleted and '0' or raw[1], k = raw[2], r = fmt(tonumber(raw[3]) - refunded),
          b = raw[4], m = raw[5], p = raw[6], u = raw[16] or '0' }
end
local old = nil
if raw[7] then
  old = { n = raw[7], k = raw[8], r = raw[9], b = raw[10], m = raw[11], p = raw[12],
          u = raw[17] or '0' }
end

local function same(a, b)
  if a == nil or b == nil then return a == b end
  return a.n == b.n and a.k == b.k and a.r == b.r and a.b == b.b and a.m == b.m and a.p == b.p
    and a.u == b.u
end

if same(old, new) then
  if outcome == 'applied' then outcome = 'unchanged' end
else
  if old then contribute(old, -1) end
  contribute(new, 1)
  redis.call('HSET', okey, 'cn', new.n, 'ck', new.k, 'cr', new.r, 'cb', new.b, 'cm', new.m,
    'cp', new.p, 'cu', new.u)
end

-- 4. The delivery is done only now that its effect is in Redis.
redis.call('SET', P .. 'dlv:' .. ARGV[4], '1', 'EX', ARGV[5])
redis.call('HDEL', P .. 'pending', ARGV[6])
redis.call('HDEL', P .. 'unapplied', ARGV[6])
redis.call('HINCRBY', P .. 'stats', 'events_' .. outcome, 1)
redis.call('HSET', P .. 'stats', 'last_event_unix', redis.call('TIME')[1])
return outcome
