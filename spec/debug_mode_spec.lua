-- Debug mode: asyncio.run(main, {debug = true}), new_event_loop{debug =
-- true}, loop:set_debug, ASYNCIO_DEBUG=1. Reports go to the exception
-- handler; here they are captured.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

-- Run 'fn' on a loop with 'opts'; returns the messages the loop reported.
local function reports_of(fn, opts)
  local loop = asyncio.new_event_loop(opts)
  local got = {}
  loop:set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
  loop:run_until_complete(loop:create_task(fn))
  collectgarbage()
  collectgarbage()
  loop:close()
  return got
end

local function messages(list)
  local out = {}
  for i, ctx in ipairs(list) do out[i] = ctx.message end
  return out
end

local af = asyncio.async(function() return 1 end)

local function forgetful()
  asyncio.sleep(1)          -- the commonest mistake: no await
  af()                      -- a coroutine object, never awaited
  await(asyncio.sleep(0))
end

describe("debug mode", function()
  it("reports a queue get and a stream read made and never awaited (newcomer review)", function()
    local outside_same
    local got = reports_of(function()
      local q = asyncio.Queue()
      q:put_nowait(1)
      q:get()                                    -- forgotten: no item taken
      local srv = await(asyncio.start_server(function(_, w) w:write("hi\n"); w:close() end,
        "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      r:readline()                               -- forgotten: nothing read
      -- awaited ones, also through wait_for, a task and gather, are not reported
      assert.equal(1, await(q:get()))
      q:put_nowait(2); q:put_nowait(3); q:put_nowait(4)
      assert.equal(2, await(asyncio.wait_for(q:get(), 1)))
      assert.equal(3, await(asyncio.create_task(q:get())))
      assert.equal(4, await(asyncio.gather(q:get()))[1])
      assert.equal("hi\n", await(asyncio.wait_for(r:readline(), 1)))
      w:close()
      srv:close()
      await(srv:wait_closed())
    end, {debug = true})
    local m = messages(got)
    table.sort(m)
    assert.same({"q:get() at spec/debug_mode_spec.lua:40 was never awaited: it took no item",
      "reader:readline() at spec/debug_mode_spec.lua:44 was never awaited: it never ran"}, m)
    -- outside debug mode a get is the queue's one reusable operation (nothing to report)
    support.run(function()
      local q = asyncio.Queue()
      outside_same = rawequal(q:get(), q:get())
    end)
    assert.is_true(outside_same)
  end)

  it("reports a sleep and a coroutine object collected without being awaited, with where they were made", function()
    local got = messages(reports_of(forgetful, {debug = true}))
    table.sort(got)
    assert.equal(2, #got)
    assert.matches("^a coroutine object %(async function of spec/debug_mode_spec.lua:26%) was never awaited " ..
      "%(made at spec/debug_mode_spec.lua:30%)$", got[1])
    assert.matches("^asyncio.sleep%(1%) was never awaited %(made at spec/debug_mode_spec.lua:29%)$", got[2])
  end)

  it("is off by default, yet the same mistakes are reported, with the line that made them", function()
    local got = messages(reports_of(forgetful))
    table.sort(got)
    assert.same({"a coroutine object (async function of spec/debug_mode_spec.lua:26) made at " ..
      "spec/debug_mode_spec.lua:30 was never awaited: its body never ran",
      "asyncio.sleep(1) at spec/debug_mode_spec.lua:29 was never awaited"}, got)
  end)

  it("does not report what was awaited, given to a task, gather or wait_for", function()
    local got = reports_of(function()
      await(asyncio.sleep(0))
      await(af())
      await(asyncio.create_task(af()))
      await(asyncio.gather(asyncio.sleep(0), af()))
      await(asyncio.wait_for(asyncio.sleep(0.001), 1))
    end, {debug = true})
    assert.same({}, messages(got))
  end)

  it("reports a step that holds the loop longer than slow_callback_duration, naming the task and its line", function()
    local line
    local got = reports_of(function()
      local t = asyncio.create_task(function()
        local t0 = os.clock()
        while os.clock() - t0 < 0.05 do end  -- 50 ms of CPU: at least that long in real time
        line = debug.getinfo(1, "l").currentline + 1
        await(asyncio.sleep(0))
      end)
      t:set_name("hog")
      await(t)
    end, {debug = true, slow_callback_duration = 0.01})
    assert.equal(1, #got)
    assert.matches(("^Executing hog took %%d+%%.%%d+ seconds %%(its step ended at " ..
      "spec/debug_mode_spec.lua:%d%%)$"):format(line), got[1].message)
    assert.is_true(got[1].seconds >= 0.01)
    assert.equal("hog", got[1].task:get_name())
  end)

  it("reports tasks still pending when the loop is closed", function()
    local loop = asyncio.new_event_loop{debug = true}
    local got = support.capture(loop)
    local t = loop:create_task(function() await(asyncio.Event():wait()) end)
    t:set_name("orphan")
    loop:run_until_complete(loop:create_task(function() await(asyncio.sleep(0)) end))
    loop:close()
    assert.same({"Task was destroyed but it is pending: orphan"}, messages(got))
  end)

  it("turns on with loop:set_debug and with ASYNCIO_DEBUG=1", function()
    local loop = asyncio.new_event_loop()
    assert.is_false(loop:get_debug())
    loop:set_debug(true)
    assert.is_true(loop:get_debug())
    loop:close()
    local out = support.sh(("ASYNCIO_DEBUG=1 %s -e '%s' 2>&1"):format(support.LUA,
      [[local asyncio = require "asyncio"
        asyncio.run(function() asyncio.sleep(2); asyncio.await(asyncio.sleep(0)); collectgarbage() end)
        print("debug", asyncio.new_event_loop():get_debug())]]))
    assert.matches("asyncio.sleep%(2%) was never awaited", out)
    assert.matches("debug\ttrue", out)
  end)

  it("checks its options", function()
    assert.has_error(function() asyncio.new_event_loop{debug = "yes"} end,
      "bad argument #1 to 'new_event_loop' (debug must be a boolean)")
    assert.has_error(function() asyncio.new_event_loop{slow_callback_duration = -1} end,
      "bad argument #1 to 'new_event_loop' (slow_callback_duration must be a positive number of seconds)")
  end)
end)
