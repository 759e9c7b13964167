-- A token bucket, changed atomically (EVALSHA from src/ratelimit/mod.rs).
-- KEYS[1]: the bucket. ARGV: capacity, rate (tokens/s), min, max.
-- Takes between min and max tokens (as many as there are, up to max) when at least min
-- are there; a negative min (= max) gives tokens back.
-- Returns {granted, tokens left, retry ms}. Time is Redis's own clock (TIME), so gateways
-- with skewed clocks share one bucket correctly.
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local min = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
  ts = now
end
local granted = 0
local retry = 0
if min <= 0 then
  tokens = math.min(capacity, tokens - min)
  granted = min
elseif tokens >= min then
  granted = math.min(max, math.floor(tokens))
  tokens = tokens - granted
else
  retry = math.ceil((min - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 60000)
return {granted, string.format('%.6f', tokens), retry}
