-- Counts the live gateways sharing the budgets (EVALSHA from src/ratelimit/mod.rs).
-- KEYS[1]: the instance set. ARGV: this instance, liveness window (ms).
-- Returns the number of instances seen within the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
