-- Defects a third hostile review found (session of 2026-12-07): each spec
-- here failed before its fix.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

-- A <close> variable whose closing raises.
local function closing_raises(msg)
  return setmetatable({}, {__close = function() error(msg, 0) end})
end

describe("the third review", function()
  after_each(support.assert_clean)

  it("an error closing a <close> variable of a failed, cancelled or yielding task is reported, not lost", function()
    local got, outcomes = nil, {}
    support.run(function()
      got = support.capture(asyncio.get_running_loop())
      local failed = asyncio.create_task(function()
        local c <close> = closing_raises("close 1")  -- luacheck: ignore
        await(asyncio.sleep(0))
        error("body failed", 0)
      end)
      local cancelled = asyncio.create_task(function()
        local c <close> = closing_raises("close 2")  -- luacheck: ignore
        await(asyncio.sleep(10))
      end)
      local yielded = asyncio.create_task(function()
        local c <close> = closing_raises("close 3")  -- luacheck: ignore
        coroutine.yield()
      end)
      local same = asyncio.create_task(function()  -- re-raises the body's error: nothing new
        local c <close> = setmetatable({}, {__close = function(_, e) error(e, 0) end})  -- luacheck: ignore
        error("same", 0)
      end)
      support.ticks(2)
      cancelled:cancel()
      for _, t in ipairs({failed, cancelled, yielded, same}) do
        local _, e = pcall(await, t)
        outcomes[#outcomes + 1] = tostring(e)
      end
    end)
    -- each task keeps the outcome it had before its variables were closed
    assert.equal("body failed", outcomes[1])
    assert.equal("CancelledError", outcomes[2])
    assert.matches("yielded outside 'await'", outcomes[3])
    assert.equal("same", outcomes[4])
    local closes = {}
    for _, ctx in ipairs(got) do
      if ctx.message:find("<close> variable", 1, true) then
        closes[#closes + 1] = ctx.exception
        assert.equal("asyncio.Task", getmetatable(ctx.task).__name)
      end
    end
    table.sort(closes)
    assert.same({"close 1", "close 2", "close 3"}, closes)
  end)

  it("a dropped put or drain collected during the run is reported once, not again at its end", function()
    local msgs = {}
    local port = support.free_port()
    asyncio.run(function()
      asyncio.get_running_loop():set_exception_handler(function(_, ctx)
        msgs[#msgs + 1] = ctx.message
      end)
      local q = asyncio.Queue(1)
      q:put_nowait(1)
      local op = q:put(2)  -- luacheck: ignore (full: this put waits, if awaited)
      local srv = await(asyncio.start_server(function() await(asyncio.sleep(math.huge)) end,
        "127.0.0.1", port))
      local _, w = await(asyncio.open_connection("127.0.0.1", port))
      w:write(string.rep("x", 8 << 20))  -- nobody reads: past the high-water mark
      local drain = w:drain()
      assert.equal("asyncio.StreamWriter.drain", getmetatable(drain).__name)
      op, drain = nil, nil  -- luacheck: ignore
      collectgarbage()  -- one cycle: it finalizes them; their weak keys go in the next
      w:close()
      srv:close()
    end)
    local puts, drains = 0, 0
    for _, m in ipairs(msgs) do
      if m:find("q:put(2)", 1, true) then puts = puts + 1 end
      if m:find("writer:drain()", 1, true) then drains = drains + 1 end
    end
    assert.same({1, 1}, {puts, drains})
  end)

  it("an as_completed awaitable awaited a second time is refused, not left waiting for another's result", function()
    local r = support.run(function()
      local it = asyncio.as_completed({asyncio.sleep(0.001, "a"), asyncio.sleep(0.002, "b")})
      local first = it()
      local got = {await(first)}
      local ok, err = pcall(await, first)
      got[#got + 1] = ok
      got[#got + 1] = tostring(err):match("already awaited") ~= nil
      got[#got + 1] = await(it())
      return got
    end)
    assert.same({"a", false, true, "b"}, r)
  end)

  it("awaiting a pending future of another loop is refused at once, also under wait_for", function()
    local other = asyncio.new_event_loop()
    local r = support.run(function()
      local f = other:create_future()
      local t = other:create_task(function() end)
      local res = {}
      for _, aw in ipairs({f, t, asyncio.wait_for(f, 0.01)}) do
        local ok, err = pcall(await, aw)
        res[#res + 1] = not ok and tostring(err):match("belongs to a different event loop") ~= nil
      end
      res[#res + 1] = f:cancelled()  -- the refused wait_for left it as it was
      -- nor do a cancellation pending in this task, a limit of 0 or gather touch them
      asyncio.current_task():cancel()
      local ok, err = pcall(await, f)
      asyncio.current_task():uncancel()
      res[#res + 1] = not ok and tostring(err):match("different event loop") ~= nil
      for _, aw in ipairs({asyncio.wait_for(f, 0), asyncio.wait_for(t, 0)}) do
        ok, err = pcall(await, aw)
        res[#res + 1] = not ok and tostring(err):match("different event loop") ~= nil
      end
      local ran = false
      local c = asyncio.async(function() ran = true end)()
      ok, err = pcall(asyncio.gather, c, f)
      res[#res + 1] = not ok and tostring(err):match("gather: the future belongs") ~= nil
      support.ticks(2)
      res[#res + 1] = ran  -- the task gather made for 'c' was cancelled before it ran
      res[#res + 1] = f:cancelled() or t:cancelled() or t:cancelling() > 0
      return res
    end)
    other:close()
    assert.same({true, true, true, false, true, true, true, true, false, false}, r)
  end)

  it("misuse of all_tasks, dump_tasks, print_tasks, get_loop, new_event_loop and advance names the function", function()
    local here = debug.getinfo(1, "S").short_src
    local function refused_here(msg, fn, ...)  -- named at the program's line (pcall's caller)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.equal(here .. ":", err:sub(1, #here + 1))
      assert.matches(msg, err, 1, true)
    end
    refused_here("bad argument #1 to 'all_tasks' (asyncio.EventLoop expected, got number)",
      asyncio.all_tasks, 5)
    refused_here("bad argument #1 to 'dump_tasks' (asyncio.EventLoop expected, got number)",
      asyncio.dump_tasks, 5)
    refused_here("bad argument #1 to 'print_tasks' (asyncio.EventLoop expected, got number)",
      asyncio.print_tasks, 5)
    refused_here("dump_tasks: no running event loop (pass the loop)", asyncio.dump_tasks)
    refused_here("bad argument #1 to 'get_loop' (asyncio.Future expected, got number)",
      asyncio.Future.get_loop, 5)
    refused_here("bad argument #1 to 'new_event_loop' (unknown option 'bogus')",
      asyncio.new_event_loop, {bogus = 1}, "oops")
    assert.is_true(next(asyncio.all_tasks()) == nil)  -- no loop: no tasks, as before
    local loop = asyncio.new_event_loop({clock = "virtual"})
    refused_here("bad argument #2 to 'print_tasks' (file expected, got number)",
      asyncio.print_tasks, loop, 5)
    refused_here("bad argument #1 to 'advance' (seconds must be below 1e9)",
      asyncio.testing.advance, 2e9, loop)
    refused_here("bad argument #1 to 'advance' (seconds is NaN)", asyncio.testing.advance, 0 / 0, loop)
    refused_here("bad argument #2 to 'advance' (asyncio.EventLoop expected, got number)",
      asyncio.testing.advance, 1, 5)
    asyncio.testing.advance(2, loop)
    assert.equal(2, loop:time())
    loop:close()
    refused_here("bad argument #1 to 'all_tasks' (asyncio.EventLoop expected, got string)",
      asyncio.all_tasks, "x")
  end)

  it("a signal number that is no signal is named as such", function()
    local loop = asyncio.new_event_loop()
    for _, sig in ipairs({99, 0, -1, 32}) do  -- 32: glibc's own, below SIGRTMIN
      local ok, err = pcall(loop.add_signal_handler, loop, sig, print)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'add_signal_handler' (unknown signal " .. sig .. ")", err, 1, true)
    end
    -- every POSIX signal by name, real-time ones by number (it knew 15)
    for _, sig in ipairs({"SIGTTIN", "TTOU", "SIGPROF", "SIGXCPU", "SIGPOLL", 34}) do
      assert.is_nil(loop:add_signal_handler(sig, print))
      assert.is_true(loop:remove_signal_handler(sig))
    end
    assert.has_error(function() loop:add_signal_handler("USR1\0junk", print) end,
      "bad argument #1 to 'add_signal_handler' (embedded null byte)")
    -- a fault's signal, caught and returned from, would fault again for ever
    for _, sig in ipairs({"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"}) do
      assert.has_error(function() loop:add_signal_handler(sig, print) end,
        "add_signal_handler: " .. sig .. " comes from a fault and cannot be handled on the loop")
    end
    loop:close()
  end)

  it("a reset that arrives with the last bytes is a reset, not a clean end of the stream", function()
    -- a peer that sends 1000 bytes and resets (SO_LINGER 0), no FIN between
    local peer = table.concat({
      "import socket, struct, sys",
      "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
      "s.sendall(b'x' * 1000)",
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
      "s.close()"}, "\n") .. "\n"
    local got = support.with_file(peer, function(script)
      return support.run_within(30, function()
        local done, result = asyncio.Event(), nil
        local server <close> = await(asyncio.start_server(function(r)
          os.execute("sleep 0.3")  -- blocks the loop: the bytes and the reset arrive together
          local total = 0
          while true do
            local ok, d = pcall(await, r:read(65536))
            if not ok then result = {total, tostring(d):match("ConnectionResetError") ~= nil}; break end
            if d == "" then result = {total, "clean EOF"}; break end
            total = total + #d
          end
          done:set()
        end, "127.0.0.1", 0))
        local p = await(asyncio.create_subprocess_exec("python3", script,
          tostring(server:sockets()[1]:getsockname()[2])))
        await(p:wait())
        await(done:wait())
        return result
      end)
    end)
    assert.same({1000, true}, got)  -- every byte first, then the error (docs/api.md)
  end)

  it("a writer closed and collected while its bytes are still queued still sends them all", function()
    local got = support.run_within(60, function()
      local done, result = asyncio.Event(), nil
      local srv <close> = await(asyncio.start_server(function(r)
        await(asyncio.sleep(0.2))  -- reads late: the writer lingers meanwhile
        local ok, d = pcall(await, r:read())
        result = ok and #d or tostring(d)
        done:set()
      end, "127.0.0.1", 0))
      do
        local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        w:write(string.rep("q", 8 << 20) .. "!")
        w:close()
      end
      collectgarbage()
      collectgarbage()  -- the writer is gone; its socket was closed with half the bytes queued
      await(done:wait())
      return result
    end)
    assert.equal((8 << 20) + 1, got)
  end)

  it("a clean end stays clean when a late write of ours provoked the peer's reset", function()
    local got = support.run_within(60, function()
      local srv <close> = await(asyncio.start_server(function(_, w)
        w:write(string.rep("r", 150000))
        await(w:drain())
        w:close()
        await(w:wait_closed())
      end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      await(asyncio.sleep(0.3))  -- every byte and the FIN are in; reading paused at the high mark
      w:write("late")            -- the closed peer answers with a reset (EPIPE in SO_ERROR)
      await(asyncio.sleep(0.2))
      local ok, d = pcall(await, r:read())
      w:close()
      return ok and #d or tostring(d)
    end)
    assert.equal(150000, got)
  end)

  it("SIGPIPE stays ignored after a handler of the program's for it is removed or its loop closed", function()
    local out, status = support.lua_run([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      -- libuv sets a signal back to its default when its last watcher goes
      asyncio.run(function() asyncio.get_running_loop():add_signal_handler("SIGPIPE", print) end)
      asyncio.run(function()
        local loop = asyncio.get_running_loop()
        loop:add_signal_handler("SIGPIPE", print)
        loop:remove_signal_handler("SIGPIPE")
        local p = await(asyncio.create_subprocess_exec("true", {stdin = "pipe"}))
        await(p:wait())
        p.stdin:write(("x"):rep(100000))  -- to a pipe nobody reads any more
        local ok, err = pcall(await, p.stdin:drain())
        p.stdin:close()  -- (or, collected early under GC stress, it is reported unclosed)
        print(ok, asyncio.BrokenPipeError:is(err))
      end)
      print("alive")
    ]])
    assert.equal(0, status, out)  -- 141 before: killed by SIGPIPE
    assert.equal("false\ttrue\nalive\n", out)
  end)

  it("a File whose read failed goes on working: later reads, writes and seeks are not refused", function()
    local path = os.tmpname()
    local r = support.run(function()
      local f = await(asyncio.open_file(path, "w"))
      await(f:write("one\n"))
      local res = {}
      local ok, err = pcall(await, f:read(1))  -- a write-only file: EBADF
      res[1] = not ok and asyncio.OSError:is(err)
      res[2] = (pcall(await, f:write("two\n")))  -- "request already consumed", and lost
      res[3] = (pcall(await, f:close()))
      local d = await(asyncio.open_file("/tmp"))  -- a directory: EISDIR, twice, then a seek
      res[4] = not pcall(await, d:read(1)) and not pcall(await, d:read(1))
      res[5] = (pcall(await, d:seek("set", 0)))
      await(d:close())
      return res
    end)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    assert.same({true, true, true, true, true}, r)
    assert.equal("one\ntwo\n", text)
  end)

  it("a mode, a port or a second waiting task is refused with the function, the argument and the line", function()
    local here = debug.getinfo(1, "S").short_src
    local r = support.run(function()
      local res = {}
      local function refused(msg, fn, ...)
        local ok, err = pcall(fn, ...)
        res[#res + 1] = not ok and tostring(err):sub(1, #here + 1) == here .. ":" and
          tostring(err):find(msg, 1, true) ~= nil or tostring(err)
      end
      refused("bad argument #2 to 'mkdir' (mode out of range (0 to 07777))", asyncio.fs.mkdir, "/tmp/x", -1)
      refused("bad argument #2 to 'mkdir' (mode out of range (0 to 07777))", asyncio.fs.mkdir, "/tmp/x", 1 << 20)
      refused("bad argument #2 to 'getaddrinfo' (port out of range)", asyncio.getaddrinfo, "127.0.0.1", 70000)
      refused("bad argument #2 to 'getaddrinfo' (port out of range)", asyncio.getaddrinfo, "127.0.0.1", -1)
      local u = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      refused("bad argument #4 to 'sendto' (port out of range)", u.sendto, u, "x", "127.0.0.1", 70000)
      local t = asyncio.create_task(function() return await(u:recvfrom()) end)
      await(asyncio.sleep(0))
      refused("recvfrom: another task is already waiting on this endpoint", function()
        return await(u:recvfrom())
      end)
      t:cancel()
      pcall(await, t)
      u:close()
      return res
    end)
    assert.same({true, true, true, true, true, true}, r)
  end)

  it("send_signal(0) tells whether the child is there and sends nothing", function()
    local r = support.run(function()
      local p = await(asyncio.create_subprocess_exec("sleep", "5"))
      local there = p:send_signal(0)  -- "unknown signal 0" before
      local running = p.returncode == nil
      p:kill()
      local code = await(p:wait())
      return {there, running, code, p:send_signal(0)}
    end)
    assert.same({true, true, -9, false}, r)
  end)

  it("a signal gets back the disposition it had before its handlers once the last goes", function()
    -- libuv leaves the default: SIGHUP ignored under nohup then killed the process
    local out, status = support.lua_run([[
      local asyncio = require "asyncio"
      local pid = io.open("/proc/self/stat"):read("n")
      local loop = asyncio.new_event_loop()
      loop:add_signal_handler("SIGHUP", print)
      loop:remove_signal_handler("SIGHUP")
      loop:add_signal_handler("SIGHUP", print)
      loop:close()
      os.execute("kill -HUP " .. pid)
      print("alive")
    ]], "trap '' HUP; ")
    assert.equal(0, status, out)
    assert.equal("alive\n", out)
  end)
end)
