-- Producers and consumers sharing one queue. Each producer makes a random
-- number (0 to 10) of items, sleeping a random time before each; consumers
-- take items greedily as they show up and report how long each one waited
-- in the queue. main gathers the producers, joins the queue (that is, waits
-- for the consumers to finish every item) and cancels the consumers.
--
--   lua5.4 examples/producer_consumer.lua -p 3 -c 5 [--seed N] [--scale S]
--   > demo = require "examples.producer_consumer"
--   > asyncio.run(demo.main, {producers = 3, consumers = 5, scale = 0.01})

local asyncio = require "asyncio"
local async, await = asyncio.async, asyncio.await

local M = {}

-- A random id of ten hex digits.
local function make_item()
  return ("%05x%05x"):format(math.random(0, 0xfffff), math.random(0, 0xfffff))
end

local produce = async(function(name, q, scale, stats)
  local n = math.random(0, 10)
  for _ = 1, n do
    local s = math.random(0, 10)
    print(("Producer %d sleeping for %d seconds."):format(name, s))
    await(asyncio.sleep(s * scale))
    local item = make_item()
    await(q:put({item, asyncio.get_running_loop():time()}))
    stats.produced = stats.produced + 1
    print(("Producer %d added <%s> to queue."):format(name, item))
  end
end)

local consume = async(function(name, q, scale, stats)
  while true do
    local s = math.random(0, 10)
    print(("Consumer %d sleeping for %d seconds."):format(name, s))
    await(asyncio.sleep(s * scale))
    local entry = await(q:get())
    local waited = (asyncio.get_running_loop():time() - entry[2]) / scale
    stats.consumed = stats.consumed + 1
    print(("Consumer %d got element <%s> in %0.5f seconds."):format(name, entry[1], waited))
    q:task_done()
  end
end)

-- main(opts): opts.producers, opts.consumers (default 3 and 5), opts.seed,
-- opts.scale (seconds per "second" of sleep; default 1). Returns a table
-- {produced = n, consumed = n}.
function M.main(opts)
  opts = opts or {}
  local scale = opts.scale or 1
  if opts.seed then math.randomseed(opts.seed) end
  local q = asyncio.Queue()
  local stats = {produced = 0, consumed = 0}
  local producers, consumers = {}, {}
  for i = 1, opts.producers or 3 do
    producers[i] = asyncio.create_task(produce, i, q, scale, stats)
  end
  for i = 1, opts.consumers or 5 do
    consumers[i] = asyncio.create_task(consume, i, q, scale, stats)
  end
  local ok, err = pcall(function()
    await(asyncio.gather(table.unpack(producers)))
    await(q:join())  -- every item put has been marked done by a consumer
  end)
  for _, c in ipairs(consumers) do c:cancel() end
  if not ok then error(err, 0) end
  return stats
end

function M.parse(args)
  local opts, i = {}, 1
  local names = {["-p"] = "producers", ["--producers"] = "producers",
                 ["-c"] = "consumers", ["--consumers"] = "consumers",
                 ["-s"] = "seed", ["--seed"] = "seed", ["--scale"] = "scale"}
  while i <= #args do
    local key, value = names[args[i]], tonumber(args[i + 1])
    if not key or not value then
      error("usage: producer_consumer.lua [-p N] [-c N] [--seed N] [--scale S]", 0)
    end
    opts[key] = value
    i = i + 2
  end
  return opts
end

function M.script(args)
  local opts = M.parse(args)
  local start = asyncio.monotonic()
  local stats = asyncio.run(M.main, opts)
  local took, scale = asyncio.monotonic() - start, opts.scale or 1
  -- the real time; with --scale, the demo's own "seconds" beside it
  print(("Program completed in %0.5f seconds%s (%d items produced, %d consumed)."):format(took,
    scale ~= 1 and (" (%0.2f demo seconds at --scale %g)"):format(took / scale, scale) or "",
    stats.produced, stats.consumed))
end

if (...) ~= "examples.producer_consumer" then M.script(arg or {}) end
return M
