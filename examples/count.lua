-- count: three counters that each sleep one second. Run concurrently with
-- asyncio they finish in about one second; one after another, blocking,
-- they take three.
--
--   lua5.4 examples/count.lua [--sync] [--scale S]
--   > count = require "examples.count"
--   > asyncio.run(count.main)

local asyncio = require "asyncio"
local async, await = asyncio.async, asyncio.await

local M = {}

local count = async(function(scale)
  print("One")
  await(asyncio.sleep(1 * scale))
  print("Two")
end)

-- main(opts): the asynchronous version; opts.scale shortens the second.
function M.main(opts)
  local scale = opts and opts.scale or 1
  await(asyncio.gather(count(scale), count(scale), count(scale)))
end

-- The synchronous version: the same counters, each blocking in turn.
function M.sync(opts)
  local scale = opts and opts.scale or 1
  local function blocking_sleep(s)
    local deadline = asyncio.monotonic() + s
    while asyncio.monotonic() < deadline do end
  end
  for _ = 1, 3 do
    print("One")
    blocking_sleep(1 * scale)
    print("Two")
  end
end

function M.script(args)
  local opts, sync = {}, false
  local i = 1
  while i <= #args do
    if args[i] == "--sync" then sync = true
    elseif args[i] == "--scale" then opts.scale = tonumber(args[i + 1]); i = i + 1
    else error("usage: count.lua [--sync] [--scale S]", 0) end
    i = i + 1
  end
  local start = asyncio.monotonic()
  if sync then M.sync(opts) else asyncio.run(M.main, opts) end
  print(("%s executed in %0.2f seconds."):format(sync and "count (sync)" or "count (async)",
    (asyncio.monotonic() - start) / (opts.scale or 1)))
end

if (...) ~= "examples.count" then M.script(arg or {}) end
return M
