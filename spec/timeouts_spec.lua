local asyncio = require "asyncio"
local support = require "spec.support"
local async, await = asyncio.async, asyncio.await
local ticks = support.ticks

local function raises(cls, fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok and cls:is(err), err
end

describe("wait_for", function()
  after_each(support.assert_clean)

  it("returns every result when in time", function()
    assert.same({1, nil, 3}, {support.run(function()
      return await(asyncio.wait_for(asyncio.sleep(0, 1, nil, 3), 5))
    end)})
  end)

  it("cancels the awaitable and raises TimeoutError when time runs out", function()
    local r = support.run(function()
      local t = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local timed_out = raises(asyncio.TimeoutError, await, asyncio.wait_for(t, 0.001))
      return {timed_out, t:cancelled()}
    end)
    assert.same({true, true}, r)
  end)

  it("takes an awaitable whose metatable is hidden behind __metatable", function()
    -- wait_for looked its __now up with rawget(getmetatable(aw)): a string here
    local aw = setmetatable({}, {__metatable = "private", __await = function() return 7 end})
    assert.equal(7, support.run(function() return await(asyncio.wait_for(aw, 1)) end))
  end)

  it("has no limit with a nil timeout", function()
    assert.equal("v", support.run(function() return await(asyncio.wait_for(asyncio.sleep(0.001, "v"))) end))
  end)

  it("with a timeout of 0 takes a done result and times out a pending one", function()
    local r = support.run(function()
      local f = asyncio.Future()
      f:set_result("ready")
      local got = await(asyncio.wait_for(f, 0))
      local t = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      return {got, (raises(asyncio.TimeoutError, await, asyncio.wait_for(t, 0))), t:cancelled()}
    end)
    assert.same({"ready", true, true}, r)
  end)

  it("passes errors through unchanged", function()
    local r = support.run(function()
      local bad = async(function() error({code = 9}) end)
      local ok, err = pcall(await, asyncio.wait_for(bad(), 1))
      return not ok and err.code
    end)
    assert.equal(9, r)
  end)

  it("lets a cancellation from outside through as CancelledError", function()
    local r = support.run(function()
      local t = asyncio.create_task(function() await(asyncio.wait_for(asyncio.sleep(10), 5)) end)
      ticks(2)
      t:cancel()
      return (raises(asyncio.CancelledError, await, t))
    end)
    assert.is_true(r)
  end)

  it("raises TimeoutError when the inner future finishes at the moment of the timeout", function()
    -- The waiter arms both timers in one step and the blocking callback
    -- runs in the same batch, so both deadlines have passed before the loop
    -- looks at its timers again, however slow the step (GC stress): they
    -- fire in one batch, the inner result first, then the deadline, before
    -- the waiter resumes. As in CPython 3.12+, the time limit wins.
    local r = support.run(function()
      local loop = asyncio.get_running_loop()
      local inner = asyncio.Future()
      local waiter = asyncio.create_task(function()
        loop:call_later(0.001, function() inner:set_result("late") end)
        return await(asyncio.wait_for(inner, 0.002))
      end)
      loop:call_soon(function()  -- block the loop past both deadlines
        local t = asyncio.monotonic() + 0.01
        while asyncio.monotonic() < t do end
      end)
      local timed_out = raises(asyncio.TimeoutError, await, waiter)
      return {timed_out, inner:result()}
    end)
    assert.same({true, "late"}, r)
  end)

  it("checks its arguments", function()
    assert.has_error(function() asyncio.wait_for(42, 1) end,
      "bad argument #1 to 'wait_for' (awaitable expected, got number)")
    assert.has_error(function() asyncio.wait_for(asyncio.sleep(0), "1") end,
      "bad argument #2 to 'wait_for' (number expected, got string)")
  end)
end)

describe("timeout", function()
  after_each(support.assert_clean)

  it("runs fn in the current task and returns its results", function()
    local r = {support.run(function()
      local me = asyncio.current_task()
      return await(asyncio.timeout(1, function(a) return asyncio.current_task() == me, a end, "x"))
    end)}
    assert.same({true, "x"}, r)
  end)

  it("raises TimeoutError at its boundary", function()
    local r = support.run(function()
      local reached = false
      local ok, err = pcall(await, asyncio.timeout(0.001, function()
        await(asyncio.sleep(10))
        reached = true
      end))
      return {ok, asyncio.TimeoutError:is(err), reached, asyncio.current_task():cancelling()}
    end)
    assert.same({false, true, false, 0}, r)
  end)

  it("nests: the inner one that expires raises", function()
    local r = support.run(function()
      return await(asyncio.timeout(5, function()
        local ok, err = pcall(await, asyncio.timeout(0.001, function() await(asyncio.sleep(10)) end))
        return not ok and asyncio.TimeoutError:is(err) and "inner expired"
      end))
    end)
    assert.equal("inner expired", r)
  end)

  it("nests: an outer expiry is not swallowed by an inner handler", function()
    local r = support.run(function()
      local inner_saw
      local ok, err = pcall(await, asyncio.timeout(0.001, function()
        local ok2, err2 = pcall(await, asyncio.timeout(5, function() await(asyncio.sleep(10)) end))
        inner_saw = not ok2 and err2.name
        error(err2, 0)  -- a handler that re-raises what it caught
      end))
      return {ok, asyncio.TimeoutError:is(err), inner_saw}
    end)
    assert.same({false, true, "CancelledError"}, r)
  end)

  it("lets a cancellation from outside through as CancelledError", function()
    local r = support.run(function()
      local t = asyncio.create_task(function()
        await(asyncio.timeout(5, function() await(asyncio.sleep(10)) end))
      end)
      ticks(2)
      t:cancel()
      return (raises(asyncio.CancelledError, await, t))
    end)
    assert.is_true(r)
  end)

  it("has no limit with a nil delay and checks its arguments", function()
    assert.equal(3, support.run(function() return await(asyncio.timeout(nil, function() return 3 end)) end))
    assert.has_error(function() asyncio.timeout(1, 2) end,
      "bad argument #2 to 'timeout' (function expected, got number)")
    assert.has_error(function() asyncio.timeout(0/0, print) end,
      "bad argument #1 to 'timeout' (delay is NaN)")
  end)
end)

describe("wait", function()
  after_each(support.assert_clean)

  local function sizes(done, pending)
    local d, p = 0, 0
    for _ in pairs(done) do d = d + 1 end
    for _ in pairs(pending) do p = p + 1 end
    return d, p
  end

  it("waits for all by default and gives done, pending sets", function()
    local r = support.run(function()
      local a = asyncio.create_task(function() await(asyncio.sleep(0.001)) end)
      local b = asyncio.create_task(function() end)
      local done, pending = await(asyncio.wait({a, b}))
      return {done[a], done[b], next(pending)}
    end)
    assert.same({true, true}, r)
  end)

  it("returns at the first completion with FIRST_COMPLETED, cancelling nothing", function()
    local r = support.run(function()
      local fast = asyncio.create_task(function() end)
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local done, pending = await(asyncio.wait({fast, slow}, {return_when = asyncio.FIRST_COMPLETED}))
      local res = {done[fast], pending[slow], slow:cancelled()}
      slow:cancel()
      return res
    end)
    assert.same({true, true, false}, r)
  end)

  it("returns at the first error with FIRST_EXCEPTION", function()
    local r = support.run(function()
      local bad = asyncio.create_task(function() await(asyncio.sleep(0)); error("x") end)
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local done, pending = await(asyncio.wait({bad, slow}, {return_when = "FIRST_EXCEPTION"}))
      slow:cancel()
      pcall(await, bad)
      return {done[bad], pending[slow]}
    end)
    assert.same({true, true}, r)
  end)

  it("gives up at the timeout without cancelling", function()
    local r = support.run(function()
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local done, pending = await(asyncio.wait({slow}, {timeout = 0.001}))
      local d, p = sizes(done, pending)
      local res = {d, p, slow:cancelled()}
      slow:cancel()
      return res
    end)
    assert.same({0, 1, false}, r)
  end)

  it("can itself be cancelled, leaving the tasks alone", function()
    local r = support.run(function()
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local w = asyncio.create_task(function() return await(asyncio.wait({slow})) end)
      ticks(2)
      w:cancel()
      local cancelled = raises(asyncio.CancelledError, await, w)
      local res = {cancelled, slow:done()}
      slow:cancel()
      return res
    end)
    assert.same({true, false}, r)
  end)

  it("checks its arguments", function()
    local ok, err = pcall(asyncio.run, function()
      local c = asyncio.async(function() end)()
      local _, err2 = pcall(asyncio.wait, {c})
      await(c)  -- refused by wait: awaited here, not reported as never awaited
      error(err2, 0)
    end)
    assert.is_false(ok)
    assert.matches("coroutine objects are not accepted", err)
    ok, err = pcall(asyncio.run, function()
      await(asyncio.wait({asyncio.create_task(function() end)}, {return_when = "SOMETIMES"}))
    end)
    assert.is_false(ok)
    assert.matches("return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED", err)
    ok, err = pcall(asyncio.run, function() await(asyncio.wait({})) end)
    assert.is_false(ok)
    assert.matches("list of futures is empty", err)
    assert.has_error(function() asyncio.wait(42) end,
      "bad argument #1 to 'wait' (list of futures expected, got number)")
  end)
end)

describe("as_completed", function()
  after_each(support.assert_clean)

  it("gives results in completion order", function()
    local order = support.run(function()
      -- the timers are armed in this one step, so a slow step (GC stress)
      -- cannot reorder their deadlines
      local loop = asyncio.get_running_loop()
      local mk = function(d, v)
        local f = asyncio.Future()
        loop:call_later(d, function() f:set_result(v) end)
        return asyncio.create_task(function() return await(f) end)
      end
      local out = {}
      for aw in asyncio.as_completed({mk(0.02, "slow"), mk(0, "fast"), mk(0.01, "mid")}) do
        out[#out + 1] = await(aw)
      end
      return out
    end)
    assert.same({"fast", "mid", "slow"}, order)
  end)

  it("raises an awaitable's error at its turn", function()
    local r = support.run(function()
      local out = {}
      local bad = asyncio.create_task(function() error("bad", 0) end)
      local good = asyncio.create_task(function() await(asyncio.sleep(0.001)) return "good" end)
      for aw in asyncio.as_completed({good, bad}) do
        local ok, v = pcall(await, aw)
        out[#out + 1] = ok and v or ("error " .. v)
      end
      return out
    end)
    assert.same({"error bad", "good"}, r)
  end)

  it("raises TimeoutError for what is not done in time", function()
    local r = support.run(function()
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local out = {}
      for aw in asyncio.as_completed({slow}, {timeout = 0.001}) do
        out[#out + 1] = (raises(asyncio.TimeoutError, await, aw))
      end
      slow:cancel()
      return out
    end)
    assert.same({true}, r)
  end)

  it("lets the task awaiting it be cancelled, leaving the futures alone", function()
    local r = support.run(function()
      local f = asyncio.Future()
      local t = asyncio.create_task(function()
        for aw in asyncio.as_completed({f}) do await(aw) end
      end)
      ticks(2)
      t:cancel()
      local cancelled = raises(asyncio.CancelledError, await, t)
      local still_pending = not f:done()
      f:set_result("later")  -- nobody is listening any more: nothing breaks
      ticks(1)
      return {cancelled, still_pending}
    end)
    assert.same({true, true}, r)
  end)
end)

describe("shield", function()
  after_each(support.assert_clean)

  it("keeps the inner task running when the outer is cancelled", function()
    local r = support.run(function()
      local inner = asyncio.create_task(function() await(asyncio.sleep(0.001)) return "inner done" end)
      local waiter = asyncio.create_task(function() return await(asyncio.shield(inner)) end)
      ticks(1)
      waiter:cancel()
      local cancelled = raises(asyncio.CancelledError, await, waiter)
      return {cancelled, await(inner)}
    end)
    assert.same({true, "inner done"}, r)
  end)

  it("passes results and errors through", function()
    local r = support.run(function()
      local a = await(asyncio.shield(asyncio.async(function() return 1, 2 end)()))
      local ok, err = pcall(await, asyncio.shield(asyncio.create_task(function() error("e", 0) end)))
      return {a, ok, err}
    end)
    assert.same({1, false, "e"}, r)
  end)

  it("is cancelled itself when the inner task is cancelled", function()
    local r = support.run(function()
      local inner = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local waiter = asyncio.create_task(function() return await(asyncio.shield(inner)) end)
      ticks(1)
      inner:cancel()
      return {(raises(asyncio.CancelledError, await, waiter)), inner:cancelled()}
    end)
    assert.same({true, true}, r)
  end)

  it("checks its argument", function()
    local ok, err = pcall(asyncio.run, function() asyncio.shield("task") end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'shield' %(awaitable expected, got string%)", err)
  end)
end)
