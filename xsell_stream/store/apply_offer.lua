-- Apply one upsell offer event to a shop's aggregates, atomically and once.
--
-- ARGV[1] shop prefix
-- ARGV[2] offer event identity (offer id, action, customer key): seen twice counts once
-- ARGV[3] customer key
-- ARGV[4] action: "presented" | "accepted" | "declined"
-- ARGV[5] bucket ids, comma-separated
-- ARGV[6] delivery id
-- ARGV[7] seconds a done delivery id is remembered
-- ARGV[8] pending-entry id to clear
-- Returns "applied" or "unchanged".

local P = ARGV[1]
local k = ARGV[3]
local action = ARGV[4]
local outcome = 'unchanged'

-- Offer identities are kept as long as any period they touch can still be reported.
if redis.call('SET', P .. 'offer:' .. ARGV[2], '1', 'NX', 'EX', 60 * 60 * 24 * 800) then
  outcome = 'applied'
  for B in string.gmatch(ARGV[5], '[^,]+') do
    local bk = P .. 'b:' .. B
    -- Accepted and declined offers were presented too.
    if redis.call('HINCRBY', bk .. ':uo', k, 1) == 1 then
      redis.call('HINCRBY', bk, 'upsell_offered_customers', 1)
    end
    if action == 'accepted' and redis.call('HINCRBY', bk .. ':ua', k, 1) == 1 then
      redis.call('HINCRBY', bk, 'upsell_accepted_customers', 1)
    end
  end
end

redis.call('SET', P .. 'dlv:' .. ARGV[6], '1', 'EX', ARGV[7])
redis.call('HDEL', P .. 'pending', ARGV[8])
redis.call('HDEL', P .. 'unapplied', ARGV[8])
redis.call('HINCRBY', P .. 'stats', 'events_' .. outcome, 1)
redis.call('HSET', P .. 'stats', 'last_event_unix', redis.call('TIME')[1])
return outcome
