-- Issue 9: errors never pass for success. A raised nil is a failure
-- everywhere, zero and negative time limits fire, as_completed takes
-- coroutine objects, gather keeps the cancel message, NaN delays are refused.
local asyncio = require "asyncio"
local support = require "spec.support"
local async, await = asyncio.async, asyncio.await
local ticks = support.ticks

local function raise_nil() error(nil) end
local function raise_nothing() error() end
local fails_nil = async(function() await(asyncio.sleep(0)); error(nil) end)

-- pcall(fn, ...) packed: {n = count, ok, values...}
local function outcome(fn, ...)
  return table.pack(pcall(fn, ...))
end

describe("a task that raises nil", function()
  after_each(support.assert_clean)

  it("makes asyncio.run raise nil", function()
    local r = outcome(asyncio.run, raise_nil)
    assert.same({n = 2, false, nil}, r)
    r = outcome(asyncio.run, raise_nothing)
    assert.same({n = 2, false, nil}, r)
  end)

  it("makes await of the task raise nil, and the task reads as failed", function()
    local r = support.run(function()
      local t = asyncio.create_task(raise_nil)
      local got = outcome(await, t)
      return {got = got, failed = t:failed(), done = t:done(),
              cancelled = t:cancelled(), exc = t:exception()}
    end)
    assert.same({n = 2, false, nil}, r.got)
    assert.is_true(r.failed)
    assert.is_true(r.done)
    assert.is_false(r.cancelled)
    assert.is_nil(r.exc)
  end)

  it("makes result() raise nil, and failed() false for a success", function()
    local r = support.run(function()
      local bad = asyncio.create_task(raise_nil)
      local good = asyncio.create_task(function() return nil end)
      await(asyncio.wait({bad, good}))
      return {bad = outcome(bad.result, bad), good = outcome(good.result, good),
              good_failed = good:failed()}
    end)
    assert.same({n = 2, false, nil}, r.bad)
    assert.same({n = 2, true, nil}, r.good)
    assert.is_false(r.good_failed)
  end)

  it("lets a done callback tell it from a success", function()
    local seen = support.run(function()
      local seen = {}
      local t1 = asyncio.create_task(raise_nil)
      local t2 = asyncio.create_task(function() end)
      t1:add_done_callback(function(f) seen[1] = f:failed() end)
      t2:add_done_callback(function(f) seen[2] = f:failed() end)
      await(asyncio.wait({t1, t2}))
      ticks(1)
      t1:exception()  -- retrieved: no report when it is collected
      return seen
    end)
    assert.same({true, false}, seen)
  end)

  it("is reported as never retrieved when nobody looks", function()
    local got = {}
    local loop = asyncio.new_event_loop()
    loop:set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
    loop:run_until_complete(async(function()
      asyncio.create_task(raise_nil)
      ticks(2)
    end)())
    loop:close()
    collectgarbage(); collectgarbage()
    assert.equal(1, #got)
    assert.equal("Task exception was never retrieved", got[1].message)
    assert.is_nil(got[1].exception)
  end)

  it("is a failure to Future:set_exception-free futures too (plain futures cannot hold nil)", function()
    support.run(function()
      local f = asyncio.Future()
      assert.has_error(function() f:set_exception(nil) end,
        "bad argument #1 to 'set_exception' (error value expected, got nil)")
      f:set_result(1)
      assert.is_false(f:failed())
    end)
  end)

  it("fails a gather without return_exceptions with nil", function()
    local r = support.run(function()
      return outcome(await, asyncio.gather(asyncio.sleep(0, 1), fails_nil()))
    end)
    assert.same({n = 2, false, nil}, r)
  end)

  it("puts a failure marker in a gather with return_exceptions", function()
    local r = support.run(function()
      local res = await(asyncio.gather(asyncio.sleep(0, 1), fails_nil(), {return_exceptions = true}))
      return {res = res, failed = res.failed}
    end)
    assert.equal(1, r.res[1])
    assert.is_nil(r.res[2])
    assert.equal(2, r.res.n)
    assert.same({[2] = true}, r.failed)
  end)

  it("counts as an exception for wait FIRST_EXCEPTION", function()
    local r = support.run(function()
      local bad = asyncio.create_task(fails_nil)
      local slow = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local done, pending = await(asyncio.wait({bad, slow}, {return_when = "FIRST_EXCEPTION"}))
      slow:cancel()
      local _ = pcall(await, slow)
      local failed = bad:failed()
      bad:exception()  -- retrieved: no report when it is collected
      return {done = done[bad] == true, pending = pending[slow] == true, failed = failed}
    end)
    assert.same({done = true, pending = true, failed = true}, r)
  end)

  it("is raised by as_completed", function()
    local r = support.run(function()
      local t = asyncio.create_task(fails_nil)
      local got
      for aw in asyncio.as_completed({t}) do got = outcome(await, aw) end
      return got
    end)
    assert.same({n = 2, false, nil}, r)
  end)

  it("is raised by wait_for", function()
    local r = support.run(function()
      return outcome(await, asyncio.wait_for(fails_nil(), 5))
    end)
    assert.same({n = 2, false, nil}, r)
  end)

  it("is raised by shield", function()
    local r = support.run(function()
      local s = asyncio.shield(asyncio.create_task(fails_nil))
      local got = outcome(await, s)
      return {got = got, failed = s:failed()}
    end)
    assert.same({n = 2, false, nil}, r.got)
    assert.is_true(r.failed)
  end)

  it("fails a task group with an ExceptionGroup that counts it", function()
    local r = support.run(function()
      local ok, err = pcall(await, asyncio.task_group(function(tg)
        tg:create_task(fails_nil)
        tg:create_task(function() await(asyncio.sleep(10)) end)
      end))
      return {ok = ok, is_group = asyncio.ExceptionGroup:is(err), n = err and err.errors.n,
              first = err and err.errors[1]}
    end)
    assert.same({ok = false, is_group = true, n = 1}, r)
  end)
end)

describe("as_completed with coroutine objects", function()
  after_each(support.assert_clean)

  it("wraps them in tasks, in completion order", function()
    local r = support.run(function()
      local slow = async(function() await(asyncio.sleep(0.02)); return "slow" end)
      local fast = async(function() await(asyncio.sleep(0)); return "fast" end)
      local got = {}
      for aw in asyncio.as_completed({slow(), fast()}) do got[#got + 1] = await(aw) end
      return got
    end)
    assert.same({"fast", "slow"}, r)
  end)

  it("still refuses a coroutine object already awaited", function()
    support.run(function()
      local c = async(function() end)()
      await(c)
      assert.has_error(function() asyncio.as_completed({c}) end,
        "as_completed: cannot reuse already awaited coroutine")
    end)
  end)
end)

describe("zero and negative time limits", function()
  after_each(support.assert_clean)

  local function times_out(fn)
    return support.run(function()
      local ok, err = pcall(await, fn())
      return not ok and asyncio.TimeoutError:is(err)
    end)
  end

  it("timeout(0) fires around sleep(0)", function()
    assert.is_true(times_out(function()
      return asyncio.timeout(0, function() await(asyncio.sleep(0)) end)
    end))
  end)

  it("a negative timeout fires around sleep(0)", function()
    assert.is_true(times_out(function()
      return asyncio.timeout(-1, function() await(asyncio.sleep(0)) end)
    end))
  end)

  it("wait_for with 0 or less times out a coroutine that suspends", function()
    local step = async(function() await(asyncio.sleep(0)); return 1 end)
    assert.is_true(times_out(function() return asyncio.wait_for(step(), 0) end))
    assert.is_true(times_out(function() return asyncio.wait_for(step(), -5) end))
    assert.is_true(times_out(function() return asyncio.wait_for(asyncio.sleep(0), 0) end))
  end)

  it("timeout(0) leaves a body that never suspends alone (as CPython)", function()
    assert.equal(7, support.run(function()
      return await(asyncio.timeout(0, function() return 7 end))
    end))
  end)

  it("the task goes on after the TimeoutError", function()
    assert.equal("after", support.run(function()
      pcall(await, asyncio.timeout(0, function() await(asyncio.sleep(0)) end))
      await(asyncio.sleep(0))
      return "after"
    end))
  end)
end)

describe("gather with return_exceptions cancelled with a message", function()
  after_each(support.assert_clean)

  it("raises CancelledError carrying the message in the awaiting task", function()
    local r = support.run(function()
      local t = asyncio.create_task(function()
        return await(asyncio.gather(asyncio.sleep(10), asyncio.sleep(10), {return_exceptions = true}))
      end)
      ticks(2)
      t:cancel("my message")
      local ok, err = pcall(await, t)
      return {ok = ok, cancelled = asyncio.CancelledError:is(err), message = err and err.message}
    end)
    assert.same({ok = false, cancelled = true, message = "my message"}, r)
  end)

  it("also without return_exceptions", function()
    local r = support.run(function()
      local t = asyncio.create_task(function()
        return await(asyncio.gather(asyncio.sleep(10), asyncio.sleep(10)))
      end)
      ticks(2)
      t:cancel("other message")
      local ok, err = pcall(await, t)
      return {ok = ok, message = err and err.message}
    end)
    assert.same({ok = false, message = "other message"}, r)
  end)
end)

describe("NaN delays", function()
  after_each(support.assert_clean)
  local nan = 0 / 0

  it("are refused by every function that takes a delay", function()
    assert.has_error(function() asyncio.sleep(nan) end, "bad argument #1 to 'sleep' (delay is NaN)")
    assert.has_error(function() asyncio.timeout(nan, print) end,
      "bad argument #1 to 'timeout' (delay is NaN)")
    assert.has_error(function() asyncio.wait_for(asyncio.Future(), nan) end,
      "bad argument #2 to 'wait_for' (delay is NaN)")
    local loop = asyncio.new_event_loop()
    assert.has_error(function() loop:call_later(nan, print) end,
      "bad argument #1 to 'call_later' (delay is NaN)")
    assert.has_error(function() loop:call_at(nan, print) end,
      "bad argument #1 to 'call_at' (time is NaN)")
    loop:close()
    support.run(function()
      local t = asyncio.create_task(function() end)
      assert.has_error(function() asyncio.wait({t}, {timeout = nan}) end,
        "bad argument #2 to 'wait' (delay is NaN)")
      assert.has_error(function() asyncio.as_completed({t}, {timeout = nan}) end,
        "bad argument #2 to 'as_completed' (delay is NaN)")
      await(t)
    end)
  end)

  it("math.huge still means never", function()
    assert.equal("done", support.run(function()
      return await(asyncio.wait_for(asyncio.sleep(0, "done"), math.huge))
    end))
    support.run(function()
      local t = asyncio.create_task(function() await(asyncio.sleep(math.huge)) end)
      ticks(2)
      assert.is_false(t:done())
      t:cancel()
      pcall(await, t)
    end)
  end)
end)
