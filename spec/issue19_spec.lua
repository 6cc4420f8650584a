-- Issue 19: a newcomer's mistakes are caught and errors say where they
-- came from. Each spec failed before its fix.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("issue 19", function()
  after_each(support.assert_clean)

  describe("options tables", function()
    it("refuse unknown keys, naming the option", function()
      assert.has_error(function() asyncio.open_connection("h", 1, {sll = true}) end,
        "bad argument #3 to 'open_connection' (unknown option 'sll')")
      assert.has_error(function() asyncio.open_unix_connection("/p", {limt = 1}) end,
        "bad argument #2 to 'open_unix_connection' (unknown option 'limt')")
      assert.has_error(function() asyncio.gather({}, {return_exception = true}) end,
        "bad argument #2 to 'gather' (unknown option 'return_exception')")
      assert.has_error(function() asyncio.wait({}, {retrun_when = "FIRST_COMPLETED"}) end,
        "bad argument #2 to 'wait' (unknown option 'retrun_when')")
      assert.has_error(function() asyncio.wait({}, {timout = 1}) end,
        "bad argument #2 to 'wait' (unknown option 'timout')")
      assert.has_error(function() asyncio.as_completed({}, {timout = 1}) end,
        "bad argument #2 to 'as_completed' (unknown option 'timout')")
      assert.has_error(function() asyncio.start_server(print, "h", 1, {backlg = 1}) end,
        "bad argument #4 to 'start_server' (unknown option 'backlg')")
      assert.has_error(function() asyncio.start_unix_server(print, "/p", {reuse_port = true}) end,
        "bad argument #3 to 'start_unix_server' (unknown option 'reuse_port')")
      assert.has_error(function() asyncio.create_subprocess_shell("x", {stdot = "pipe"}) end,
        "bad argument #2 to 'create_subprocess_shell' (unknown option 'stdot')")
      assert.has_error(function() asyncio.create_subprocess_exec("x", "a", {cdw = "/"}) end,
        "bad argument #3 to 'create_subprocess_exec' (unknown option 'cdw')")
      assert.has_error(function() asyncio.open_udp{local_adr = {"127.0.0.1", 0}} end,
        "bad argument #1 to 'open_udp' (unknown option 'local_adr')")
      assert.has_error(function() asyncio.getaddrinfo("localhost", 80, {famly = 4}) end,
        "bad argument #3 to 'getaddrinfo' (unknown option 'famly')")
      assert.has_error(function() require("asyncio.busted")(print, {timout = 1}) end,
        "bad argument #2 to 'async' (unknown option 'timout')")
    end)

    it("refuse a second list given to gather, and a second awaitable given to await", function()
      assert.has_error(function() asyncio.gather({1}, {2}) end,
        "bad argument #2 to 'gather' (options table expected, got a list (key 1))")
      support.run(function()
        assert.has_error(function() await(asyncio.sleep(0), asyncio.sleep(0)) end,
          "bad argument #2 to 'await' (one awaitable expected: gather awaits several)")
      end)
    end)

    it("still take what is right", function()
      local r = support.run(function()
        return await(asyncio.gather({asyncio.sleep(0, 1)}, {return_exceptions = true}))
      end)
      assert.are.equal(1, r.n)
      assert.are.equal(1, r[1])
    end)
  end)

  describe("small things", function()
    it("after its loop closed, a writer is closing and a server is not serving", function()
      local w, srv
      asyncio.run(function()
        srv = await(asyncio.start_server(function() end, "127.0.0.1", 0))
        local _
        _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        assert.is_false(w:is_closing())
        assert.is_true(srv:is_serving())
      end)
      assert.is_true(w:is_closing())
      assert.is_false(srv:is_serving())
    end)

    it("make repl defines asyncio and await", function()
      local out = support.sh("printf 'print(type(asyncio), type(await))\\n' | make -s repl")
      assert.matches("table\tfunction", out)
    end)

    it("wait_for with a time limit already up never starts a coroutine", function()
      local ran = false
      local ok, err = pcall(asyncio.run, function()
        return await(asyncio.wait_for(asyncio.async(function() ran = true; return 1 end)(), 0))
      end)
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(err))
      assert.is_false(ran)
      assert.are.equal(5, asyncio.run(function()
        local f = asyncio.Future()
        f:set_result(5)
        return await(asyncio.wait_for(f, -1))  -- done already: its result
      end))
    end)

    it("wait_for with a time limit already up: what happened already is no timeout, " ..
       "what never started is not reported as never awaited", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local await = asyncio.await
        asyncio.run(function()
          local q = asyncio.Queue(1)
          -- there is room: the put happens at once; it must not say it timed out
          print("room", pcall(await, asyncio.wait_for(q:put("a"), 0)))
          -- full: it times out, and never put the item
          local ok, e = pcall(await, asyncio.wait_for(q:put("b"), 0))
          print("full", ok, asyncio.TimeoutError:is(e), q:qsize(), q:get_nowait())
          local ev = asyncio.Event()
          ev:set()
          print("event", pcall(await, asyncio.wait_for(ev:wait(), 0)))
          ok = pcall(await, asyncio.wait_for(asyncio.sleep(5), 0))
          print("sleep", ok)
          -- a task made for a put that must wait, cancelled before it starts
          q:put_nowait("x")
          local t = asyncio.create_task(q:put("c"))
          t:cancel()
          print("task", pcall(await, t))
          collectgarbage()
          collectgarbage()
        end)
        collectgarbage()
        collectgarbage()
      ]])
      assert.equal(0, code)
      assert.equal("room\ttrue\nfull\tfalse\ttrue\t1\ta\nevent\ttrue\ttrue\nsleep\tfalse\n" ..
        "task\tfalse\tCancelledError\n", (out:gsub("[^\n]*TimeoutError[^\n]*", "")))
    end)

    it("require on another Lua says it needs Lua 5.4", function()
      local out = support.sh('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" ' ..
        "lua5.1 -e 'require \"asyncio\"'")
      assert.matches("asyncio needs Lua 5.4, this is Lua 5.1", out)
    end)

    it("asyncio.run at the async REPL's prompt names the line and says to await", function()
      local out = support.with_file("asyncio.run(function() end)\n", function(f)
        return (support.sh(support.LUA .. " -l asyncio.repl < " .. f))
      end)
      assert.matches("^stdin:1: asyncio.run%(%) cannot be called from a running event loop " ..
        "%(the async REPL runs one: await the coroutine or task instead%)", out)
    end)
  end)

  describe("task names", function()
    it("are Task-N by default, and given with {name = ...} after a coroutine object", function()
      support.run(function()
        local a = asyncio.create_task(function() end)
        local b = asyncio.create_task(function() end)
        local na, nb = tonumber(a:get_name():match("^Task%-(%d+)$")), tonumber(b:get_name():match("^Task%-(%d+)$"))
        assert.are.equal(na + 1, nb)
        local c = asyncio.create_task(asyncio.async(function() end)(), {name = "fetcher"})
        assert.are.equal("fetcher", c:get_name())
        local got = await(asyncio.create_task(function(opts) return opts.name end, {name = "arg"}))
        assert.are.equal("arg", got)  -- a function gets what follows as its arguments
        local coro = asyncio.async(print)()
        assert.has_error(function() asyncio.create_task(coro, {nmae = 1}) end,
          "bad argument #2 to 'create_task' (unknown option 'nmae')")
        await(coro)  -- refused: not reported as never awaited
        local dump
        await(asyncio.task_group(function(tg)
          tg:create_task(asyncio.async(function() await(asyncio.sleep(0)) end)(), {name = "child"})
          dump = asyncio.create_task(function() return asyncio.dump_tasks() end)
        end))
        dump = await(dump)
        await(a)
        await(b)
        await(c)
        assert.matches("%* child:", dump)
        assert.matches("a task group's children to finish", dump)
      end)
    end)
  end)

  describe("asyncio.pcall and asyncio.xpcall", function()
    it("catch errors but let the task's cancellation through", function()
      support.run(function()
        assert.are.same({false, "boom"}, {asyncio.pcall(error, "boom", 0)})
        assert.are.same({true, 1, 2}, {asyncio.pcall(function() return 1, 2 end)})
        assert.are.same({false, "handled boom"},
          {asyncio.xpcall(error, function(e) return "handled " .. e end, "boom", 0)})
        local steps = 0
        local t = asyncio.create_task(function()
          while true do  -- what a plain pcall would turn into a task that cannot be cancelled
            asyncio.pcall(await, asyncio.sleep(10))
            steps = steps + 1
          end
        end)
        support.ticks(1)
        t:cancel()
        local ok, err = pcall(await, t)
        assert.is_false(ok)
        assert.is_true(asyncio.CancelledError:is(err))
        assert.are.equal(0, steps)
        local seen
        local x = asyncio.create_task(function()
          asyncio.xpcall(await, function(e) seen = e end, asyncio.sleep(10))
        end)
        support.ticks(1)
        x:cancel()
        assert.is_false(pcall(await, x))
        assert.is_true(x:cancelled())
        assert.is_nil(seen)  -- msgh never saw the cancellation
      end)
    end)

    it("in debug mode, a task that swallowed its cancellation is reported", function()
      local reports = {}
      local loop = asyncio.new_event_loop{debug = true}
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
      loop:run_until_complete(asyncio.async(function()
        local t = asyncio.create_task(function()
          pcall(await, asyncio.sleep(10))  -- the pitfall
          return "went on"
        end, nil)
        t:set_name("stubborn")
        support.ticks(1)
        t:cancel()
        assert.are.equal("went on", await(t))
      end)())
      loop:close()
      assert.are.equal(1, #reports)
      assert.matches("^stubborn returned normally after a cancellation was raised in it", reports[1])
    end)
  end)

  describe("an error escaping asyncio.run", function()
    local script = [[
      local asyncio = require "asyncio"
      local await = asyncio.await
      local inner = asyncio.async(function()
        local t = nil
        return t.field                        -- line 5
      end)
      local middle = asyncio.async(function()
        local r = await(inner())              -- line 8
        return r
      end)
      local function main()
        local r = await(asyncio.create_task(middle()))   -- line 12
        return r
      end
    ]]

    it("shows the frames of the tasks it went through", function()
      local out, code = support.lua_run(script .. "asyncio.run(main)\n")
      assert.are_not.equal(0, code)
      assert.matches("the tasks it went through, first to last:\n" ..
        "  task Task%-2:\n    [^\n]*:5: in function [^\n]*\n    [^\n]*:8: in function [^\n]*\n" ..
        "  task Task%-1:\n    [^\n]*:12: in function", out)
      assert.matches(":5: attempt to index a nil value %(local 't'%)", out)
    end)

    it("is the very same value under pcall, and nothing is printed", function()
      local out = support.lua_run(script ..
        "local ok, err = pcall(asyncio.run, main)\nprint(ok, type(err), err)\n")
      assert.matches("^false\tstring\t[^\n]*:5: attempt to index a nil value %(local 't'%)\n$", out)
    end)
  end)

  describe("asyncio's own error objects", function()
    it("name the program's line and keep the traceback of where they were raised", function()
      local line
      local ok, err = pcall(asyncio.run, function()
        line = debug.getinfo(1, "l").currentline + 1
        await(asyncio.wait_for(asyncio.sleep(1), 0.001))
      end)
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(err))
      assert.are.equal(("spec/issue19_spec.lua:%d:"):format(line), err.where)
      assert.are.equal(("spec/issue19_spec.lua:%d: TimeoutError: the operation timed out"):format(line),
        tostring(err))
      assert.matches("timeouts%.lua", err.traceback)  -- raised inside the library
      local q = asyncio.Queue(1)
      q:put_nowait(1)
      ok, err = pcall(q.put_nowait, q, 2)
      assert.is_false(ok)
      assert.matches("^spec/issue19_spec%.lua:%d+: QueueFull: queue is full$", tostring(err))
      -- made by the program: no place (it is the program's to raise)
      assert.are.equal("TimeoutError: too slow", tostring(asyncio.TimeoutError("too slow")))
    end)
  end)

  describe("a child in a session of its own", function()
    -- the state of process 'pid' ("S" sleeping, "Z" a zombie, "" gone)
    local function state(pid)
      return (support.sh("ps -o stat= -p " .. pid):gsub("%s", ""):sub(1, 1))
    end

    it("can be signalled with its whole group, grandchildren included", function()
      support.run(function()
        local function start(new_session)
          local p = await(asyncio.create_subprocess_shell("sleep 30 & echo $!; wait",
            {stdout = "pipe", start_new_session = new_session}))
          return p, tonumber(await(p.stdout:readline()))
        end
        local p1, kept = start(false)
        p1:terminate()                    -- the shell only
        await(p1:wait())
        local p2, killed = start(true)
        p2:send_signal_group("SIGTERM")   -- the shell and its sleep
        assert.are.equal(-15, await(p2:wait()))
        assert.are.equal("", await(p2.stdout:read()))  -- the sleep held the pipe: gone too
        assert.are.equal("S", state(kept))  -- left running: terminate() reached the shell alone
        assert.are_not.equal("S", state(killed))
        os.execute("kill " .. kept)
        assert.are.equal("", await(p1.stdout:read()))
      end)
      assert.has_error(function()
        support.run(function()
          local p = await(asyncio.create_subprocess_exec("true"))
          await(p:wait())
          p:send_signal_group("SIGTERM")
        end)
      end)
    end)
  end)

  describe("a forgotten await", function()
    -- run 'fn' as asyncio.run's main; the messages its loop reported
    local function reports_of(fn)
      local got = {}
      asyncio.run(function()
        asyncio.get_running_loop():set_exception_handler(function(_, ctx)
          got[#got + 1] = ctx.message
        end)
        fn()
      end)
      table.sort(got)
      return got
    end

    it("on a put that had to wait is reported at asyncio.run's end, with its line and item", function()
      local line
      local got = reports_of(function()
        local q = asyncio.Queue(2)
        line = debug.getinfo(1, "l").currentline + 1
        for i = 1, 4 do q:put(i) end  -- the newcomer's loop: two puts wait, never awaited
        await(asyncio.sleep(0))
      end)
      local lost = "q:put(%d) at spec/issue19_spec.lua:%d was never awaited: the queue was full " ..
        "and the item was not put"
      assert.are.same({lost:format(3, line), lost:format(4, line)}, got)
    end)

    it("on a gather is reported as such, not as a CancelledError nobody retrieved", function()
      local got = reports_of(function()
        asyncio.gather(asyncio.sleep(10), asyncio.sleep(10))  -- never awaited
        await(asyncio.sleep(0))
      end)
      assert.are.equal(1, #got)
      assert.matches("^asyncio%.gather%(%.%.%.%) at spec/issue19_spec%.lua:%d+ was never awaited: " ..
        "the results and errors of its 2 awaitables are lost$", got[1])
    end)

    it("on a coroutine object or a sleep is reported when collected, by default", function()
      local function job_body() return 1 end
      local job = asyncio.async(job_body)
      local job_line, sleep_line
      local got = reports_of(function()
        job(); job_line = debug.getinfo(1, "l").currentline
        asyncio.sleep(1); sleep_line = debug.getinfo(1, "l").currentline
        collectgarbage()
        collectgarbage()
        await(asyncio.sleep(0))
      end)
      assert.are.same({
        ("a coroutine object (async function of spec/issue19_spec.lua:%d) made at " ..
          "spec/issue19_spec.lua:%d was never awaited: its body never ran"):format(
          debug.getinfo(job_body, "S").linedefined, job_line),
        ("asyncio.sleep(1) at spec/issue19_spec.lua:%d was never awaited"):format(sleep_line),
      }, got)
    end)

    it("on a drain with bytes held back is reported", function()
      local got = reports_of(function()
        local srv = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0))
        local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        w:set_write_buffer_limits(0)
        w:write(string.rep("x", 1 << 22))  -- more than the socket takes at once
        w:drain()                          -- never awaited
        w:close()
        srv:close()
        srv:close_clients()
        await(srv:wait_closed())
      end)
      assert.are.equal(1, #got)
      assert.matches("^writer:drain%(%) at spec/issue19_spec%.lua:%d+ was never awaited: %d+ bytes were " ..
        "queued beyond the high%-water mark", got[1])
    end)

    it("is not reported for what was awaited", function()
      local got = reports_of(function()
        local q = asyncio.Queue(1)
        q:put_nowait(0)
        local p = q:put(1)
        q:get_nowait()
        await(p)
        await(asyncio.gather(asyncio.sleep(0)))
        await(asyncio.sleep(0.001))
        await(asyncio.async(function() end)())
        collectgarbage()
      end)
      assert.are.same({}, got)
    end)
  end)
end)
