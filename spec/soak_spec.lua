-- Soak: a million tasks, a hundred thousand concurrent timers, and ten runs
-- in a row with memory back to its baseline. Tagged #soak: `make soak`
-- (and `make check`) run it; the plain suite leaves it out.
local asyncio = require "asyncio"
local await = asyncio.await

local function rss_kib()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4
end

local function lua_kib()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

describe("soak #soak", function()
  it("creates and finishes a million tasks", function()
    local sum = asyncio.run(function()
      local total = 0
      for batch = 0, 99 do
        local ts = {}
        for i = 1, 10000 do
          ts[i] = asyncio.create_task(function(n) await(asyncio.sleep(0)) return n end, batch * 10000 + i)
        end
        local r = await(asyncio.gather(table.unpack(ts)))
        for i = 1, r.n do total = total + r[i] end
      end
      return total
    end)
    assert.equal(1000000 * 1000001 // 2, sum)
  end)

  it("runs a hundred thousand concurrent sleeps, none early", function()
    local fired, early = 0, 0
    asyncio.run(function()
      local loop = asyncio.get_running_loop()
      math.randomseed(7)
      local ts = {}
      for i = 1, 100000 do
        local d = math.random(0, 50) / 1000
        ts[i] = asyncio.create_task(function()
          local deadline = loop:time() + d  -- read before arming: never after the real one
          await(asyncio.sleep(d))
          if loop:time() < deadline then early = early + 1 end
          fired = fired + 1
        end)
      end
      await(asyncio.gather(table.unpack(ts)))
    end)
    assert.equal(100000, fired)
    assert.equal(0, early)
  end)

  it("fires a hundred thousand timers in exact deadline order, ties in arming order", function()
    local loop = asyncio.new_event_loop()
    math.randomseed(11)
    local order, base = {}, loop:time()
    for i = 1, 100000 do
      -- call_at deadlines are exact; many are equal, and most are past by
      -- the time the loop runs: the heap must still give them in order
      local when = base + math.random(0, 2000) / 1e5
      loop:call_at(when, function() order[#order + 1] = {when, i} end)
    end
    loop:run_forever()
    loop:close()
    assert.equal(100000, #order)
    local bad = 0
    for k = 2, #order do
      local a, b = order[k - 1], order[k]
      if b[1] < a[1] or (b[1] == a[1] and b[2] < a[2]) then bad = bad + 1 end
    end
    assert.equal(0, bad)
  end)

  it("returns memory to its baseline after each of ten runs", function()
    local function work()
      local q = asyncio.Queue(100)
      local prod = asyncio.create_task(function() for i = 1, 20000 do await(q:put(i)) end end)
      local s = 0
      for _ = 1, 20000 do s = s + await(q:get()) end
      await(prod)
      local ts = {}
      for i = 1, 20000 do ts[i] = asyncio.create_task(function() await(asyncio.sleep(0.001)) end) end
      await(asyncio.gather(table.unpack(ts)))
      return s
    end
    asyncio.run(work)  -- warm up: pools and tables reach their size
    local lua0, rss0 = lua_kib(), rss_kib()
    local figures = {}
    for i = 1, 10 do
      assert.equal(20000 * 20001 // 2, asyncio.run(work))
      local l, r = lua_kib(), rss_kib()
      figures[i] = ("%d: Lua %+.0f KiB, RSS %+d KiB"):format(i, l - lua0, (r or 0) - (rss0 or 0))
      -- the Lua heap comes back (within a small allowance for the coroutine pool)
      assert.is_true(l - lua0 < 256, figures[i])
    end
    if os.getenv("ASYNCIO_SOAK_VERBOSE") then print("\n" .. table.concat(figures, "\n")) end
    -- RSS may keep freed pages, but ten runs must not grow it without bound
    local r = rss_kib()
    if r and rss0 then assert.is_true(r - rss0 < 16 * 1024, "RSS grew by " .. (r - rss0) .. " KiB") end
  end)
end)
