local asyncio = require "asyncio"
local support = require "spec.support"
local async, await = asyncio.async, asyncio.await

describe("async and await", function()
  after_each(support.assert_clean)

  it("chain coroutine objects inside the current task", function()
    local inner = async(function(x)
      await(asyncio.sleep(0))
      return x + 1, "inner"
    end)
    local outer = async(function(x)
      local a, b = await(inner(x))
      return a * 10, b
    end)
    assert.same({30, "inner"}, {support.run(outer(2))})
  end)

  it("passes every argument, nils included, whatever the function's parameters", function()
    local got = {}
    local function keep(name) return function(...) got[name] = table.pack(...) end end
    local none = async(function() got.none = true end)
    local one = async(function(a) keep("one")(a) end)
    local three = async(function(a, b, c) keep("three")(a, b, c) end)
    local four = async(function(a, b, c, d) keep("four")(a, b, c, d) end)
    local var = async(function(...) keep("var")(...) end)
    local fixed_var = async(function(a, ...) keep("fixed_var")(a, ...) end)
    support.run(async(function()
      await(none(1, 2))
      await(one(nil, "dropped"))
      await(three(1, nil))
      local c = four(1, 2, 3, 4, 5)
      got.iscoroutine = asyncio.iscoroutine(c)
      await(c)
      await(var(nil, 2, nil))
      await(fixed_var(1, nil, nil))
      -- the same through a task and ensure_future
      await(asyncio.create_task(three("t", nil, 3)))
      await(asyncio.ensure_future(none()))
    end)())
    assert.is_true(got.none)
    assert.same({n = 1}, got.one)
    assert.same({"t", nil, 3, n = 3}, got.three)
    assert.same({1, 2, 3, 4, n = 4}, got.four)
    assert.same({nil, 2, nil, n = 3}, got.var)
    assert.same({1, nil, nil, n = 3}, got.fixed_var)
    assert.is_true(got.iscoroutine)
    assert.is_true(asyncio.iscoroutinefunction(three))
  end)

  it("runs a chain in the same task", function()
    local same = support.run(function()
      local me = asyncio.current_task()
      return await(async(function() return asyncio.current_task() == me end)())
    end)
    assert.is_true(same)
  end)

  it("refuses to await a coroutine object twice", function()
    local ok, err = pcall(asyncio.run, function()
      local c = async(function() end)()
      await(c)
      await(c)
    end)
    assert.is_false(ok)
    assert.matches("cannot reuse already awaited coroutine", err)
  end)

  it("awaits anything with __await, inside the awaiting task", function()
    local aw = setmetatable({}, {__await = function()
      await(asyncio.sleep(0))
      return "custom", asyncio.current_task() ~= nil
    end})
    assert.same({"custom", true}, {support.run(function() return await(aw) end)})
  end)

  it("keeps an error's value through await", function()
    local ok, err = pcall(asyncio.run, function()
      local t = asyncio.create_task(function() error({code = 7}) end)
      local ok2, e = pcall(await, t)
      assert(not ok2)
      return e.code
    end)
    assert.is_true(ok)
    assert.equal(7, err)
  end)

  it("raises clear errors on misuse", function()
    assert.has_error(function() await(asyncio.sleep(0)) end,
      "'await' called outside a running task")
    local ok, err = pcall(asyncio.run, function() await(42) end)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'await' (awaitable expected, got number)", err:gsub("^.-:%d+: ", ""))
    assert.has_error(function() async(1) end,
      "bad argument #1 to 'async' (function expected, got number)")
    local c = async(function() end)()
    assert.is_true(asyncio.iscoroutine(c))
    support.run(function() await(c) end)  -- awaited: not reported as never awaited
    assert.is_false(asyncio.iscoroutine(function() end))
  end)

  it("refuses await inside a coroutine the task made itself", function()
    local msg = support.run(function()
      local co = coroutine.wrap(function() await(asyncio.sleep(0)) end)
      local ok, err = pcall(co)
      assert(not ok)
      return err
    end)
    assert.matches("'await' called inside a coroutine that is not the task's own", msg)
  end)

  it("fails a task that yields with coroutine.yield, and the loop goes on", function()
    local r = support.run(function()
      local t = asyncio.create_task(function() coroutine.yield("raw") end)
      local ok, err = pcall(await, t)
      return not ok and err
    end)
    -- the message names the line that yielded (newcomer review)
    assert.matches("^spec/task_spec%.lua:%d+: task yielded outside 'await'", r)
  end)

  it("ignores a hand resume of a task's coroutine", function()
    local r = support.run(function()
      local co
      local t = asyncio.create_task(function()
        co = coroutine.running()
        return await(asyncio.sleep(0, "slept"))
      end)
      await(asyncio.sleep(0))
      local ok, v = coroutine.resume(co, "forged")
      assert(ok)
      assert(tostring(v):match("can only be resumed by its event loop"))
      return await(t)
    end)
    assert.equal("slept", r)
  end)
end)

