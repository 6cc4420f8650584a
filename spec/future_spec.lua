local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("Future", function()
  after_each(support.assert_clean)

  it("gives every result of set_result to await, nils included", function()
    local r = {support.run(function()
      local f = asyncio.Future()
      asyncio.get_running_loop():call_soon(function() f:set_result(1, nil, 3, nil) end)
      return select("#", await(f)), await(f)
    end)}
    assert.same({4, 1, nil, 3, nil}, r)
  end)

  it("raises the very error value set with set_exception", function()
    local obj = setmetatable({}, {__tostring = function() return "boom" end})
    local err = support.run(function()
      local f = asyncio.Future()
      f:set_exception(obj)
      local ok, e = pcall(await, f)
      assert(not ok)
      return e
    end)
    assert.equal(obj, err)
  end)

  it("reports result() before completion as InvalidStateError", function()
    local f = asyncio.Future()
    local ok, err = pcall(f.result, f)
    assert.is_false(ok)
    assert.is_true(asyncio.InvalidStateError:is(err))
    assert.is_false(f:done())
  end)

  it("refuses to be completed twice", function()
    local f = asyncio.Future()
    f:set_result(1)
    local ok, err = pcall(f.set_result, f, 2)
    assert.is_false(ok)
    assert.is_true(asyncio.InvalidStateError:is(err))
    assert.equal(1, f:result())
  end)

  it("cancels with a message that reaches the CancelledError", function()
    local f = asyncio.Future()
    assert.is_true(f:cancel("enough"))
    assert.is_false(f:cancel())
    assert.is_true(f:cancelled())
    local ok, err = pcall(f.result, f)
    assert.is_false(ok)
    assert.equal("CancelledError: enough", tostring(err))
  end)

  it("calls done callbacks on the loop, in order, with the future", function()
    local seen = {}
    support.run(function()
      local f = asyncio.Future()
      f:add_done_callback(function(x) seen[#seen + 1] = {"a", x == f} end)
      f:add_done_callback(function(x) seen[#seen + 1] = {"b", x == f} end)
      f:set_result(true)
      assert.same({}, seen)  -- not synchronously
      await(asyncio.sleep(0))
    end)
    assert.same({{"a", true}, {"b", true}}, seen)
  end)

  it("calls a callback added after completion soon", function()
    local called = false
    support.run(function()
      local f = asyncio.Future()
      f:set_result(1)
      f:add_done_callback(function() called = true end)
      await(asyncio.sleep(0))
    end)
    assert.is_true(called)
  end)

  it("removes a done callback", function()
    local called = false
    support.run(function()
      local f = asyncio.Future()
      local cb = function() called = true end
      f:add_done_callback(cb)
      assert.equal(1, f:remove_done_callback(cb))
      f:set_result(1)
      await(asyncio.sleep(0))
    end)
    assert.is_false(called)
  end)

  it("reports an error in a done callback and keeps the loop going", function()
    local got, after
    support.run(function()
      got = support.capture(asyncio.get_running_loop())
      local f = asyncio.Future()
      f:add_done_callback(function() error("callback broke", 0) end)
      f:set_result(1)
      await(asyncio.sleep(0))
      after = true
    end)
    assert.is_true(after)
    assert.equal(1, #got)
    assert.equal("callback broke", got[1].exception)
    assert.equal("Exception in callback", got[1].message)
  end)

  it("reports an error nobody retrieved when collected", function()
    local got
    support.run(function()
      got = support.capture(asyncio.get_running_loop())
      local f = asyncio.Future()
      f:set_exception("lost")
      f = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(1, #got)
    assert.equal("lost", got[1].exception)
    assert.matches("never retrieved", got[1].message)
  end)

  it("does not report an error that was retrieved", function()
    local got
    support.run(function()
      got = support.capture(asyncio.get_running_loop())
      local f = asyncio.Future()
      f:set_exception("seen")
      assert.equal("seen", f:exception())
      f = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)
    assert.same({}, got)
  end)

  it("checks its arguments", function()
    local f = asyncio.Future()
    assert.has_error(function() f:add_done_callback(42) end,
      "bad argument #1 to 'add_done_callback' (function expected, got number)")
    assert.has_error(function() f:set_exception(nil) end,
      "bad argument #1 to 'set_exception' (error value expected, got nil)")
    assert.has_error(function() asyncio.Future.done(42) end,
      "bad argument #1 to 'done' (asyncio.Future expected, got number)")
  end)
end)
