-- The counts of a run of days (a trailing window, or the 365 days behind a CLV), as the
-- union of the day buckets: customers are distinct across days, a customer is a repeat
-- customer with two or more orders over the whole run, and multi-product over the whole run.
--
-- ARGV[1] shop prefix; ARGV[2..] day bucket ids ("day:2011-03-04").
-- Returns {orders, revenue, named_revenue, customers, repeat_customers,
--          multi_product_customers, upsell_offered_customers, upsell_accepted_customers}
-- as integer strings.

local P = ARGV[1]
local orders, revenue, named = 0, 0, 0
local per_customer = {}
local multi = {}
local offered, accepted = {}, {}
local days_of = {}

for i = 2, #ARGV do
  local bk = P .. 'b:' .. ARGV[i]
  local h = redis.call('HMGET', bk, 'orders', 'revenue', 'named_revenue')
  if h[1] then
    orders = orders + tonumber(h[1])
    revenue = revenue + tonumber(h[2] or '0')
    named = named + tonumber(h[3] or '0')
    local co = redis.call('HGETALL', bk .. ':co')
    for j = 1, #co, 2 do
      local k = co[j]
      per_customer[k] = (per_customer[k] or 0) + tonumber(co[j + 1])
      local d = days_of[k]
      if d == nil then d = {}; days_of[k] = d end
      d[#d + 1] = bk
    end
    for _, k in ipairs(redis.call('HKEYS', bk .. ':mo')) do multi[k] = true end
  end
  for _, k in ipairs(redis.call('HKEYS', bk .. ':uo')) do offered[k] = true end
  for _, k in ipairs(redis.call('HKEYS', bk .. ':ua')) do accepted[k] = true end
end

local customers, repeaters, multis = 0, 0, 0
for k, n in pairs(per_customer) do
  customers = customers + 1
  if n >= 2 then repeaters = repeaters + 1 end
  local is_multi = multi[k] == true
  if not is_multi then
    -- Only single-product orders here: two distinct products across them make it multi.
    local first = nil
    for _, bk in ipairs(days_of[k]) do
      for _, p in ipairs(redis.call('HKEYS', bk .. ':sp:' .. k)) do
        if first == nil then first = p elseif p ~= first then is_multi = true; break end
      end
      if is_multi then break end
    end
  end
  if is_multi then multis = multis + 1 end
end

local n_offered, n_accepted = 0, 0
for _ in pairs(offered) do n_offered = n_offered + 1 end
for _ in pairs(accepted) do n_accepted = n_accepted + 1 end

local function fmt(x) return string.format('%d', x) end
return { fmt(orders), fmt(revenue), fmt(named), fmt(customers), fmt(repeaters), fmt(multis),
         fmt(n_offered), fmt(n_accepted) }
