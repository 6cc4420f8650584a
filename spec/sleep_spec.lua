local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("sleep", function()
  after_each(support.assert_clean)

  it("returns its extra values", function()
    assert.same({"a", nil, 3}, {support.run(function()
      return await(asyncio.sleep(0.001, "a", nil, 3))
    end)})
    assert.equal(0, select("#", support.run(function() return await(asyncio.sleep(0)) end)))
  end)

  it("does not keep its object while the task sleeps (memory per sleeping task)", function()
    local made = setmetatable({}, {__mode = "k"})
    local function sleep(d, ...)
      local s = asyncio.sleep(d, ...)
      made[s] = select("#", ...)
      return s
    end
    local alive = {}
    support.run(function()
      local plain = asyncio.create_task(function() await(sleep(0.3)) end)
      local valued = asyncio.create_task(function() return await(sleep(0.3, "v")) end)
      await(asyncio.sleep(0.05))
      collectgarbage(); collectgarbage()
      for _, n in pairs(made) do alive[#alive + 1] = n end
      await(plain)
      assert.equal("v", await(valued))
    end)
    -- the sleep with values keeps them until it wakes; the plain one is gone
    assert.same({1}, alive)
  end)

  it("sleep(0) yields to the loop exactly once", function()
    local log = {}
    support.run(function()
      local t = asyncio.create_task(function() log[#log + 1] = "other" end)
      log[#log + 1] = "before"
      await(asyncio.sleep(0))
      log[#log + 1] = "after"
      await(t)
    end)
    assert.same({"before", "other", "after"}, log)
  end)

  it("wakes sleepers in deadline order", function()
    -- each task starts its sleep in its own step; a slow step (GC stress,
    -- valgrind) shifts the deadlines, so compare with the real deadlines
    local log, deadline = {}, {}
    support.run(function()
      local loop = asyncio.get_running_loop()
      local ts = {}
      for _, d in ipairs({0.03, 0.01, 0.02}) do
        ts[#ts + 1] = asyncio.create_task(function()
          deadline[d] = loop:time() + d
          await(asyncio.sleep(d))
          log[#log + 1] = d
        end)
      end
      await(asyncio.gather(table.unpack(ts)))
    end)
    local expected = {0.03, 0.01, 0.02}
    table.sort(expected, function(a, b) return deadline[a] < deadline[b] end)
    assert.same(expected, log)
  end)

  it("takes at least the delay on the loop's clock", function()
    local elapsed = support.run(function()
      local loop = asyncio.get_running_loop()
      local t0 = loop:time()
      await(asyncio.sleep(0.02))
      return loop:time() - t0
    end)
    assert.is_true(elapsed >= 0.02)
  end)

  it("treats a negative delay as zero and a huge one as forever", function()
    support.run(function() await(asyncio.sleep(-5)) end)
    local cancelled = support.run(function()
      local t = asyncio.create_task(function() await(asyncio.sleep(math.huge)) end)
      await(asyncio.sleep(0))
      t:cancel()
      return not pcall(await, t)
    end)
    assert.is_true(cancelled)
  end)

  it("leaves no timer behind when a sleeper is cancelled", function()
    local pending = asyncio.run(function()  -- not support.run: its deadline is a timer too
      local t = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      await(asyncio.sleep(0))
      t:cancel()
      pcall(await, t)
      local _, timers = asyncio.get_running_loop()._core:pending()
      return timers
    end)
    assert.equal(0, pending)
  end)

  it("checks its delay", function()
    assert.has_error(function() asyncio.sleep("soon") end,
      "bad argument #1 to 'sleep' (number expected, got string)")
    assert.has_error(function() asyncio.sleep(0/0) end,
      "bad argument #1 to 'sleep' (delay is NaN)")
  end)
end)

describe("a sleep after a long step", function()
  -- libuv caches its clock per iteration. In libuv 1.44 UV_RUN_ONCE runs
  -- due timers before it polls: a timer armed from a stale clock fired
  -- there, and with any other handle alive (here a listening server) the
  -- poll then waited with no timeout at all.
  it("still wakes up (in a child process, so a hang fails instead of blocking)", function()
    local out, code = support.sh("timeout 20 env " .. support.LUA .. [[ -e '
      local asyncio = require "asyncio"
      asyncio.run(function()
        local srv = asyncio.await(asyncio.start_server(function() end, "127.0.0.1", 0))
        for _ = 1, 5 do
          local t0 = asyncio.monotonic()
          while asyncio.monotonic() - t0 < 0.02 do end   -- a 20 ms step
          asyncio.await(asyncio.sleep(0.005))
        end
        srv:close()
      end)
      print("woke")' ]])
    assert.equal(0, code, out)
    assert.equal("woke\n", out)
  end)
end)
