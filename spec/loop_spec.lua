local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("event loop", function()
  after_each(support.assert_clean)

  it("runs call_soon callbacks in order with their arguments", function()
    local loop = asyncio.new_event_loop()
    local log = {}
    loop:call_soon(function(a, b) log[#log + 1] = a .. b end, "x", "y")
    loop:call_soon(function() log[#log + 1] = "second"; loop:stop() end)
    loop:run_forever()
    loop:close()
    assert.same({"xy", "second"}, log)
  end)

  it("does not run a cancelled handle", function()
    local loop = asyncio.new_event_loop()
    local ran = false
    local h = loop:call_soon(function() ran = true end)
    h:cancel()
    assert.is_true(h:cancelled())
    loop:run_forever()  -- returns: nothing left that could run
    loop:close()
    assert.is_false(ran)
  end)

  it("runs call_later callbacks in deadline order, ties in scheduling order", function()
    local loop = asyncio.new_event_loop()
    local log = {}
    loop:call_later(0.02, function() log[#log + 1] = "late" end)
    loop:call_later(0.01, function() log[#log + 1] = "a" end)
    loop:call_at(loop:time() - 1, function() log[#log + 1] = "past" end)
    local h = loop:call_later(0.015, function() log[#log + 1] = "cancelled" end)
    h:cancel()
    loop:run_forever()
    loop:close()
    assert.same({"past", "a", "late"}, log)
  end)

  it("gives call_later handles their deadline on the loop clock", function()
    local loop = asyncio.new_event_loop()
    local before = loop:time()
    local h = loop:call_later(10, print)
    assert.is_true(h:when() >= before + 10)
    assert.is_true(h:when() <= loop:time() + 10)
    assert.equal(5, loop:call_at(5, print):when())
    loop:close()
  end)

  it("fires call_at timers in exact deadline order, ties in arming order", function()
    local loop = asyncio.new_event_loop()
    math.randomseed(5)
    local order, base = {}, loop:time()
    for i = 1, 5000 do
      local when = base + math.random(0, 200) / 1e5
      loop:call_at(when, function() order[#order + 1] = {when, i} end)
    end
    loop:run_forever()
    loop:close()
    assert.equal(5000, #order)
    for k = 2, #order do
      local a, b = order[k - 1], order[k]
      assert.is_true(a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]))
    end
  end)

  it("reports time in monotonic seconds", function()
    local loop = asyncio.new_event_loop()
    local a = loop:time()
    local b = loop:time()
    assert.is_number(a)
    assert.is_true(b >= a)
    loop:close()
  end)

  it("runs a coroutine object to completion with run_until_complete", function()
    local loop = asyncio.new_event_loop()
    local r = loop:run_until_complete(asyncio.async(function(x)
      await(asyncio.sleep(0))
      return x
    end)("done"))
    assert.is_false(loop:is_running())
    loop:close()
    assert.is_true(loop:is_closed())
    assert.equal("done", r)
  end)

  it("is the running loop inside a task", function()
    local loop = asyncio.new_event_loop()
    local inside = loop:run_until_complete(asyncio.async(function()
      return asyncio.get_running_loop() == loop and loop:is_running()
    end)())
    loop:close()
    assert.is_true(inside)
    assert.has_error(function() asyncio.get_running_loop() end, "no running event loop")
  end)

  it("refuses to be used after close", function()
    local loop = asyncio.new_event_loop()
    loop:close()
    loop:close()  -- twice is fine
    assert.has_error(function() loop:call_soon(print) end, "call_soon: attempt to use a closed event loop")
    assert.has_error(function() loop:run_forever() end, "run_forever: attempt to use a closed event loop")
  end)

  it("refuses to close while running, from inside a callback", function()
    local loop = asyncio.new_event_loop()
    local got = support.capture(loop)
    loop:call_soon(function() loop:close() end)
    loop:run_forever()
    assert.is_false(loop:is_closed())
    loop:close()
    assert.equal(1, #got)
    assert.matches("cannot close a running event loop", got[1].exception)
  end)

  it("keeps running when the exception handler itself fails", function()
    local loop = asyncio.new_event_loop()
    loop:set_exception_handler(function() error("handler broke") end)
    local after = false
    local stderr = io.stderr
    local lines = {}
    io.stderr = {write = function(_, ...) lines[#lines + 1] = table.concat({...}) end}  -- luacheck: ignore
    loop:call_soon(function() error("first") end)
    loop:call_soon(function() after = true end)
    loop:run_forever()
    io.stderr = stderr  -- luacheck: ignore
    loop:close()
    assert.is_true(after)
    assert.matches("handler broke", table.concat(lines))
  end)

  -- Tasks that keep each other ready (a sleep(0) loop) while each step
  -- takes a while: the loop must still look at I/O between batches, not
  -- only every 1024 steps (a timed read then always timed out, its bytes
  -- never taken in). Counted in steps, not seconds.
  it("takes in I/O between batches of slow steps that never let it idle", function()
    local steps, got_at = 0, nil
    asyncio.run(function()
      local srv = await(asyncio.start_server(function(_, w)
        w:write("hello")
      end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      local busy = asyncio.create_task(function()
        while got_at == nil and steps < 2000 do
          local t0 = os.clock()
          repeat until os.clock() - t0 >= 0.002  -- a slow step
          steps = steps + 1
          await(asyncio.sleep(0))
        end
      end)
      assert.equal("hello", await(r:readexactly(5)))
      got_at = steps
      await(busy)
      w:close()
      await(w:wait_closed())
      srv:close()
      await(srv:wait_closed())
    end)
    assert.is_true(got_at < 100, ("the bytes came in after %d slow steps"):format(got_at))
  end)

  it("checks its arguments", function()
    local loop = asyncio.new_event_loop()
    assert.has_error(function() loop:call_soon(42) end,
      "bad argument #1 to 'call_soon' (function expected, got number)")
    assert.has_error(function() loop:call_later("1", print) end,
      "bad argument #1 to 'call_later' (number expected, got string)")
    assert.has_error(function() loop:call_later(0/0, print) end,
      "bad argument #1 to 'call_later' (delay is NaN)")
    assert.has_error(function() asyncio.EventLoop.time(42) end,
      "bad argument #1 to 'time' (asyncio.EventLoop expected, got number)")
    loop:close()
  end)
end)
