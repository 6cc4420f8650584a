-- Defects a second hostile review found (session of 2026-12-06): each
-- spec here failed before its fix.
local asyncio = require "asyncio"
local support = require "spec.support"

describe("the second review", function()
  after_each(support.assert_clean)

  it("a Ctrl-C while asyncio.run cancels the stragglers raises KeyboardInterrupt, never a normal return", function()
    local out = support.lua_repl({
      'asyncio = require "asyncio"',
      'ok, err = pcall(asyncio.run, function() asyncio.create_task(function() while true do ' ..
        'pcall(asyncio.await, asyncio.sleep(0.05)) print("stubborn") end end) ' ..
        'asyncio.await(asyncio.sleep(0)) return 1 end)',
      '--SIGINT-- stubborn',
      'print("after", ok, tostring(err))',
    })
    assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
  end)

  it("a run that ended another way does not stop the next run with its stale callback", function()
    local loop = asyncio.new_event_loop()
    local fut = loop:create_future()
    loop:call_soon(function() fut:set_result(1); loop:stop() end)
    assert.equal(1, loop:run_until_complete(fut))
    local fired = false
    loop:call_later(0.01, function() fired = true; loop:stop() end)
    loop:run_forever()
    assert.is_true(fired)
    loop:close()
  end)

  it("an error escaping asyncio.run through a gather shows the failing child's frames", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      local function inner() await(asyncio.sleep(0)); error("boom") end   -- line 3
      local function child() inner() end                                  -- line 4
      asyncio.run(function()
        await(asyncio.gather(asyncio.async(child)(), asyncio.sleep(0.01))) -- line 6
      end)
    ]])
    assert.are_not.equal(0, code)
    assert.matches("the tasks it went through, first to last:\n" ..
      "  task Task%-2:\n    [^\n]*:3: in [^\n]*\n    [^\n]*:4: in [^\n]*\n" ..
      "  task Task%-1:\n    [^\n]*:6: in function", out)
    assert.matches(":3: boom", out)
  end)

  it("refuses a path, host or name with a NUL inside, naming the function and argument", function()
    local await = asyncio.await
    local path = os.tmpname()
    os.remove(path)
    local cases = {
      {"open_file", 1, function() await(asyncio.open_file(path .. "\0x", "w")) end},
      {"open_connection", 1, function() await(asyncio.open_connection("127.0.0.1\0x", 1)) end},
      {"open_connection", 3, function()
        await(asyncio.open_connection("127.0.0.1", 1, {local_addr = {"127.0.0.1\0x", 0}})) end},
      {"open_connection", 3, function()
        await(asyncio.open_connection("127.0.0.1", 1, {ssl = true, server_hostname = "a\0b"})) end},
      {"start_server", 2, function() await(asyncio.start_server(print, "127.0.0.1\0x", 0)) end},
      {"start_unix_server", 2, function() await(asyncio.start_unix_server(print, path .. "\0x")) end},
      {"open_unix_connection", 1, function() await(asyncio.open_unix_connection(path .. "\0x")) end},
      {"getaddrinfo", 1, function() await(asyncio.getaddrinfo("localhost\0x", 80)) end},
      {"getaddrinfo", 2, function() await(asyncio.getaddrinfo("localhost", "http\0x")) end},
      {"getnameinfo", 1, function() await(asyncio.getnameinfo("127.0.0.1\0x", 80)) end},
      {"open_udp", 1, function() await(asyncio.open_udp{local_addr = {"127.0.0.1\0x", 0}}) end},
      {"ssl_context", 1, function() asyncio.ssl_context{cafile = path .. "\0x"} end},
      {"stat", 1, function() await(asyncio.fs.stat(path .. "\0x")) end},
      {"mkdir", 1, function() await(asyncio.fs.mkdir(path .. "\0x")) end},
      {"rename", 2, function() await(asyncio.fs.rename(path, path .. "\0x")) end},
    }
    asyncio.run(function()
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[3])
        assert.is_false(ok, c[1])
        assert.matches(("^spec/review_reports_spec%%.lua:%%d+: bad argument #%d to '%s' %%(.*embedded null byte%%)$")
          :format(c[2], c[1]), err)
      end
      local ep = await(asyncio.open_udp{local_addr = {"127.0.0.1", 0}})
      local ok, err = pcall(ep.sendto, ep, "x", "127.0.0.1\0x", 9)
      ep:close()
      assert.is_false(ok)
      assert.matches("bad argument #3 to 'sendto' %(embedded null byte%)", err)
    end)
    assert.is_nil(io.open(path))  -- nothing was made under the name cut short
  end)

  it("QueueEmpty and QueueFull keep their place and a cheap traceback (they are polled for)", function()
    local q = asyncio.Queue(1)
    local ok, err = pcall(q.get_nowait, q)
    assert.is_false(ok)
    assert.matches("^spec/review_reports_spec%.lua:%d+: QueueEmpty: queue is empty$", tostring(err))
    assert.matches("^stack traceback:\n\t.*spec/review_reports_spec%.lua:%d+: in function", err.traceback)
    q:put_nowait(1)
    ok, err = pcall(q.put_nowait, q, 2)
    assert.is_false(ok)
    assert.matches("^spec/review_reports_spec%.lua:%d+: QueueFull: queue is full$", tostring(err))
    assert.is_string(err.traceback)
    -- other errors keep theirs
    ok, err = pcall(asyncio.run, function() asyncio.await(asyncio.wait_for(asyncio.sleep(1), 0)) end)
    assert.is_false(ok)
    assert.is_string(err.traceback)
  end)

  describe("a unix server's socket file", function()
    local await = asyncio.await
    local path
    before_each(function() path = os.tmpname(); os.remove(path) end)
    after_each(function() os.remove(path) end)
    local function exists() return os.execute("test -e " .. path) == true end

    it("is removed when the server closes, so the path can serve again", function()
      asyncio.run(function()
        local s = await(asyncio.start_unix_server(function() end, path))
        assert.is_true(exists())
        s:close()
        await(s:wait_closed())
        assert.is_false(exists())
        s = await(asyncio.start_unix_server(function() end, path))
        s:close()
      end)
    end)

    it("left by a server that is gone (a crashed run) is replaced", function()
      -- a socket bound by a process that then exited: nothing listens on it
      assert.is_true(os.execute(("python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); " ..
        "s.bind(\"%s\")'"):format(path)))
      assert.is_true(exists())
      asyncio.run(function()
        local got
        local s = await(asyncio.start_unix_server(function(r, w)
          got = await(r:readline()); w:close()
        end, path))
        local _, w = await(asyncio.open_unix_connection(path))
        w:write("hello\n")
        await(w:drain())
        w:close()
        while not got do await(asyncio.sleep(0.001)) end
        assert.equal("hello\n", got)
        s:close()
      end)
    end)

    it("of a live server, or a file that is no socket, is left alone (address already in use)", function()
      asyncio.run(function()
        local s = await(asyncio.start_unix_server(function() end, path))
        local ok, err = pcall(function() await(asyncio.start_unix_server(function() end, path)) end)
        assert.is_false(ok)
        assert.is_true(asyncio.OSError:is(err))
        assert.matches("address already in use", tostring(err))
        local _, w = await(asyncio.open_unix_connection(path))  -- the first still serves
        w:close()
        s:close()
      end)
      local f = assert(io.open(path, "w"))
      f:write("keep")
      f:close()
      asyncio.run(function()
        local ok = pcall(function() await(asyncio.start_unix_server(function() end, path)) end)
        assert.is_false(ok)
      end)
      assert.equal("keep", io.open(path):read("a"))
    end)
  end)

  describe("a forgotten await", function()
    local await = asyncio.await
    -- run 'fn' as asyncio.run's main, collecting at its end; the messages reported
    local function reports_of(fn)
      local got = {}
      asyncio.run(function()
        asyncio.get_running_loop():set_exception_handler(function(_, ctx)
          got[#got + 1] = ctx.message
        end)
        fn()
        collectgarbage()
        collectgarbage()
        await(asyncio.sleep(0))
      end)
      table.sort(got)
      return got
    end

    it("on a File's write, a Lock's or a Semaphore's acquire is reported once, with its line", function()
      local path = os.tmpname()
      local line
      local got = reports_of(function()
        local f = await(asyncio.open_file(path, "w"))
        line = debug.getinfo(1, "l").currentline
        f:write("lost")                      -- line + 1
        local lock = asyncio.Lock()
        lock:acquire()                       -- line + 3
        asyncio.Semaphore(1):acquire()       -- line + 4
        await(f:write("kept"))
        await(f:close())
      end)
      local f = assert(io.open(path))
      assert.equal("kept", f:read("a"))  -- the forgotten write never ran
      f:close()
      os.remove(path)
      assert.are.same({
        ("Lock.acquire() at spec/review_reports_spec.lua:%d was never awaited: the lock was not taken")
          :format(line + 3),
        ("Semaphore.acquire() at spec/review_reports_spec.lua:%d was never awaited: the semaphore " ..
          "was not taken"):format(line + 4),
        ("file:write(...) at spec/review_reports_spec.lua:%d was never awaited: it never ran")
          :format(line + 1),
      }, got)
    end)

    it("on a gather that is done and collected before the run's end is reported once", function()
      local line
      local got = reports_of(function()
        local function fire_and_forget()
          line = debug.getinfo(1, "l").currentline + 1
          asyncio.gather(asyncio.sleep(0), asyncio.async(function() error("lost") end)())
        end
        fire_and_forget()
        await(asyncio.sleep(0.01))  -- it is done, and nothing holds it
      end)
      assert.are.same({("asyncio.gather(...) at spec/review_reports_spec.lua:%d was never awaited: " ..
        "the results and errors of its 2 awaitables are lost"):format(line)}, got)
    end)

    it("on a sleep or a coroutine object names the line that made it, and its values still arrive", function()
      local function add_body(a, b, ...) return a + b, select("#", ...), ... end
      local add = asyncio.async(add_body)
      local line, results
      local got = reports_of(function()
        line = debug.getinfo(1, "l").currentline
        asyncio.sleep(2, "lost")               -- line + 1
        add(1, 2)                              -- line + 2
        results = {
          {await(asyncio.sleep(0.001, "a", nil, "c"))},
          {await(add(1, 2, nil, "x"))},
          {await(asyncio.create_task(add(3, 4)))},
          {await(asyncio.ensure_future(add(5, 6, "y")))},
          {await(asyncio.get_running_loop():create_task(add(7, 8)))},
          {await(asyncio.wait_for(add(9, 10), 1))},
        }
      end)
      assert.are.same({{"a", nil, "c"}, {3, 2, nil, "x"}, {7, 0}, {11, 1, "y"}, {15, 0}, {19, 0}},
        results)
      assert.are.same({
        ("a coroutine object (async function of spec/review_reports_spec.lua:%d) made at " ..
          "spec/review_reports_spec.lua:%d was never awaited: its body never ran"):format(
          debug.getinfo(add_body, "S").linedefined, line + 2),
        ("asyncio.sleep(2) at spec/review_reports_spec.lua:%d was never awaited"):format(line + 1),
      }, got)
    end)

    it("on the library's own coroutine objects names the call the program wrote", function()
      local line
      local got = reports_of(function()
        line = debug.getinfo(1, "l").currentline
        asyncio.task_group(function() end)                     -- line + 1
        asyncio.timeout(1, function() end)                     -- line + 2
        asyncio.Condition():wait_for(function() return 1 end)  -- line + 3
        asyncio.wait({asyncio.get_running_loop():create_future()})  -- line + 4
      end)
      local function made(what, at)
        return ("%s made at spec/review_reports_spec.lua:%d was never awaited: its body never ran")
          :format(what, line + at)
      end
      assert.are.same({made("Condition:wait_for(...)", 3), made("asyncio.task_group(...)", 1),
        made("asyncio.timeout(...)", 2), made("asyncio.wait(...)", 4)}, got)
    end)

    it("is not reported for what a wait_for refused where the task cannot wait", function()
      local errs = {}
      local got = reports_of(function()
        local lock = asyncio.Lock()
        await(lock:acquire())  -- held: the next acquire would have to wait
        local t = {2, 1}
        for _, make in ipairs{function() return asyncio.sleep(0.01) end,
                              function() return lock:acquire() end} do
          local ok, err = pcall(table.sort, t, function(a, b)
            await(asyncio.wait_for(make(), 1))
            return a < b
          end)
          assert.is_false(ok)
          errs[#errs + 1] = err
        end
        lock:release()
      end)
      for _, err in ipairs(errs) do assert.matches("'await' cannot wait here", err) end
      assert.are.same({}, got)
    end)

    it("wait_for where the task cannot wait still does what needs no wait, as a plain await does", function()
      local got = reports_of(function()
        local t = {2, 1}
        local lock, q = asyncio.Lock(), asyncio.Queue()
        q:put_nowait("item")
        local seen = {}
        assert.is_true(pcall(table.sort, t, function(a, b)
          if not lock:locked() then await(asyncio.wait_for(lock:acquire())) end  -- free: no wait
          if q:qsize() > 0 then seen[#seen + 1] = await(asyncio.wait_for(q:get(), 1)) end  -- there
          return a < b
        end))
        assert.is_true(lock:locked())
        assert.are.same({"item"}, seen)
        lock:release()
      end)
      assert.are.same({}, got)
    end)

    it("is not reported for what was awaited, refused, or handed to a task cancelled before it ran", function()
      local got = reports_of(function()
        local lock = asyncio.Lock()
        local held <close> = await(lock:acquire())  -- luacheck: ignore 211
        local t = asyncio.create_task(asyncio.getaddrinfo("localhost", 80))
        t:cancel()
        await(asyncio.sleep(0))
        assert.is_true(t:cancelled())
        local inner = asyncio.gather(asyncio.sleep(0))
        await(asyncio.gather(inner, asyncio.sleep(0)))  -- the outer one looks at the inner one
      end)
      assert.are.same({}, got)
      local op = asyncio.Semaphore(1):acquire()
      assert.has_error(function() asyncio.await(op) end, "'await' called outside a running task")
      op = nil  -- luacheck: ignore
      local reports = {}
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
      loop:run_until_complete(asyncio.sleep(0))
      collectgarbage()
      collectgarbage()
      loop:close()
      assert.are.same({}, reports)
    end)
  end)

  it("wait_for on a get that finds its item returns it (no timer armed), and once only", function()
    asyncio.run(function()
      local await = asyncio.await
      local q = asyncio.Queue()
      q:put_nowait("a")
      local w = asyncio.wait_for(q:get(), 10)
      assert.equal("a", await(w))
      assert.has_error(function() await(w) end, "await: this wait_for was already awaited")
      -- an empty queue still waits, and still times out
      local ok, err = pcall(await, asyncio.wait_for(q:get(), 0.001))
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(err))
      asyncio.get_running_loop():call_later(0.001, q.put_nowait, q, "b")
      assert.equal("b", await(asyncio.wait_for(q:get(), 10)))
      assert.equal(0, q:qsize())
    end)
  end)

  it("wait_for on a get of a queue shut down raises QueueShutDown at once, as the get does", function()
    asyncio.run(function()
      local q = asyncio.Queue()
      q:put_nowait("last")
      q:shutdown()
      assert.equal("last", asyncio.await(asyncio.wait_for(q:get(), 10)))
      local ok, err = pcall(asyncio.await, asyncio.wait_for(q:get(), 10))
      assert.is_false(ok)
      assert.is_true(asyncio.QueueShutDown:is(err))
      local _, timers = asyncio.get_running_loop()._core:pending()
      assert.equal(0, timers)  -- nothing waited: no timer was armed
    end)
  end)

  it("a server's waiter cancelled by its own time limit leaves the other waiters be", function()
    asyncio.run(function()
      local await = asyncio.await
      local s = await(asyncio.start_server(function() end, "127.0.0.1", 0))
      local closed = asyncio.create_task(function() await(s:wait_closed()); return "closed" end)
      local serving = asyncio.create_task(function() await(s:serve_forever()); return "served" end)
      await(asyncio.sleep(0))
      local ok, err = pcall(await, asyncio.wait_for(s:wait_closed(), 0.001))
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(err))
      assert.is_true(s:is_serving())
      -- a serve_forever cancelled closes the server (as in CPython); the others end normally
      ok, err = pcall(await, asyncio.wait_for(s:serve_forever(), 0.001))
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(err))
      assert.is_false(s:is_serving())
      assert.equal("closed", await(closed))
      assert.equal("served", await(serving))
    end)
  end)

  it("run refuses a typo in its options when main takes no arguments; a closed loop names the method", function()
    assert.has_error(function() asyncio.run(function() return 1 end, {debg = true}) end,
      "bad argument #2 to 'run' (unknown option 'debg')")
    -- a coroutine object takes no arguments either (it named 'create_task': newcomer review)
    local main = asyncio.async(function() return 1 end)
    local c = main()
    assert.has_error(function() asyncio.run(c, {debg = true}) end,
      "bad argument #2 to 'run' (unknown option 'debg')")
    assert.equal(1, asyncio.run(c, {debug = false}))  -- refused before it was claimed
    assert.is_true(asyncio.run(function(t) return t.debg end, {debg = true}))
    assert.equal(2, asyncio.run(function() return 2 end, {debug = false}))
    local loop = asyncio.new_event_loop()
    loop:close()
    local ok, err = pcall(loop.call_later, loop, 1, print)
    assert.is_false(ok)
    assert.matches("^spec/review_reports_spec%.lua:%d+: call_later: attempt to use a closed event loop$", err)
  end)

  it("process_group = 0 starts the child in a group of its own; another group is refused", function()
    asyncio.run(function()
      local await = asyncio.await
      local p = await(asyncio.create_subprocess_shell("sleep 30 & echo $!; wait",
        {stdout = "pipe", process_group = 0}))
      local grandchild = assert(tonumber(await(p.stdout:readline())))
      p:send_signal_group("SIGTERM")
      await(p:wait())
      -- the grandchild got it too: gone, or a zombie about to be reaped by init
      local function state()
        local f = io.open(("/proc/%d/stat"):format(grandchild))
        local st = f and f:read("a"):match("^%d+ %b() (%a)")
        if f then f:close() end
        return st
      end
      for _ = 1, 500 do  -- the signal is delivered; its death may take a moment to show
        if state() == nil or state() == "Z" then break end
        await(asyncio.sleep(0.01))
      end
      local st = state()
      assert.is_true(st == nil or st == "Z", tostring(st))
      assert.has_error(function() asyncio.create_subprocess_exec("true", {process_group = 5}) end,
        "bad argument #2 to 'create_subprocess_exec' (process_group must be 0 (a group of the " ..
        "child's own); joining another group is not supported)")
    end)
  end)

  it("File:read() of the rest asks the pool for a block at a time, not a gigabyte", function()
    -- under a 600 MB address-space limit, a 1 GiB read buffer cannot be had
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local path = os.tmpname()
      local fh = io.open(path, "w"); fh:write(("x"):rep(100000)); fh:close()
      print(#asyncio.run(function()
        local f = asyncio.await(asyncio.open_file(path))
        local data = asyncio.await(f:read())
        asyncio.await(f:close())
        return data
      end))
      os.remove(path)
    ]], "ulimit -v 600000; ")
    assert.equal("100000\n", out)
    assert.equal(0, code)
  end)
end)

