local asyncio = require "asyncio"
local support = require "spec.support"
local async, await = asyncio.async, asyncio.await

local part = async(function(n)
  await(asyncio.sleep(0.001 * (4 - n)))
  return "r" .. n, "ignored"
end)

describe("gather", function()
  after_each(support.assert_clean)

  it("lists first results in argument order, with n", function()
    local r = support.run(function()
      return await(asyncio.gather(part(1), part(2), part(3)))
    end)
    assert.same({"r1", "r2", "r3", n = 3}, r)
  end)

  it("keeps nil results in place", function()
    local r = support.run(function()
      return await(asyncio.gather(async(function() return nil end)(), part(2)))
    end)
    assert.equal(2, r.n)
    assert.is_nil(r[1])
    assert.equal("r2", r[2])
  end)

  it("takes tasks, futures and coroutine objects together", function()
    local r = support.run(function()
      local f = asyncio.Future()
      asyncio.get_running_loop():call_soon(function() f:set_result("f") end)
      local t = asyncio.create_task(function() return "t" end)
      return await(asyncio.gather(t, f, part(3)))
    end)
    assert.same({"t", "f", "r3", n = 3}, r)
  end)

  it("of nothing is an empty list", function()
    assert.same({n = 0}, support.run(function() return await(asyncio.gather()) end))
  end)

  it("raises the first error while the others go on", function()
    local done2 = false
    local err = support.run(function()
      local bad = async(function() await(asyncio.sleep(0)) error("bad child", 0) end)
      local slow = asyncio.create_task(function()
        await(asyncio.sleep(0.01))
        done2 = true
      end)
      local ok, e = pcall(await, asyncio.gather(bad(), slow))
      assert(not ok)
      await(slow)
      return e
    end)
    assert.equal("bad child", err)
    assert.is_true(done2)
  end)

  it("puts errors in the list with return_exceptions", function()
    local r = support.run(function()
      local bad = async(function() error({code = 1}) end)
      return await(asyncio.gather(part(1), bad(), {return_exceptions = true}))
    end)
    assert.equal("r1", r[1])
    assert.equal(1, r[2].code)
    assert.equal(2, r.n)
  end)

  it("cancels its children when cancelled", function()
    local r = support.run(function()
      local a = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local b = asyncio.create_task(function() await(asyncio.sleep(10)) end)
      local g = asyncio.gather(a, b)
      await(asyncio.sleep(0))
      g:cancel()
      local ok, err = pcall(await, g)
      return {ok, asyncio.CancelledError:is(err), a:cancelled(), b:cancelled()}
    end)
    assert.same({false, true, true, true}, r)
  end)

  it("a task cancelled again after its gather failed does not leave the gather's error unretrieved", function()
    -- the first cancel goes to the gather; the gather ends (CancelledError)
    -- and wakes the task; a second cancel lands before the task runs. The
    -- task gets CancelledError and the gather's outcome counts as retrieved
    -- (CPython's wake-up reads it first), so nothing is reported.
    local loop = asyncio.new_event_loop()
    local got = support.capture(loop)
    local state = loop:run_until_complete(loop:create_task(function()
      local g = asyncio.create_task(function()
        await(asyncio.gather(asyncio.create_task(asyncio.sleep, 5), asyncio.create_task(asyncio.sleep, 7)))
      end)
      await(asyncio.sleep(0))
      g:cancel()
      await(asyncio.sleep(0))  -- the children end; the gather fails and wakes g
      g:cancel()               -- before g runs
      local ok, err = pcall(await, g)
      return {ok, asyncio.CancelledError:is(err)}
    end))
    collectgarbage()
    collectgarbage()
    loop:close()
    assert.same({false, true}, state)
    assert.same({}, got)
  end)

  it("runs its children concurrently", function()
    local log = {}
    support.run(function()
      local s = async(function(i)
        log[#log + 1] = "start" .. i
        await(asyncio.sleep(0.001))
        log[#log + 1] = "end" .. i
      end)
      await(asyncio.gather(s(1), s(2), s(3)))
    end)
    assert.same({"start1", "start2", "start3", "end1", "end2", "end3"}, log)
  end)

  it("checks its arguments", function()
    local ok, err = pcall(asyncio.run, function() asyncio.gather(part(1), 42) end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'gather' %(awaitable expected, got number%)", err)
  end)
end)
