-- asyncio.busted: test bodies as the main task of a fresh loop, with a
-- virtual clock, a deadline, and failures for what would otherwise pass
-- unnoticed. The helper is tested by running it and reading why it fails.
local asyncio = require "asyncio"
local async = require "asyncio.busted"
local await = asyncio.await

-- Why async(fn, opts) fails, or nil if it passes.
local function failure(fn, opts)
  local ok, err = pcall(async(fn, opts))
  if ok then return nil end
  return tostring(err)
end

describe("asyncio.busted", function()
  it("runs the body as a task of a fresh virtual-clock loop", async(function()
    local loop = asyncio.get_running_loop()
    assert.is_true(loop:is_virtual())
    assert.equal("test body", asyncio.current_task():get_name())
    local ok, err = pcall(await, asyncio.wait_for(asyncio.Event():wait(), 30))
    assert.is_false(ok)
    assert.is_true(asyncio.TimeoutError:is(err))
    assert.equal(30, loop:time())
  end, {timeout = 60}))

  it("takes {clock = \"real\"}", async(function()
    assert.is_false(asyncio.get_running_loop():is_virtual())
    await(asyncio.sleep(0.01))
  end, {clock = "real"}))

  it("passes through what busted gives the test", function()
    local got = async(function(...) return select("#", ...), ... end)(1, nil, 3)
    assert.equal(3, got)
  end)

  it("fails with the body's error", function()
    local err = failure(function()
      await(asyncio.sleep(1))
      error("boom")
    end)
    assert.matches("boom", err)
  end)

  it("fails on the deadline (5 s of loop time), saying where each task was", function()
    local err = failure(function()
      local t = asyncio.create_task(function() await(asyncio.Event():wait()) end)
      t:set_name("stuck")
      await(t)
    end)
    assert.matches("test did not finish within 5 s of loop time %(virtual clock%)", err)
    assert.matches("%* test body: task stuck\n", err)
    assert.matches("\n  %* stuck: an Event\n      spec/busted_helper_spec.lua:%d+:", err)
    err = failure(function() await(asyncio.sleep(10)) end, {timeout = 2})
    assert.matches("within 2 s of loop time", err)
  end)

  it("fails on a task error nobody retrieved", function()
    local err = failure(function()
      asyncio.create_task(function() error("lost in a task") end)
      await(asyncio.sleep(1))
    end)
    assert.matches("errors nobody retrieved:\n  Task exception was never retrieved: .*lost in a task", err)
  end)

  it("fails on tasks left running, named with what they await, and cancels them", function()
    local cancelled = false
    local err = failure(function()
      local t = asyncio.create_task(function()
        local ok, e = pcall(await, asyncio.sleep(100))
        if not ok and asyncio.CancelledError:is(e) then cancelled = true end
        error(e, 0)
      end)
      t:set_name("forgotten")
      await(asyncio.sleep(1))
    end)
    assert.matches("1 task was still running when the test body returned", err)
    assert.matches("%* forgotten: sleep, 99.000 s left", err)
    assert.is_true(cancelled)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() async(42) end,
      "bad argument #1 to 'async' (function expected, got number)")
    assert.has_error(function() async(print, {clock = "fast"}) end,
      "bad argument #2 to 'async' (clock must be \"real\" or \"virtual\")")
  end)
end)
