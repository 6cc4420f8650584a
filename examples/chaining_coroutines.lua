-- Chaining coroutines: each chain runs part1, then part2 with part1's
-- result; every part sleeps a random number of seconds. The chains run
-- concurrently under gather, so the whole takes about as long as the
-- longest chain, not the sum of them.
--
--   lua5.4 examples/chaining_coroutines.lua [--seed N] [--scale S] [N ...]
--   > demo = require "examples.chaining_coroutines"
--   > asyncio.run(demo.main, {chains = {1, 2, 3}, scale = 0.01})

local asyncio = require "asyncio"
local async, await = asyncio.async, asyncio.await

local M = {}

local function seconds(opts) return math.random(0, 10), opts.scale or 1 end

local part1 = async(function(n, opts)
  local s, scale = seconds(opts)
  print(("part1(%d) sleeps %d seconds."):format(n, s))
  await(asyncio.sleep(s * scale))
  local result = ("result%d-1"):format(n)
  print(("part1(%d) returns %s."):format(n, result))
  return result
end)

local part2 = async(function(n, arg, opts)
  local s, scale = seconds(opts)
  print(("part2(%d, %s) sleeps %d seconds."):format(n, arg, s))
  await(asyncio.sleep(s * scale))
  local result = ("result%d-2 derived from %s"):format(n, arg)
  print(("part2(%d, %s) returns %s."):format(n, arg, result))
  return result
end)

local chain = async(function(n, opts)
  local loop = asyncio.get_running_loop()
  local start = loop:time()
  local p1 = await(part1(n, opts))
  local p2 = await(part2(n, p1, opts))
  local took = (loop:time() - start) / (opts.scale or 1)
  print(("--> chain %d gives '%s' (took %0.2f seconds)."):format(n, p2, took))
  return took
end)

-- main(opts): opts.chains (list of numbers, default {1, 2, 3}), opts.seed,
-- opts.scale (seconds per "second" of sleep, default 1). Returns the
-- time each chain took, in unscaled seconds.
function M.main(opts)
  opts = opts or {}
  if opts.seed then math.randomseed(opts.seed) end
  local chains = {}
  for i, n in ipairs(opts.chains or {1, 2, 3}) do chains[i] = chain(n, opts) end
  return await(asyncio.gather(table.unpack(chains)))
end

function M.parse(args)
  local opts, chains, i = {}, {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--seed" then opts.seed = tonumber(args[i + 1]); i = i + 1
    elseif a == "--scale" then opts.scale = tonumber(args[i + 1]); i = i + 1
    elseif tonumber(a) then chains[#chains + 1] = tonumber(a)
    else error("usage: chaining_coroutines.lua [--seed N] [--scale S] [N ...]", 0) end
    i = i + 1
  end
  if #chains > 0 then opts.chains = chains end
  return opts
end

function M.script(args)
  local opts = M.parse(args)
  local start = asyncio.monotonic()
  local took = asyncio.run(M.main, opts)
  local longest, sum = 0, 0
  for i = 1, took.n do longest = math.max(longest, took[i]); sum = sum + took[i] end
  local total = (asyncio.monotonic() - start) / (opts.scale or 1)
  print(("Program finished in %0.2f seconds (longest chain %0.2f, all chains added up %0.2f)."):format(
    total, longest, sum))
end

if (...) ~= "examples.chaining_coroutines" then M.script(arg or {}) end
return M
