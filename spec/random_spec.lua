-- Seeded random programs over queues, futures, tasks, sleeps and
-- cancellations, each checked against invariants. The seed of a failing
-- program is in the failure message; rerun it with ASYNCIO_SEED=seed and
-- ASYNCIO_RANDOM_N=1. `make fuzz` runs many more.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local N = tonumber(os.getenv("ASYNCIO_RANDOM_N")) or 1500
local BASE = tonumber(os.getenv("ASYNCIO_SEED")) or os.time()

local function registry_size()
  collectgarbage()
  collectgarbage()
  local n = 0
  for _ in pairs(debug.getregistry()) do n = n + 1 end
  return n
end

-- One random program; returns nil, or a string saying what went wrong.
local function program(seed)
  math.randomseed(seed)
  local rnd = math.random
  local kinds = {"Queue", "LifoQueue", "PriorityQueue"}
  local kind = kinds[rnd(1, 3)]
  local maxsize = ({0, 1, 2, 5})[rnd(1, 4)]
  local q = asyncio[kind](maxsize)
  local put, got, nextid = {}, {}, 0
  local clock, last_zero = 0, -1  -- event count, and when unfinished last hit 0
  local function done_one()
    q:task_done()
    clock = clock + 1
    if q:_unfinished() == 0 then last_zero = clock end
  end
  local problems = {}
  local function check(cond, what) if not cond then problems[#problems + 1] = what end end

  local actors = {}
  local function actor(nops)
    for _ = 1, nops do
      local r = rnd(1, 9)
      if r == 1 then
        nextid = nextid + 1
        local id = nextid
        await(q:put(id))
        put[id] = (put[id] or 0) + 1
      elseif r == 2 then
        local id = await(q:get())
        got[id] = (got[id] or 0) + 1
        done_one()
      elseif r == 3 then
        nextid = nextid + 1
        if pcall(q.put_nowait, q, nextid) then put[nextid] = 1 end
      elseif r == 4 then
        local ok, id = pcall(q.get_nowait, q)
        if ok then got[id] = (got[id] or 0) + 1; done_one() end
      elseif r == 5 then
        await(asyncio.sleep(0))
      elseif r == 6 then
        await(asyncio.sleep(rnd() * 0.0005))
      elseif r == 7 then
        local victim = actors[rnd(1, #actors)]
        if victim ~= nil then victim:cancel() end
      elseif r == 8 then
        local f = asyncio.Future()
        local loop = asyncio.get_running_loop()
        if rnd(1, 2) == 1 then loop:call_soon(function() if not f:done() then f:set_result(1) end end)
        else loop:call_soon(function() f:cancel() end) end
        pcall(await, f)
      else
        local t = actors[rnd(1, #actors)]
        if t ~= nil and t ~= asyncio.current_task() then pcall(await, t) end
      end
    end
  end

  local ok, err = pcall(asyncio.run, function()
    for i = 1, rnd(1, 6) do actors[i] = asyncio.create_task(actor, rnd(1, 12)) end
    local joined  -- join must not return before unfinished reached 0
    local joiner = asyncio.create_task(function()
      local started = clock
      await(q:join())
      joined = q:_unfinished() == 0 or last_zero >= started
    end)
    for _ = 1, 40 do
      local busy = false
      for _, t in ipairs(actors) do if not t:done() then busy = true end end
      if not busy then break end
      await(asyncio.sleep(rnd(1, 4) == 1 and 0.0002 or 0))
    end
    -- actors may swallow a cancellation (pcall around await) and wait again:
    -- cancel until every one has ended (each has a bounded number of steps)
    for _ = 1, 1000 do
      local left = false
      for _, t in ipairs(actors) do
        if not t:done() then left = true; t:cancel() end
      end
      if not left then break end
      await(asyncio.sleep(0))
    end
    local all = {table.unpack(actors)}
    all[#all + 1] = {return_exceptions = true}
    await(asyncio.gather(table.unpack(all)))
    local g, p = q:_waiting()
    check(g == 0 and p == 0, ("waiters left after every actor ended: %d getters, %d putters"):format(g, p))
    while not q:empty() do  -- what is left in the queue is every item not yet got
      local id = q:get_nowait()
      got[id] = (got[id] or 0) + 1
      done_one()
    end
    for _ = 1, 3 do await(asyncio.sleep(0)) end
    check(joiner:done(), "join did not return once every item was done")
    check(joined == true, "join returned before every item was done")
    check(q:qsize() == 0, "qsize after draining: " .. q:qsize())
    for _, t in ipairs(actors) do check(t:done(), "an actor is still pending") end
  end)
  check(ok, "run failed: " .. tostring(err))
  for id, n in pairs(put) do
    check(n == 1 and got[id] == 1, ("item %d put %d times, got %s times"):format(id, n, tostring(got[id])))
  end
  for id in pairs(got) do check(put[id] ~= nil, ("item %d got but never put"):format(id)) end
  if #problems > 0 then return table.concat(problems, "; ") end
end

describe("random programs", function()
  after_each(support.assert_clean)

  it(("keep every invariant (%d programs from seed %d)"):format(N, BASE), function()
    local before = registry_size()
    for i = 0, N - 1 do
      local problem = program(BASE + i)
      if problem then
        error(("program with seed %d: %s"):format(BASE + i, problem), 0)
      end
    end
    assert.equal(before, registry_size(), "the registry grew")
  end)
end)
