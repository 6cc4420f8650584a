-- The virtual clock: new_event_loop{clock = "virtual"}, run(main, {clock =
-- "virtual"}), asyncio.testing.advance. Time stands still while a task can
-- run and jumps to the next deadline when every task waits.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local function vrun(fn) return asyncio.run(fn, {clock = "virtual"}) end

describe("the virtual clock", function()
  it("starts at 0 and stands still while tasks run", function()
    local t = vrun(function()
      local loop = asyncio.get_running_loop()
      local a = loop:time()
      for _ = 1, 1000 do await(asyncio.sleep(0)) end
      return {a, loop:time(), loop:is_virtual()}
    end)
    assert.same({0, 0, true}, t)
  end)

  it("a 30-second timeout fires at exactly 30 s of loop time, and hours of sleep take no wall time", function()
    local wall0 = os.time()
    local res = vrun(function()
      local loop = asyncio.get_running_loop()
      local ok, err = pcall(await, asyncio.wait_for(asyncio.Event():wait(), 30))
      local at = loop:time()
      await(asyncio.sleep(6 * 3600))
      return {ok = ok, err = err, at = at, later = loop:time()}
    end)
    assert.is_false(res.ok)
    assert.is_true(asyncio.TimeoutError:is(res.err))
    assert.equal(30, res.at)
    assert.equal(30 + 6 * 3600, res.later)
    assert.is_true(os.time() - wall0 < 3600)  -- six hours did not pass
  end)

  it("never jumps to a deadline of math.huge or past 1e9 s: those never come", function()
    -- it used to arm them at 1e9 s, and a virtual clock jumped there
    local function deadlocks(fn)
      local ok, err = pcall(vrun, fn)
      assert.is_false(ok)
      assert.matches("deadlock", err)
    end
    deadlocks(function() await(asyncio.sleep(math.huge)) end)
    deadlocks(function() await(asyncio.sleep(5e9)) end)
    deadlocks(function() await(asyncio.wait_for(asyncio.Event():wait(), math.huge)) end)
    deadlocks(function()
      local ev = asyncio.Event()
      local h = asyncio.get_running_loop():call_later(math.huge, function() ev:set() end)
      assert.equal(math.huge, h:when())
      await(ev:wait())
    end)
    -- cancelled, they leave nothing behind; the clock stays where it was
    assert.same({"cancelled", 1, 0}, vrun(function()
      local loop = asyncio.get_running_loop()
      local t = asyncio.create_task(function() await(asyncio.sleep(5e9)) end)
      local h = loop:call_at(1e300, print)
      await(asyncio.sleep(1))
      assert.matches("sleep with no end", asyncio.dump_tasks())
      t:cancel()
      h:cancel()
      return {pcall(await, t) and "returned" or "cancelled", loop:time(),
              (select(2, loop._core:pending()))}
    end))
  end)

  it("saturates after 584 years of jumps rather than wrap around to the past", function()
    local r = vrun(function()
      local loop = asyncio.get_running_loop()
      for _ = 1, 18 do await(asyncio.sleep(1e9)) end
      local t0 = loop:time()
      local sleeper = asyncio.create_task(function() await(asyncio.sleep(1e9)) end)
      local h = loop:call_at(t0 + 5e8, print)
      await(asyncio.sleep(0))
      await(asyncio.sleep(0))
      local asleep = not sleeper:done()  -- it woke at once: its deadline had wrapped
      sleeper:cancel()
      local when = h:when()
      h:cancel()
      asyncio.testing.advance(5e8)
      local t1 = loop:time()
      asyncio.testing.advance(5e8)
      return {t0, asleep, when, t1 > t0, loop:time() == t1}
    end)
    assert.same({18e9, true, math.huge, true, true}, r)
  end)

  it("10,000 tasks sleeping random hours end in deadline order, the same on every run", function()
    -- under make check's GC stress (a full collection after every step) 2,000
    -- tell the same and take seconds, not minutes
    local N = os.getenv("ASYNCIO_GC_STRESS") and 2000 or 10000
    local function once()
      return vrun(function()
        local loop = asyncio.get_running_loop()
        local rng, order, tasks = 12345, {}, {}
        for i = 1, N do
          rng = (rng * 1103515245 + 12345) % 2147483648
          local d = (rng % 360000) / 10  -- up to 10 hours, in tenths of seconds
          tasks[i] = asyncio.create_task(function()
            await(asyncio.sleep(d))
            order[#order + 1] = {i = i, d = d, at = loop:time()}
          end)
        end
        await(asyncio.gather(tasks))
        return order
      end)
    end
    local a, b = once(), once()
    assert.equal(N, #a)
    for k = 1, #a do
      local e = a[k]
      if e.at ~= e.d then assert.equal(e.d, e.at) end  -- each wakes at its own deadline
      if k > 1 then
        local p = a[k - 1]
        -- the order real time gives: by deadline, ties in the order they slept
        if not (p.d < e.d or (p.d == e.d and p.i < e.i)) then
          assert.fail(("out of order at %d: %s after %s"):format(k, e.d, p.d))
        end
      end
      if b[k].i ~= e.i then assert.equal(e.i, b[k].i) end
    end
  end)

  it("advance moves time by hand", function()
    local res = vrun(function()
      local loop = asyncio.get_running_loop()
      local woke = {}
      for _, d in ipairs({5, 10, 20}) do
        asyncio.create_task(function() await(asyncio.sleep(d)); woke[#woke + 1] = d end)
      end
      await(asyncio.sleep(0))
      asyncio.testing.advance(12)
      await(asyncio.sleep(0))
      await(asyncio.sleep(0))
      return {woke = woke, now = loop:time()}
    end)
    assert.same({5, 10}, res.woke)
    assert.equal(12, res.now)
  end)

  it("real I/O works beside it: files, sockets and child processes do not time out", function()
    local res = vrun(function()
      local loop = asyncio.get_running_loop()
      local srv <close> = await(asyncio.start_server(function(r, w)
        w:write(await(r:readline()))
      end, "127.0.0.1", 0))
      local port = srv:sockets()[1]:getsockname()[2]
      local r, w = await(asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1))
      w:write("ping\n")
      local line = await(asyncio.wait_for(r:readline(), 1))
      w:close()
      local f <close> = await(asyncio.open_file("spec/virtual_clock_spec.lua"))
      local head = await(asyncio.wait_for(f:read(2), 1))
      -- the child takes 0.3 s of real time: a 30 s virtual limit must not fire
      -- (time does not jump to it; it flows at real speed meanwhile)
      local p = await(asyncio.create_subprocess_exec("sleep", "0.3"))
      local code = await(asyncio.wait_for(p:wait(), 30))
      return {line = line, head = head, code = code, now = loop:time()}
    end)
    assert.equal("ping\n", res.line)
    assert.equal("--", res.head)
    assert.equal(0, res.code)
    assert.is_true(res.now > 0 and res.now < 30, tostring(res.now))  -- flowed, never jumped
  end)

  -- (review of 2026-12-07: time stood still while real work ran, so a
  -- timer beside a child waited for the child, and a limit on work that
  -- never ends never expired; worker threads did not count as real work)
  it("while real work runs, time flows towards the next deadline instead of standing still", function()
    local res = vrun(function()
      local p = await(asyncio.create_subprocess_exec("sleep", "10"))
      await(asyncio.sleep(0.05))  -- ends long before the child
      local running = p.returncode == nil
      if not running then return {running = false} end  -- (the rest would hang then)
      -- it moves by the real time that passed, as a real clock: past a
      -- deadline closer than the millisecond its wait is armed in (capped
      -- at each deadline, 10 us timers took a millisecond each)
      local t0 = asyncio.get_running_loop():time()
      await(asyncio.sleep(1e-5))
      local moved = asyncio.get_running_loop():time() - t0
      -- a peer that never reads: a limit on the drain still expires
      local srv = await(asyncio.start_server(function() await(asyncio.sleep(3600)) end,
        "127.0.0.1", 0))
      local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      w:write(("x"):rep(32 * 1024 * 1024))
      local ok, err = pcall(await, asyncio.wait_for(w:drain(), 0.05))
      w:close()
      srv:close()
      srv:close_clients()
      p:kill()
      await(p:wait())
      return {running = running, ok = ok, err = err, moved = moved}
    end)
    assert.is_true(res.running)
    assert.is_true(res.moved > 1e-5, tostring(res.moved))
    assert.is_false(res.ok)
    assert.is_true(asyncio.TimeoutError:is(res.err), tostring(res.err))
  end)

  it("a to_thread call is real work: time does not jump past it", function()
    local got = vrun(function()
      return await(asyncio.wait_for(asyncio.to_thread(function()
        local x = 0
        for i = 1, 3000000 do x = x + i % 7 end  -- CPU work, some real milliseconds
        return x
      end), 30))  -- jumped, it would be over at once
    end)
    assert.equal(8999997, got)
  end)

  it("rejects bad options and advance on a real clock", function()
    assert.has_error(function() asyncio.new_event_loop{clock = "fast"} end,
      "bad argument #1 to 'new_event_loop' (clock must be \"real\" or \"virtual\")")
    assert.has_error(function() asyncio.new_event_loop{clok = "virtual"} end,
      "bad argument #1 to 'new_event_loop' (unknown option 'clok')")
    support.run(function()
      assert.has_error(function() asyncio.testing.advance(1) end,
        "bad argument #2 to 'advance' (the loop's clock is not virtual (new_event_loop{clock = \"virtual\"}))")
    end)
    vrun(function()
      assert.has_error(function() asyncio.testing.advance(-1) end,
        "bad argument #1 to 'advance' (seconds must not be negative)")
    end)
  end)

  it("run passes a table that is not only loop options on to main", function()
    local got = asyncio.run(function(t) return t.clock, t.n end, {clock = "virtual", n = 1})
    assert.equal("virtual", got)
    local v = asyncio.new_event_loop{clock = "virtual"}
    assert.is_true(v:is_virtual())
    v:close()
  end)
end)
