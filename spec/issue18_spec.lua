-- Issue 18: what a hostile review found (crashes, lost or reordered data,
-- waiters cancelled by someone else, hangs, leaks, misleading messages).
-- Each spec failed before its fix. Programs that used to crash or hang
-- the whole process run as child processes (support.lua_run), so that a
-- regression fails one spec instead of ending the run.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("issue 18", function()
  after_each(support.assert_clean)

  describe("SIGPIPE", function()
    it("a write to a peer that hung up fails with BrokenPipeError; the process lives", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local await = asyncio.await
        asyncio.run(function()
          local got = asyncio.Future()
          local srv = await(asyncio.start_server(function(r, w)
            await(r:read(1))
            got:set_result(pcall(function()
              for _ = 1, 400 do w:write(string.rep("x", 65536)); await(w:drain()) end
            end))
          end, "127.0.0.1", 0))
          local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
          w:write("x")
          w:close()
          await(w:wait_closed())
          local ok, err = await(got)
          print(ok, asyncio.BrokenPipeError:is(err) or asyncio.ConnectionResetError:is(err))
          srv:close()
          await(srv:wait_closed())
        end)
        print("alive")
      ]])
      assert.are.equal("false\ttrue\nalive\n", out)
      assert.are.equal(0, code)
    end)

    it("a write to the stdin of a child that exited fails with BrokenPipeError", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local await = asyncio.await
        asyncio.run(function()
          local p = await(asyncio.create_subprocess_exec("true", {stdin = "pipe"}))
          await(p:wait())
          local ok, err = pcall(function()
            for _ = 1, 400 do p.stdin:write(string.rep("x", 65536)); await(p.stdin:drain()) end
          end)
          print(ok, asyncio.BrokenPipeError:is(err))
        end)
        print("alive")
      ]])
      assert.are.equal("false\ttrue\nalive\n", out)
      assert.are.equal(0, code)
    end)

    it("is ignored once asyncio is loaded, and children start with the default", function()
      local out = support.lua_run([[
        local asyncio = require "asyncio"
        asyncio.run(function()
          local p = asyncio.await(asyncio.create_subprocess_exec("grep", "SigIgn",
            "/proc/self/status", {stdout = "pipe"}))
          io.write(asyncio.await(p.stdout:read()))
          asyncio.await(p:wait())
        end)
        for line in io.lines("/proc/self/status") do
          if line:find("^SigIgn") then print("self " .. line) end
        end
      ]])
      local child = tonumber(out:match("^SigIgn:%s*(%x+)"), 16)
      local self = tonumber(out:match("self SigIgn:%s*(%x+)"), 16)
      assert.are.equal(0, child & (1 << 12))     -- SIGPIPE (13) at the default in the child
      assert.are_not.equal(0, self & (1 << 12))  -- ignored in the process that loaded asyncio
    end)
  end)

  describe("finalizers", function()
    it("a PriorityQueue used by a finalizer that runs after its own still works", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local q
        -- finalizers run in the reverse order of creation: this one after q's
        local _ = setmetatable({}, {__gc = function()
          q:put_nowait(3)
          q:put_nowait(1)
          print("pq", q:get_nowait(), q:get_nowait(), q:get_nowait(), q:qsize())
        end})
        q = asyncio.PriorityQueue()
        for i = 1, 100 do q:put_nowait(i) end  -- the heap grows: new arrays
        for _ = 1, 100 do q:get_nowait() end
        q:put_nowait(2)
      ]])
      assert.are.equal("pq\t1\t2\t3\t0\n", out)
      assert.are.equal(0, code)
    end)

    it("a stream and a file request used after their finalizers fail cleanly", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local core = require "asyncio.core"
        local await = asyncio.await
        local r, req
        local _ = setmetatable({}, {__gc = function()
          print("read", r._conn.box:_read(10), r:at_eof())
          print("request", pcall(req._result, req))
        end})
        asyncio.run(function()
          local srv = await(asyncio.start_server(function(_, w) w:write("hello") end, "127.0.0.1", 0))
          local w
          r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
          while r._conn.box:_buffered() < 5 do await(asyncio.sleep(0.001)) end
          req = core.fs(asyncio.get_running_loop()._core, 4, "/")  -- a stat, left unread
          await(asyncio.sleep(0.05))
          srv:close()
          srv:close_clients()
          r, w = r, nil
        end)
      ]])
      assert.matches("read\t\ttrue\n", out)
      assert.matches("request\tfalse\t[^\n]*already consumed\n", out)
      assert.are.equal(0, code)
    end)
  end)

  describe("shared waits", function()
    -- a connected pair on loopback, inside a task: server-side writer and
    -- the client's reader and writer
    local function pair()
      local accepted = asyncio.Future()
      local srv = await(asyncio.start_server(function(r, w)
        accepted:set_result(r, w)
        await(w:wait_closed())
      end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      local sr, sw = await(accepted)
      return srv, r, w, sr, sw
    end

    it("a reader whose wait_for times out leaves the other readers waiting", function()
      support.run(function()
        local srv, r, w, _, sw = pair()
        local results = {}
        local function reader(i) results[i] = await(r:readline()) end
        local b = asyncio.create_task(reader, 1)
        local c = asyncio.create_task(reader, 2)
        support.ticks(2)
        local ok, err = pcall(await, asyncio.wait_for(r:readline(), 0.01))
        assert.is_false(ok)
        assert.is_true(asyncio.TimeoutError:is(err))
        sw:write("one\ntwo\n")
        await(b)
        await(c)
        assert.are.same({"one\n", "two\n"}, results)
        w:close(); sw:close()
        srv:close(); await(srv:wait_closed())
      end)
    end)

    it("a reader cancelled while it waits in C hands the wait to the next", function()
      support.run(function()
        local srv, r, w, _, sw = pair()
        local a = asyncio.create_task(function() return await(r:read(10)) end)
        support.ticks(2)
        local b = asyncio.create_task(function() return await(r:read(10)) end)
        support.ticks(2)
        a:cancel()
        support.ticks(2)
        sw:write("data")
        assert.are.equal("data", await(b))
        assert.is_true(a:cancelled())
        w:close(); sw:close()
        srv:close(); await(srv:wait_closed())
      end)
    end)

    it("drain and wait_closed waiters are cancelled one at a time", function()
      support.run(function()
        local srv, r, w, sr, sw = pair()
        w:set_write_buffer_limits(0)
        for _ = 1, 64 do w:write(string.rep("x", 65536)) end  -- more than the socket takes
        local drained = asyncio.create_task(function() await(w:drain()); return "drained" end)
        local closed = asyncio.create_task(function() await(w:wait_closed()); return "closed" end)
        support.ticks(2)
        assert.is_false(pcall(await, asyncio.wait_for(w:drain(), 0.01)))
        assert.is_false(pcall(await, asyncio.wait_for(w:wait_closed(), 0.01)))
        assert.is_false(drained:done())
        assert.is_false(closed:done())
        await(sr:readexactly(64 * 65536))
        assert.are.equal("drained", await(drained))
        w:close()
        assert.are.equal("closed", await(closed))
        sw:close()
        srv:close(); await(srv:wait_closed())
        assert.is_truthy(r)
      end)
    end)

    it("a Process:wait that times out leaves the other waiters waiting", function()
      support.run(function()
        local p = await(asyncio.create_subprocess_exec("sleep", "0.2"))
        local other = asyncio.create_task(function() return await(p:wait()) end)
        local third = asyncio.create_task(function() return await(p:wait()) end)
        support.ticks(2)
        assert.is_false(pcall(await, asyncio.wait_for(p:wait(), 0.01)))
        assert.are.equal(0, await(other))
        assert.are.equal(0, await(third))
      end)
    end)
  end)

  describe("a child whose loop closed", function()
    it("is reaped (no zombie) and waiting for it on another loop says why", function()
      local p
      asyncio.run(function()
        p = await(asyncio.create_subprocess_exec("sleep", "0.1"))
      end)
      local ok, err = pcall(asyncio.run, function() return await(p:wait()) end)
      assert.is_false(ok)
      assert.matches("belongs to an event loop that is closed", err)
      local state
      for _ = 1, 100 do
        state = support.sh("ps -o stat= -p " .. p.pid)
        if state == "" then break end
        os.execute("sleep 0.02")
      end
      assert.are.equal("", state)  -- gone, not "Z"
    end)
  end)
end)
