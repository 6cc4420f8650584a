-- What a hostile review of the core found (2026-12-07, third session):
-- waits that failed halfway, leaked, or woke with the wrong outcome.
-- (The timer ids' wrap is in timer_heap_spec.lua.)
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("review of the waits", function()
  after_each(support.assert_clean)

  it("a wait whose C call raises leaves the task the current task", function()
    local q = asyncio.Queue()
    local other = asyncio.new_event_loop()
    other:create_task(function() return await(q:get()) end)  -- a getter of another loop
    other:run_until_complete(asyncio.sleep(0.01))
    local got = {}
    support.run(function()
      local me = asyncio.current_task()
      local ok, err = pcall(await, q:get())
      got.ok, got.err = ok, err
      got.same = asyncio.current_task() == me
      got.next = {pcall(await, asyncio.sleep(0, "again"))}
    end)
    other:close()
    assert.is_false(got.ok)
    assert.matches("get: the queue is bound to a different event loop", got.err)
    assert.is_true(got.same)
    assert.same({true, "again"}, got.next)
  end)

  it("current_task() asked inside a wait's C call (a hook) is not left behind", function()
    local seen_in_cb, await_in_cb, during = "unset", nil, nil
    support.run(function()
      local loop = asyncio.get_running_loop()
      local me = asyncio.current_task()
      local done = asyncio.Future()
      local sleeper = asyncio.create_task(function()
        -- a call hook runs inside c_sleep too, after the wait cleared rt.current
        debug.sethook(function()
          local t = asyncio.current_task()
          during = during or t
        end, "c")
        loop:call_soon(function()  -- runs right after the sleeper suspends
          seen_in_cb = asyncio.current_task()
          await_in_cb = {pcall(asyncio.await, asyncio.sleep(1))}
          done:set_result()
        end)
        asyncio.await(asyncio.sleep(10))
      end)
      await(done)
      assert.equal(me, asyncio.current_task())
      sleeper:cancel()
      assert.is_false(pcall(await, sleeper))
    end)
    assert.is_nil(seen_in_cb)
    assert.matches("'await' called outside a running task", await_in_cb[2])
    assert.is_not_nil(during)  -- the hook saw the sleeper while it was still running
    assert.is_nil(asyncio.current_task())
  end)

  it("q:join() under a time limit leaves nothing behind when it expires", function()
    support.run(function()
      local q = asyncio.Queue()
      q:put_nowait("never done")
      local function mem() collectgarbage(); collectgarbage(); return collectgarbage("count") end
      local before = mem()
      for _ = 1, 5000 do
        local ok, err = asyncio.pcall(await, asyncio.wait_for(q:join(), 0.0001))
        assert(not ok and asyncio.TimeoutError:is(err))
      end
      -- each expired join kept a future (about 70 KiB per 1000) before
      assert.is_true(mem() - before < 64, ("%.0f KiB kept"):format(mem() - before))
      -- and a join still completes
      local joined = asyncio.create_task(function() await(q:join()); return "joined" end)
      await(asyncio.sleep(0))
      q:get_nowait(); q:task_done()
      assert.equal("joined", await(joined))
    end)
  end)

  it("as_completed with a time limit disarms its timer once every future is done", function()
    support.run(function()
      local loop = asyncio.get_running_loop()
      local _, timers0 = loop._core:pending()
      for _ = 1, 20 do
        local tasks = {}
        for i = 1, 3 do tasks[i] = asyncio.create_task(function() return i end) end
        for aw in asyncio.as_completed(tasks, {timeout = 3600}) do await(aw) end
      end
      local _, timers1 = loop._core:pending()
      assert.equal(timers0, timers1)
    end)
  end)

  it("cancel then uncancel before the task runs again still raises in the wait it left", function()
    local outcome = {}
    support.run(function()
      local q = asyncio.Queue()
      local lock = asyncio.Lock()
      await(lock:acquire())
      local function waiter(name, aw)
        return asyncio.create_task(function()
          local ok, e = pcall(await, aw)
          outcome[name] = ok and "returned" or (asyncio.CancelledError:is(e) and "cancelled" or tostring(e))
        end)
      end
      local tasks = {waiter("get", q:get()), waiter("sleep", asyncio.sleep(10, "slept")),
                     waiter("lock", lock:acquire()), waiter("event", asyncio.Event():wait())}
      await(asyncio.sleep(0))
      for _, t in ipairs(tasks) do t:cancel(); t:uncancel() end
      await(asyncio.gather(tasks))
      assert.is_false(q:is_shutdown())
      lock:release()
    end, {clock = "virtual"})
    assert.same({get = "cancelled", sleep = "cancelled", lock = "cancelled", event = "cancelled"},
      outcome)
  end)

  it("uncancel still takes back a cancellation that has not woken the task", function()
    local result = support.run(function()
      local t = asyncio.create_task(function() await(asyncio.sleep(0)); return "ran" end)
      t:cancel(); t:uncancel()  -- before it started: nothing woken, nothing left
      return await(t)
    end)
    assert.equal("ran", result)
  end)

  it("create_task with a name whose __tostring raises starts nothing", function()
    local ran, reports = false, {}
    local handler = function(_, ctx) reports[#reports + 1] = ctx.message end
    support.run(function()
      asyncio.get_running_loop():set_exception_handler(handler)
      local body = asyncio.async(function() ran = true end)
      local bad = setmetatable({}, {__tostring = function() error("tostring boom", 0) end})
      local n0 = 0
      for _ in pairs(asyncio.all_tasks()) do n0 = n0 + 1 end
      local ok, err = pcall(asyncio.create_task, body(), {name = bad})
      assert.is_false(ok)
      assert.equal("tostring boom", err)
      local n1 = 0
      for _ in pairs(asyncio.all_tasks()) do n1 = n1 + 1 end
      assert.equal(n0, n1)
      await(asyncio.sleep(0))
      collectgarbage(); collectgarbage()
      await(asyncio.sleep(0))
    end)
    assert.is_false(ran)
    -- the coroutine object it was given never ran: reported as never awaited
    assert.equal(1, #reports)
    assert.matches("was never awaited", reports[1])
  end)

  it("set_result with a done callback and no loop fails and changes nothing", function()
    local f = asyncio.Future()
    local called = false
    f:add_done_callback(function() called = true end)
    local ok, err = pcall(f.set_result, f, 42)
    assert.is_false(ok)
    assert.matches("set_result: the future has waiters or done callbacks but no open event loop", err)
    assert.is_false(f:done())
    support.run(function()
      f:set_result(42)
      await(asyncio.sleep(0))
    end)
    assert.is_true(called)
    assert.equal(42, f:result())
  end)

  it("a cancelled getter's item goes back even into a full queue: nothing is lost", function()
    support.run(function()
      local q = asyncio.Queue(1)
      local g = asyncio.create_task(function() return await(q:get()) end)
      await(asyncio.sleep(0))
      q:put_nowait("x")  -- handed to g
      q:put_nowait("y")  -- room again: the queue is full
      g:cancel()
      await(asyncio.sleep(0))
      assert.equal(2, q:qsize())  -- one over maxsize, as docs/api.md says
      assert.is_true(q:full())
      assert.equal("x", q:get_nowait())
      assert.equal("y", q:get_nowait())
    end)
  end)

  it("a future of a closed loop with a done callback: completing it is refused, nothing changes", function()
    local loop = asyncio.new_event_loop()
    local f = loop:create_future()
    f:add_done_callback(function() end)
    loop:close()
    for _, call in ipairs({function() f:set_result(1) end, function() f:set_exception("x") end,
                           function() f:cancel() end}) do
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("no open event loop to run them", err)
      assert.is_false(f:done())
    end
  end)

  it("wait_for refuses a limit that is not a number, also before any limit was seen", function()
    local loaded = package.loaded["asyncio.timeouts"]
    package.loaded["asyncio.timeouts"] = nil  -- a fresh module: nothing seen yet
    local fresh = require "asyncio.timeouts"
    package.loaded["asyncio.timeouts"] = loaded
    support.run(function()
      local q = asyncio.Queue()
      for _, bad in ipairs({false, "1", 0 / 0}) do
        assert.is_false(pcall(fresh.wait_for, q:get(), bad))
      end
    end)
  end)

  it("a file operation awaited a second time is refused (it ran again)", function()
    local path = os.tmpname()
    support.run(function()
      local f <close> = await(asyncio.open_file(path, "w"))
      local op = f:write("XY")
      await(op)
      local ok, err = pcall(await, op)
      assert.is_false(ok)
      assert.matches("await: file:write%(...%) was already awaited", err)
      await(f:close())
    end)
    local h = assert(io.open(path))
    local all = h:read("a")
    h:close()
    os.remove(path)
    assert.equal("XY", all)
  end)

  it("Condition.wait on a lock not held names the program's line", function()
    support.run(function()
      local cond = asyncio.Condition()
      local ok, err = pcall(await, cond:wait())
      assert.is_false(ok)
      assert.matches("^[^:]*review_waits_spec%.lua:%d+: Condition%.wait: cannot wait on an " ..
        "un%-acquired lock", err)
    end)
  end)
end)