describe("create_task", function()
  after_each(support.assert_clean)

  it("starts the task on the next iteration, not at once", function()
    local log = {}
    support.run(function()
      local t = asyncio.create_task(function() log[#log + 1] = "task" end)
      log[#log + 1] = "main"
      await(t)
    end)
    assert.same({"main", "task"}, log)
  end)

  it("takes a function with arguments", function()
    assert.equal(7, support.run(function()
      return await(asyncio.create_task(function(a, b) return a + b end, 3, 4))
    end))
  end)

  it("runs tasks concurrently", function()
    local log = {}
    support.run(function()
      local function worker(name)
        for i = 1, 3 do
          log[#log + 1] = name .. i
          await(asyncio.sleep(0))
        end
      end
      await(asyncio.gather(asyncio.create_task(worker, "a"), asyncio.create_task(worker, "b")))
    end)
    assert.same({"a1", "b1", "a2", "b2", "a3", "b3"}, log)
  end)

  it("needs a running loop", function()
    assert.has_error(function() asyncio.create_task(function() end) end,
      "'create_task' called with no running event loop")
    local ok, err = pcall(asyncio.run, function() asyncio.create_task(42) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'create_task' %(coroutine object or function expected, got number%)", err)
  end)

  it("names tasks", function()
    support.run(function()
      local t = asyncio.create_task(function() end)
      assert.matches("^Task%-", t:get_name())
      t:set_name("worker")
      assert.equal("worker", t:get_name())
      await(t)
    end)
  end)

  it("lists pending tasks in all_tasks and the running one in current_task", function()
    support.run(function()
      local me = asyncio.current_task()
      local t = asyncio.create_task(function() await(asyncio.sleep(0)) end)
      local all = asyncio.all_tasks()
      assert.is_true(all[me])
      assert.is_true(all[t])
      await(t)
      assert.is_nil(asyncio.all_tasks()[t])
    end)
    assert.is_nil(asyncio.current_task())
  end)

  it("keeps a traceback of where a task failed", function()
    local tb = support.run(function()
      local t = asyncio.create_task(function() error("deep trouble") end)
      pcall(await, t)
      return t:traceback()
    end)
    assert.matches("deep trouble", tb)
    assert.matches("stack traceback", tb)
  end)
end)

describe("Task:cancel", function()
  after_each(support.assert_clean)

  it("raises CancelledError where the task waits, with the message", function()
    local r = support.run(function()
      local t = asyncio.create_task(function()
        local ok, err = pcall(await, asyncio.sleep(10))
        return not ok and tostring(err)
      end)
      await(asyncio.sleep(0))
      t:cancel("stop now")
      return await(t)
    end)
    assert.equal("CancelledError: stop now", r)
  end)

  it("lets the task catch the cancellation and go on", function()
    local r = support.run(function()
      local t = asyncio.create_task(function()
        pcall(await, asyncio.sleep(10))
        await(asyncio.sleep(0))
        return "went on"
      end)
      await(asyncio.sleep(0))
      t:cancel()
      return await(t)
    end)
    assert.equal("went on", r)
  end)

  it("cancels a task before it starts: the body never runs", function()
    local ran = false
    local cancelled = support.run(function()
      local t = asyncio.create_task(function() ran = true end)
      t:cancel()
      pcall(await, t)
      return t:cancelled()
    end)
    assert.is_true(cancelled)
    assert.is_false(ran)
  end)

  it("cancels the task a task is awaiting", function()
    local r = support.run(function()
      local inner = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local outer = asyncio.create_task(function() await(inner) end)
      await(asyncio.sleep(0))
      await(asyncio.sleep(0))
      outer:cancel()
      pcall(await, outer)
      return {inner:cancelled(), outer:cancelled()}
    end)
    assert.same({true, true}, r)
  end)

  it("makes a cancelled task's await raise CancelledError", function()
    local r = support.run(function()
      local t = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      await(asyncio.sleep(0))
      t:cancel()
      local ok, err = pcall(await, t)
      return not ok and asyncio.CancelledError:is(err)
    end)
    assert.is_true(r)
  end)

  it("ends tasks that await each other in a cycle (regress: issue 4, stack overflow)", function()
    local r = support.run(function()
      local a, b
      a = asyncio.create_task(function() await(asyncio.sleep(0)); return await(b) end)
      b = asyncio.create_task(function() await(asyncio.sleep(0)); return await(a) end)
      await(asyncio.sleep(0))
      await(asyncio.sleep(0))
      assert.is_true(a:cancel())
      local ra = {pcall(await, a)}
      local rb = {pcall(await, b)}
      return {ra[1], asyncio.CancelledError:is(ra[2]), rb[1], asyncio.CancelledError:is(rb[2])}
    end)
    assert.same({false, true, false, true}, r)
  end)

  it("returns false for a finished task", function()
    support.run(function()
      local t = asyncio.create_task(function() return 1 end)
      await(t)
      assert.is_false(t:cancel())
    end)
  end)
  -- Task:cancel() on the running task (itself, a finalizer, a task group's
  -- exit inside it) can wake nobody: the CancelledError must come at its
  -- next wait, whatever that waits on (CPython's Task.__step), not after
  -- it ends by itself, or never (found by the random programs).
  describe("on the running task, arrives at its next wait", function()
    -- Run 'wait' in a task that cancelled itself first; the outcome of that
    -- wait, within 'limit' seconds of a real clock.
    local function self_cancelled(wait, limit)
      return support.run_within(limit or 5, function()
        local t = asyncio.create_task(function()
          assert.is_true(asyncio.current_task():cancel("by itself"))
          local ok, err = pcall(wait)
          return ok, not ok and tostring(err)
        end)
        return await(t)
      end)
    end

    it("a sleep", function()
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function() await(asyncio.sleep(60)) end)})
    end)

    it("sleep(0)", function()
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function() await(asyncio.sleep(0)) end)})
    end)

    it("an empty queue's get, and a full queue's put", function()
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function() await(asyncio.Queue():get()) end)})
      local q = asyncio.Queue(1)
      q:put_nowait("a")
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function() await(q:put("b")) end)})
      assert.equal(1, q:qsize())
    end)

    it("a get that needs no wait returns its item (no suspension, as in CPython)", function()
      local q = asyncio.Queue()
      q:put_nowait("x")
      local r = support.run(function()
        local t = asyncio.create_task(function()
          asyncio.current_task():cancel()
          local item = await(q:get())
          local ok = pcall(await, asyncio.sleep(60))
          return item, ok
        end)
        return {await(t)}
      end)
      assert.same({"x", false}, r)
    end)

    it("an Event nobody sets, and a plain future", function()
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function() await(asyncio.Event():wait()) end)})
      local fut
      assert.same({false, "CancelledError: by itself"},
        {self_cancelled(function()
          fut = asyncio.get_running_loop():create_future()
          await(fut)
        end)})
      assert.is_true(fut:cancelled())
    end)

    it("a task it awaits is cancelled and may finish its own way", function()
      local r = support.run_within(5, function()
        local inner = asyncio.create_task(function()
          local ok = pcall(await, asyncio.sleep(60))
          return ok and "slept" or "caught the cancellation"
        end)
        local outer = asyncio.create_task(function()
          asyncio.current_task():cancel()
          return await(inner)
        end)
        return {await(outer), inner:cancelling()}
      end)
      assert.same({"caught the cancellation", 1}, r)
    end)

    it("a read on a stream and a child process's exit", function()
      local r = support.run_within(10, function()
        local p = await(asyncio.create_subprocess_exec("sleep", "60", {stdout = "pipe"}))
        local function cancelled(wait)
          return await(asyncio.create_task(function()
            asyncio.current_task():cancel("by itself")
            local ok, err = pcall(wait)
            return not ok and tostring(err)
          end))
        end
        local got = {cancelled(function() await(p.stdout:read(10)) end),
                     cancelled(function() await(p:wait()) end)}
        p:kill()
        got[3] = await(p:wait())
        return got
      end)
      assert.same({"CancelledError: by itself", "CancelledError: by itself", -9}, r)
    end)

    it("the cancellation a task group passes on to its task", function()
      -- the group ends with an error while its task is cancelled from
      -- outside: it asks again for that cancellation, on the running task
      local r = support.run_within(5, function()
        local t = asyncio.create_task(function()
          local _, eg = pcall(await, asyncio.task_group(function(tg)
            tg:create_task(function()
              pcall(await, asyncio.sleep(60))  -- cancelled by the group's abort...
              error("boom")                    -- ...and fails
            end)
            await(asyncio.sleep(60))
          end))
          assert(asyncio.ExceptionGroup:is(eg), tostring(eg))
          await(asyncio.Queue():get())  -- the cancellation asked again arrives here
          return "not cancelled"
        end)
        await(asyncio.sleep(0.01))
        t:cancel()
        local ok, err = pcall(await, t)
        return {ok, asyncio.CancelledError:is(err)}
      end)
      assert.same({false, true}, r)
    end)
  end)
end)
