-- What a newcomer's first hour with the library found (a helper who knows
-- Python's asyncio, session of 2026-12-07): each spec here failed before
-- its fix.
local asyncio = require "asyncio"
local support = require "spec.support"
local await, async = asyncio.await, asyncio.async

-- The message of the error fn(...) raises (it must raise).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

describe("a newcomer's first hour", function()
  after_each(support.assert_clean)

  it("timeout and task_group run an async function's body, as create_task does", function()
    local slow = async(function(d) await(asyncio.sleep(d)); return "done", d end)
    local body = async(function(tg, x)
      local child = tg:create_task(slow, 0)
      return "body", x, child
    end)
    support.run(function()
      assert.same({"done", 0.001}, {await(asyncio.timeout(1, slow, 0.001))})
      local what, x, child = await(asyncio.task_group(body, 7))
      assert.equal("body", what)
      assert.equal(7, x)
      assert.equal("done", child:result())
    end)
  end)

  it("loop:create_task(fn) calls fn with no arguments; asyncio.run(main, opts) too", function()
    local loop = asyncio.new_event_loop()
    local t = loop:create_task(function(...) return select("#", ...) end)
    assert.equal(0, loop:run_until_complete(t))
    loop:close()
    assert.equal(0, asyncio.run(function(...) return select("#", ...) end, {debug = false}))
  end)

  it("asyncio.run(coro, extra) names run and its argument #2", function()
    local coro = async(function() end)()
    assert.matches("bad argument #2 to 'run' %(a coroutine object takes no arguments",
      error_of(asyncio.run, coro, 2, 3), nil)
    asyncio.run(coro)  -- still whole: it runs
    -- nil or an empty table: no options, as create_task(coro, opts) takes them
    assert.equal(1, asyncio.run(async(function() return 1 end)(), nil))
    assert.equal(2, asyncio.run(async(function() return 2 end)(), {}))
  end)

  it("a write to a file open for reading fails at the write, a read of one open for writing at the read", function()
    support.with_file("abc", function(path)
      support.run(function()
        local r = await(asyncio.open_file(path, "r"))
        local err = select(2, pcall(await, r:write("data")))
        assert.is_true(asyncio.OSError:is(err))
        assert.equal("EBADF", err.errno)
        assert.matches("open for reading only %(write%)", tostring(err))
        assert.equal("abc", await(r:read()))  -- nothing was queued for later
        await(r:close())
        local w = await(asyncio.open_file(path, "a"))
        err = select(2, pcall(await, w:read()))
        assert.equal("EBADF", err.errno)
        assert.matches("open for writing only %(read%)", tostring(err))
        assert.equal(3, await(w:write("def")))
        await(w:close())
        local rw = await(asyncio.open_file(path, "r+"))
        assert.equal("abcdef", await(rw:read()))
        assert.equal(1, await(rw:write("g")))
        await(rw:close())
      end)
      local f = assert(io.open(path))
      assert.equal("abcdefg", f:read("a"))
      f:close()
    end)
  end)

  it("drain on a stream closed with nothing left to send raises ConnectionResetError", function()
    support.run(function()
      local srv, port = support.serve(function(r) await(r:read()) end)
      local _, w = await(asyncio.open_connection("127.0.0.1", port))
      w:write("x")
      await(w:drain())  -- open: returns
      w:close()
      local err = select(2, pcall(await, w:drain()))  -- right after the close
      assert.is_true(asyncio.ConnectionResetError:is(err))
      assert.matches("connection lost", tostring(err))
      await(w:wait_closed())
      err = select(2, pcall(await, w:drain()))  -- and once it is closed
      assert.is_true(asyncio.ConnectionResetError:is(err))
      support.finish_server(srv)
    end)
  end)

  it("a PriorityQueue of tables without 'less' says how to order them, at the program's line", function()
    support.run(function()
      local pq = asyncio.PriorityQueue()
      await(pq:put({2, "write report"}))
      local line = debug.getinfo(1, "l").currentline + 1
      local msg = error_of(function() return await(pq:put({1, "fix bug"})) end)
      assert.matches(":" .. line .. ": PriorityQueue: cannot order its items %(attempt to compare " ..
        "two table values%): give PriorityQueue a 'less' function", msg)
      assert.equal(1, pq:qsize())  -- the refused item was not put
      local ordered = asyncio.PriorityQueue(0, function(a, b) return a[1] < b[1] end)
      await(ordered:put({2, "write report"}))
      await(ordered:put({1, "fix bug"}))
      assert.equal("fix bug", await(ordered:get())[2])
    end)
  end)

  it("to_thread refusing a function upvalue does not advise passing it as an argument", function()
    local function helper() return 1 end
    local msg = error_of(asyncio.to_thread, function() return helper() end)
    assert.matches("upvalue 'helper'.*define it inside the function, or require the module", msg)
    local n = 5
    msg = error_of(asyncio.to_thread, function() return n end)
    assert.matches("upvalue 'n'.*pass the value as an argument", msg)
  end)

  it("a field of a call's awaitable, read before the await, says the await is missing", function()
    local fetch = async(function(x) return {status = x} end)
    support.run(function()
      local f = asyncio.open_file("/nonexistent/x")
      local line = debug.getinfo(1, "l").currentline + 1
      local msg = error_of(function() return f:lines() end)
      assert.matches(":" .. line .. ": attempt to index asyncio.open_file%(...%) %(field 'lines'%): " ..
        "it is an awaitable: await it for the results", msg)
      assert.is_true(asyncio.FileNotFoundError:is(select(2, pcall(await, f))))
      local c = fetch(200)
      msg = error_of(function() return c.status end)
      assert.matches("attempt to index a coroutine object %(async function of [^)]*%) " ..
        "%(field 'status'%)", msg)
      assert.equal(200, await(c).status)
      -- the library's own probes (fields named "_...") find nothing
      local r = fetch(1)
      assert.is_nil(r._loop)
      assert.equal(1, await(r).status)
    end)
  end)

  it("awaiting a future of a finished run says its loop is closed", function()
    local fut = asyncio.run(function() return asyncio.get_running_loop():create_future() end)
    local ok, err = pcall(asyncio.run, function() return await(fut) end)
    assert.is_false(ok)
    assert.matches("await: the future belongs to an event loop that is closed", err)
  end)
end)
