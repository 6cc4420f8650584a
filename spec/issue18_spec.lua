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
          p.stdin:close()
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
    it("does not crash the process at exit while it is reaped (the module stays loaded)", function()
      for _ = 1, 10 do  -- it crashed most of the time: the reaper returned into unloaded code
        local out, code = support.lua_run([[
          local asyncio = require "asyncio"
          asyncio.run(function() asyncio.await(asyncio.create_subprocess_exec("true")) end)
          print("done")
        ]])
        assert.are.equal("done\n", out)
        assert.are.equal(0, code)
      end
    end)

    it("is reaped (no zombie) and waiting for it on another loop says why", function()
      local p
      asyncio.run(function()
        p = await(asyncio.create_subprocess_exec("sleep", "0.1"))
      end)
      local ok, err = pcall(asyncio.run, function() local r = await(p:wait()); return r end)
      assert.is_false(ok)
      assert.matches("^spec/issue18_spec%.lua:%d+: wait: the process belongs to an event loop that is closed", err)
      local state
      for _ = 1, 100 do
        state = support.sh("ps -o stat= -p " .. p.pid)
        if state == "" then break end
        os.execute("sleep 0.02")
      end
      assert.are.equal("", state)  -- gone, not "Z"
    end)
  end)

  describe("files", function()
    local MiB = 1 << 20
    local function slurp(path)
      local fh = assert(io.open(path, "rb"))
      local data = fh:read("a")
      fh:close()
      return data
    end

    it("an append-mode <close> variable writes its tail after the write still in the pool", function()
      local path = os.tmpname()
      support.run(function()
        for round = 1, 5 do
          do
            local f <close> = await(asyncio.open_file(path, "a"))
            await(f:write(string.rep(string.char(64 + round), MiB)))  -- goes to the pool
            await(f:write("tail" .. round))
          end
        end
      end)
      local data = slurp(path)
      os.remove(path)
      assert.are.equal(5 * (MiB + 5), #data)
      for round = 1, 5 do
        local base = (round - 1) * (MiB + 5)
        assert.are.equal(string.char(64 + round), data:sub(base + 1, base + 1))
        assert.are.equal("tail" .. round, data:sub(base + MiB + 1, base + MiB + 5))
      end
    end)

    it("an append-mode File closed where nothing can wait keeps its order too", function()
      local path = os.tmpname()
      -- four opens of FIFOs nobody writes to hold libuv's four pool threads,
      -- so the 1 MiB write is still queued when its task fails
      local fifos = {}
      for i = 1, 4 do
        fifos[i] = os.tmpname()
        os.remove(fifos[i])
        assert(os.execute("mkfifo " .. fifos[i]))
      end
      support.run(function()
        local holders, opened = {}, asyncio.Event()
        local failing = asyncio.create_task(function()
          local f <close> = await(asyncio.open_file(path, "a"))
          opened:set()
          support.ticks(4)  -- the holders take the pool
          await(f:write(string.rep("x", MiB)))
          await(f:write("tail"))
          error("the task fails: its <close> variable is closed outside the task")
        end)
        await(opened:wait())
        for i = 1, 4 do
          holders[i] = asyncio.create_task(function()
            local fifo = await(asyncio.open_file(fifos[i]))
            await(fifo:close())
          end)
        end
        local ok = pcall(await, failing)
        assert.is_false(ok)
        for i = 1, 4 do  -- let the pool go
          local w = assert(io.open(fifos[i], "w"))
          w:close()
          await(holders[i])
        end
      end)
      for i = 1, 4 do os.remove(fifos[i]) end
      local data = slurp(path)
      os.remove(path)
      assert.are.equal(MiB + 4, #data)
      assert.are.equal("tail", data:sub(-4))
      assert.are.equal(string.rep("x", MiB), data:sub(1, MiB))
    end)

    it("a File that is collected open has its writes flushed, is closed and is reported", function()
      local path = os.tmpname()
      local reports = {}
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx.message end)
      loop:run_until_complete(asyncio.async(function()
        local f = await(asyncio.open_file(path, "w"))
        assert.are.equal(17, await(f:write("seventeen bytes!\n")))
      end)())
      collectgarbage()
      collectgarbage()
      loop:close()
      assert.are.equal("seventeen bytes!\n", slurp(path))
      os.remove(path)
      assert.are.same({"unclosed file " .. path}, reports)
    end)

    it("dropped Files do not run the process out of descriptors", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local out, code = support.lua_run(([[
        local asyncio = require "asyncio"
        local loop = asyncio.new_event_loop()
        loop:set_exception_handler(function() end)  -- the reports are the spec above's
        loop:run_until_complete(asyncio.async(function()
          for i = 1, 300 do
            local f = asyncio.await(asyncio.open_file("%s/" .. i, "w"))
            asyncio.await(f:write("file " .. i))
          end
        end)())
        collectgarbage()
        loop:close()
        print("ok")
      ]]):format(dir), "ulimit -n 64; ")
      local contents = {}
      for i = 1, 300 do contents[i] = slurp(dir .. "/" .. i) end
      os.execute("rm -r " .. dir)
      assert.are.equal("ok\n", out)
      assert.are.equal(0, code)
      for i = 1, 300 do assert.are.equal("file " .. i, contents[i]) end
    end)

    it("two tasks using one File take turns, and nothing is lost", function()
      local path = os.tmpname()
      support.run(function()
        local f = await(asyncio.open_file(path, "w+"))
        local big = asyncio.create_task(function()
          for i = 1, 3 do await(f:write(string.rep(tostring(i), MiB))) end
        end)
        local small = asyncio.create_task(function()
          for _ = 1, 100 do await(f:write("s")) end
        end)
        local closer = asyncio.create_task(function()
          await(asyncio.sleep(0))
          await(f:flush())
          return await(f:seek("cur"))
        end)
        await(big)
        await(small)
        assert.is_true(await(closer) > 0)
        assert.are.equal(0, await(f:seek("set")))
        local data = await(f:read())
        assert.are.equal(3 * MiB + 100, #data)
        local _, ones = data:gsub("1", "")
        local _, ss = data:gsub("s", "")
        assert.are.equal(MiB, ones)
        assert.are.equal(100, ss)
        assert.are.equal(0, await(f:seek("set")))  -- the next read goes to the pool
        local reader = asyncio.create_task(function() return await(f:read(10)) end)
        await(asyncio.sleep(0))  -- the read is under way
        await(f:close())  -- after it
        assert.are.equal("1111111111", await(reader))
        local ok, err = pcall(function() return f:read(1) end)
        assert.is_false(ok)
        assert.matches("read: the file is closed", err)
      end)
      os.remove(path)
    end)

    it("an open cancelled while it is in the pool leaves no descriptor behind", function()
      local fifo = os.tmpname()
      os.remove(fifo)
      assert(os.execute("mkfifo " .. fifo))
      local before, after
      support.run(function()
        before = support.fd_count()
        local t = asyncio.create_task(function() return await(asyncio.open_file(fifo)) end)
        support.ticks(2)  -- the open blocks in the pool until a writer comes
        t:cancel()
        assert.is_false(pcall(await, t))
        local w = assert(io.open(fifo, "w"))  -- now the open in the pool succeeds
        w:close()
        for _ = 1, 500 do  -- until the pool has answered and the request is collected
          collectgarbage()
          after = support.fd_count()
          if after == before then break end
          await(asyncio.sleep(0.01))
        end
      end)
      os.remove(fifo)
      assert.are.equal(before, after)
    end)
  end)

  describe("lengths of 4 GiB and more", function()
    it("a stream write of 4 GiB + 10 bytes arrives whole; a datagram that long is refused", function()
      -- about 8 GiB of memory for a few seconds (the string and the queued
      -- copy); huge pages make touching it ten times faster on a VM
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        local await = asyncio.await
        local s1 = string.rep(string.rep("x", 1 << 20), 1 << 10)
        local s2 = s1 .. s1
        s1 = nil
        local data = s2 .. s2 .. "0123456789"
        s2 = nil
        collectgarbage()
        local n = #data
        asyncio.run(function()
          local ep = await(asyncio.open_udp{local_addr = {"127.0.0.1", 0}})
          local ok, err = pcall(ep.sendto, ep, data, "127.0.0.1", ep:getsockname()[2])
          print("udp", ok, err and err.errno)
          ep:close()
          local total = asyncio.Future()
          local srv = await(asyncio.start_server(function(r)
            local got, last = 0, ""
            while true do
              local s = await(r:read(1 << 22))
              if s == "" then break end
              got, last = got + #s, s
            end
            total:set_result(got, last:sub(-10))
          end, "127.0.0.1", 0, {limit = 1 << 22}))
          local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
          w:write(data)
          data = nil
          collectgarbage()
          await(w:drain())
          w:close()
          local got, tail = await(total)
          print("tcp", got == n, tail)
          srv:close()
          await(srv:wait_closed())
        end)
      ]], "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 ")
      assert.are.equal("udp\tfalse\tEMSGSIZE\ntcp\ttrue\t0123456789\n", out)
      assert.are.equal(0, code)
    end)
  end)

  describe("a task's coroutine in the program's hands", function()
    local TAMPERED = "asyncio: the task's coroutine was closed or resumed outside its event loop"

    it("closed while the task waits: the task ends with an error, its body never runs again", function()
      support.run(function()
        local runs = 0
        local t = asyncio.create_task(function()
          runs = runs + 1
          await(asyncio.sleep(0.01))
          return "done"
        end)
        support.ticks(1)
        coroutine.close(t:get_coro())
        local ok, err = pcall(await, t)
        assert.is_false(ok)
        assert.are.equal(TAMPERED, err)
        assert.are.equal(1, runs)
      end)
    end)

    it("closed or resumed before the task started: the body never runs", function()
      support.run(function()
        local runs = 0
        local function body() runs = runs + 1; return "ran" end
        local a = asyncio.create_task(body)
        coroutine.close(a:get_coro())
        local b = asyncio.create_task(body)
        local ok, msg = coroutine.resume(b:get_coro(), "x", "y")
        assert.is_false(ok)
        assert.are.equal("asyncio: a task's coroutine can only be resumed by its event loop", msg)
        assert.are.same({false, TAMPERED}, {pcall(await, a)})
        assert.are.same({false, TAMPERED}, {pcall(await, b)})
        assert.are.equal(0, runs)
      end)
    end)

    it("a queue item handed to a task whose coroutine was closed goes to the next getter", function()
      support.run(function()
        local q = asyncio.Queue()
        local first = asyncio.create_task(function() return await(q:get()) end)
        local second = asyncio.create_task(function() return await(q:get()) end)
        support.ticks(1)
        coroutine.close(first:get_coro())
        q:put_nowait("item")
        assert.are.same({false, TAMPERED}, {pcall(await, first)})
        assert.are.equal("item", await(second))
      end)
    end)

    it("closed while it waits, lets go of what it waited on (the fuzzer's finds)", function()
      support.run(function()
        -- a stream read waiting in C: the next reader takes its place
        local accepted = asyncio.Future()
        local srv = await(asyncio.start_server(function(r, w)
          accepted:set_result(w)
          await(r:read())
        end, "127.0.0.1", 0))
        local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        local sw = await(accepted)
        local first = asyncio.create_task(function() return await(r:read(100)) end)
        support.ticks(1)
        local second = asyncio.create_task(function() return await(r:read(100)) end)
        support.ticks(1)
        coroutine.close(first:get_coro())
        sw:write("hello")
        assert.are.equal("hello", await(asyncio.wait_for(second, 5)))
        assert.are.same({false, TAMPERED}, {pcall(await, first)})
        w:close()
        srv:close()
        await(srv:wait_closed())
        -- a lock woken for a closed waiter passes on to the next
        local lock = asyncio.Lock()
        await(lock:acquire())
        local dead = asyncio.create_task(function() await(lock:acquire()) end)
        local next_one = asyncio.create_task(function() await(lock:acquire()); lock:release(); return "got it" end)
        support.ticks(1)
        lock:release()                      -- hands the lock to 'dead'...
        coroutine.close(dead:get_coro())    -- ...which will never run
        assert.are.equal("got it", await(asyncio.wait_for(next_one, 5)))
        assert.is_false(pcall(await, dead))
        -- a semaphore's value too
        local sem = asyncio.Semaphore(0)
        local dead2 = asyncio.create_task(function() await(sem:acquire()) end)
        local next2 = asyncio.create_task(function() await(sem:acquire()); return "got it" end)
        support.ticks(1)
        sem:release()
        coroutine.close(dead2:get_coro())
        assert.are.equal("got it", await(asyncio.wait_for(next2, 5)))
        assert.is_false(pcall(await, dead2))
      end)
    end)

    it("is never handed to another task, so keeping it cannot harm one", function()
      support.run(function()
        local kept = {}
        for i = 1, 50 do
          kept[i] = await(asyncio.create_task(function() return coroutine.running() end))
        end
        local live = {}
        for i = 1, 50 do
          live[i] = asyncio.create_task(function()
            await(asyncio.sleep(0))
            return coroutine.running()
          end)
        end
        support.ticks(1)
        for i = 1, 50 do coroutine.close(kept[i]) end  -- dead already: harmless
        local seen = {}
        for i = 1, 50 do seen[kept[i]] = true end
        for i = 1, 50 do
          local co = await(live[i])
          assert.is_nil(seen[co])
        end
      end)
    end)
  end)

  describe("a queue put that fails", function()
    it("after being woken passes its slot on, and join is not stranded", function()
      support.run(function()
        local q = asyncio.PriorityQueue(2, function(a, b)
          if a == 3 or b == 3 then error("no 3s", 0) end
          return a < b
        end)
        q:put_nowait(1)
        q:put_nowait(2)
        local p1 = asyncio.create_task(function() return pcall(await, q:put(3)) end)
        local p2 = asyncio.create_task(function() await(q:put(4)); return "put 4" end)
        support.ticks(1)
        assert.are.equal(1, q:get_nowait())
        q:task_done()
        assert.are.same({false, "no 3s"}, {await(p1)})
        assert.are.equal("put 4", await(asyncio.wait_for(p2, 10)))
        assert.are.equal(2, q:get_nowait())
        assert.are.equal(4, q:get_nowait())
        q:task_done()
        q:task_done()
        await(asyncio.wait_for(q:join(), 10))  -- the failed put was never counted
        assert.has_error(function() q:put_nowait(0); q:put_nowait(3) end, "no 3s")
        assert.are.equal(1, q:qsize())
        q:get_nowait()
        q:task_done()
        await(asyncio.wait_for(q:join(), 10))
      end)
    end)

    it("a comparison that uses its own queue is refused; the heap stays whole", function()
      support.run(function()
        local q
        q = asyncio.PriorityQueue(0, function(a, b)
          if a == 5 or b == 5 then q:put_nowait(0) end
          return a < b
        end)
        q:put_nowait(1)
        q:put_nowait(2)
        local ok, err = pcall(q.put_nowait, q, 5)
        assert.is_false(ok)
        assert.matches("put_nowait: the queue is in use by its own comparison", err)
        local Item = {__lt = function(a, b)
          q:get_nowait()
          return a.v < b.v
        end}
        local q2 = asyncio.PriorityQueue()
        q = q2
        q2:put_nowait(setmetatable({v = 1}, Item))
        ok, err = pcall(q2.put_nowait, q2, setmetatable({v = 2}, Item))
        assert.is_false(ok)
        assert.matches("get_nowait: the queue is in use by its own comparison", err)
        assert.are.equal(1, q2:qsize())
      end)
    end)
  end)

  describe("errors and finalizers (the fuzzer's finds)", function()
    it("an error value whose metatable is locked (__metatable) still ends its task", function()
      for _, locked in ipairs({false, "locked"}) do
        local e = setmetatable({}, {__metatable = locked})
        local ok, err = pcall(asyncio.run, function()
          local t = asyncio.create_task(function() error(e) end)
          local ok2, err2 = pcall(await, t)
          return not ok2 and rawequal(err2, e)
        end)
        assert.is_true(ok)
        assert.is_true(err)
      end
    end)

    it("an Event set, a Lock released by a finalizer while a waiter enqueues, wakes it", function()
      local Future = require "asyncio.future"
      -- a full collection right when the waiter's future is made, as an
      -- allocation may run one
      local function collect_at_next_future(fn)
        debug.sethook(function()
          if debug.getinfo(2, "f").func == Future._new then
            debug.sethook()
            collectgarbage()
          end
        end, "c")
        local ok, err = pcall(fn)
        debug.sethook()
        return ok, err
      end
      support.run(function()
        local ev = asyncio.Event()
        setmetatable({}, {__gc = function() ev:set() end})
        assert.is_true(collect_at_next_future(function() await(asyncio.wait_for(ev:wait(), 5)) end))
        local lock = asyncio.Lock()
        await(lock:acquire())
        setmetatable({}, {__gc = function() lock:release() end})
        assert.is_true(collect_at_next_future(function() await(asyncio.wait_for(lock:acquire(), 5)) end))
        lock:release()
      end)
    end)
  end)

  describe("an error value whose __tostring raises", function()
    local bad = setmetatable({}, {__tostring = function() error("tostring exploded") end})

    it("still fails its task, reaches whoever awaits it, and is reported", function()
      local reports = {}
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function(_, ctx)
        reports[#reports + 1] = require("asyncio.util").describe(ctx.exception)
      end)
      loop:run_until_complete(asyncio.async(function()
        local t = asyncio.create_task(function() error(bad) end)
        local ok, err = pcall(await, t)
        assert.is_false(ok)
        assert.are.equal(bad, err)
        assert.matches("__tostring failed", t:traceback())
        local r = await(asyncio.gather(asyncio.create_task(function() error(bad) end),
          {return_exceptions = true}))
        assert.are.equal(bad, r[1])
        asyncio.create_task(function() error(bad) end)  -- never retrieved
        support.ticks(2)
      end)())
      collectgarbage()
      collectgarbage()
      loop:close()
      assert.are.same({"(a table whose __tostring failed)"}, reports)
      assert.matches("sub%-errors: %(a table whose __tostring failed%); plain",
        tostring(asyncio.ExceptionGroup("x", {bad, "plain"})))
      assert.are.equal("TimeoutError: (a table whose __tostring failed)",
        tostring(asyncio.TimeoutError(bad)))
    end)

    it("raised from asyncio.run's main comes out of asyncio.run", function()
      local ok, err = pcall(asyncio.run, function() error(bad) end)
      assert.is_false(ok)
      assert.are.equal(bad, err)
    end)
  end)

  describe("Ctrl-C", function()
    it("stops a task that computes without awaiting, and the lua5.4 REPL goes on", function()
      local out = support.lua_repl({
        'asyncio = require "asyncio"',
        'ok, err = pcall(asyncio.run, function() print("busy"); local x = 0; while true do x = x + 1 end end)',
        '--SIGINT-- busy',
        'print("after", ok, tostring(err))',
        'child = function() print("child busy"); while true do end end',
        'ok, err = pcall(asyncio.run, function() return asyncio.await(asyncio.create_task(child)) end)',
        '--SIGINT-- child busy',
        'print("after child", ok, tostring(err))',
        'spin = function() print("spinning"); while true do end end',
        'ok, err = pcall(asyncio.run, function() asyncio.create_task(spin); asyncio.await(asyncio.sleep(60)) end)',
        '--SIGINT-- spinning',
        'collectgarbage(); collectgarbage(); print("after spin", ok, tostring(err))',
        'print("again", asyncio.run(function() return 42 end))',
      })
      assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
      assert.matches("after child\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
      -- the task Ctrl-C landed in is not reported as an error never retrieved (newcomer review)
      assert.matches("after spin\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
      assert.is_nil(out:find("never retrieved", 1, true), out)
      assert.matches("again\t42", out)
      assert.matches("exit status 0\n$", out)
    end)

    it("a second Ctrl-C ends a process whose task swallows the first, as lua.c does", function()
      local out = support.lua_repl({
        'asyncio = require "asyncio"',
        'asyncio.run(function() print("stubborn"); while true do pcall(function() while true do end end) end end)',
        '--SIGINT-- stubborn',
        '--SIGINT-- stubborn',
        'print("not reached")',
      })
      assert.is_nil(out:find("not reached\n", 1, true))
      assert.matches("exit status 130\n$", out)
    end)

    it("stops the async REPL's busy line, and the REPL goes on", function()
      local out = support.async_repl({
        "expect > ",
        -- the output, not the echo of the typed line, must say it runs
        'line print("spin" .. "ning"); local x = 0; while true do x = x + 1 end',
        "expect spinning",
        "ctrl-c",
        "expect KeyboardInterrupt",
        "expect > ",
        "line print(6 * 7)",
        "expect 42",
        "expect > ",
        "ctrl-d",
      })
      assert.matches("KeyboardInterrupt: interrupted", out)
      assert.matches("\n42\r?\n", out)
      assert.matches("exit status 0\n$", out)
    end)

    it("stops run_until_complete and run_forever with KeyboardInterrupt; the loop can run again", function()
      local out = support.lua_repl({
        'asyncio = require "asyncio"',
        'loop = asyncio.new_event_loop()',
        'loop:call_soon(print, "waiting")',
        'ok, err = pcall(loop.run_until_complete, loop, asyncio.sleep(1000))',
        '--SIGINT-- waiting',
        'print("after", ok, tostring(err), loop:is_running(), loop:is_closed())',
        'loop:call_soon(print, "forever")',
        'loop:call_later(1000, print, "never")',
        'ok, err = pcall(loop.run_forever, loop)',
        '--SIGINT-- forever',
        'print("after forever", ok, tostring(err))',
        'print("again", loop:run_until_complete(asyncio.sleep(0, 42)))',
        'loop:close()',
        'print("closed", loop:is_closed())',
      })
      assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\tfalse\tfalse\n", out)
      assert.matches("after forever\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
      assert.matches("again\t42", out)
      assert.matches("closed\ttrue", out)
      assert.is_nil(out:find("Exception in callback", 1, true))
      assert.matches("exit status 0\n$", out)
    end)
  end)

  describe("unclosed loops", function()
    it("are closed when collected, reported, and never run the process out of descriptors", function()
      local out, code = support.lua_run([[
        local asyncio = require "asyncio"
        for _ = 1, 1000 do
          local loop = asyncio.new_event_loop()
          loop:run_until_complete(asyncio.sleep(0))
        end
        print("made 1000 loops")
      ]], "ulimit -n 64; ")
      assert.are.equal(0, code)
      assert.matches("made 1000 loops\n", out)
      local _, reports = out:gsub("asyncio: unclosed event loop", "")
      assert.are.equal(1000, reports)
    end)
  end)

  describe("a server out of descriptors", function()
    it("reports it, stops accepting for a moment and serves every queued client", function()
      local N = 150
      local portfile, log = os.tmpname(), os.tmpname()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
        local asyncio = require "asyncio"
        local await = asyncio.await
        asyncio.run(function()
          asyncio.get_running_loop():set_exception_handler(function(_, ctx)
            io.stderr:write("REPORT ", ctx.message, "\n")
          end)
          local served, done = 0, asyncio.Event()
          local srv = await(asyncio.start_server(function(r, w)
            local line = await(r:readline())
            await(asyncio.sleep(0.05))
            w:write(line)
            await(w:drain())
            w:close()
            served = served + 1
            if served == %d then done:set() end
          end, "127.0.0.1", 0, {backlog = 512}))
          local pf = io.open(%q, "w")
          pf:write(srv:sockets()[1]:getsockname()[2])
          pf:close()
          await(done:wait())
          srv:close()
          print("served", served)
        end)
      ]]):format(N, portfile))
      f:close()
      os.remove(portfile)
      local pid = support.spawn(("ulimit -n 64; %s %s"):format(support.LUA, script), log)
      local port
      for _ = 1, 600 do  -- a guard against a child that never starts, not a time bound
        local pf = io.open(portfile)
        port = pf and tonumber(pf:read("a"))
        if pf then pf:close() end
        if port then break end
        os.execute("sleep 0.05")
      end
      assert.is_number(port)
      local ok, echoes = pcall(support.run_within, 60, function()
        local clients = {}
        for i = 1, N do
          clients[i] = asyncio.create_task(function()
            local r, w = await(asyncio.open_connection("127.0.0.1", port))
            w:write("client " .. i .. "\n")
            local line = await(r:readline())
            w:close()
            return line
          end)
        end
        return await(asyncio.gather(clients))
      end)
      for _ = 1, 600 do
        if support.sh("kill -0 " .. pid .. " 2>/dev/null && echo alive") == "" then break end
        os.execute("sleep 0.05")
      end
      support.kill(pid, "KILL")
      assert(ok, echoes)
      local lf = assert(io.open(log))
      local out = lf:read("a")
      lf:close()
      for _, path in ipairs({portfile, log, script}) do os.remove(path) end
      for i = 1, N do assert.are.equal("client " .. i .. "\n", echoes[i]) end
      assert.matches("served\t" .. N, out)
      assert.matches("REPORT socket%.accept%(%) out of system resource", out)
    end)
  end)

  describe("bad subprocess arguments", function()
    local exec, shell = asyncio.create_subprocess_exec, asyncio.create_subprocess_shell

    it("are refused with bad argument errors, before anything runs", function()
      assert.has_error(function() exec("env", {env = {"PATH=/bin"}}) end,
        "bad argument #2 to 'create_subprocess_exec' (env names must be strings, got number " ..
        "(a list? env is {NAME = value}))")
      assert.has_error(function() exec("env", {env = {X = {}}}) end,
        "bad argument #2 to 'create_subprocess_exec' (env value of X must be a string or number, " ..
        "got table)")
      assert.has_error(function() exec("env", {env = {X = "a\0b"}}) end,
        "bad argument #2 to 'create_subprocess_exec' (env value of X has an embedded null byte)")
      assert.has_error(function() exec("env", {env = {["A=B"] = "x"}}) end,
        "bad argument #2 to 'create_subprocess_exec' (env name \"A=B\" is not valid)")
      assert.has_error(function() exec("echo", "a\0b") end,
        "bad argument #2 to 'create_subprocess_exec' (embedded null byte)")
      assert.has_error(function() exec("ec\0ho") end,
        "bad argument #1 to 'create_subprocess_exec' (program name has an embedded null byte)")
      assert.has_error(function() shell("echo a\0b") end,
        "bad argument #1 to 'create_subprocess_shell' (embedded null byte)")
      assert.has_error(function() shell("pwd", {cwd = "/\0tmp"}) end,
        "bad argument #2 to 'create_subprocess_shell' (cwd has an embedded null byte)")
    end)

    it("name the program's line", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(exec, "env", {env = {"PATH=/bin"}})
      assert.is_false(ok)
      assert.matches("^spec/issue18_spec%.lua:" .. line .. ": bad argument #2", err)
    end)

    it("numbers in env and argv are passed as strings", function()
      local out = support.run(function()
        local p = await(exec("sh", "-c", "echo $N $0", 42, {env = {N = 7}, stdout = "pipe"}))
        local text = await(p:communicate())
        return text
      end)
      assert.are.equal("7 42\n", out)
    end)
  end)

  describe("misuse errors", function()
    -- Each case is a one-line function making one mistake (not a tail
    -- call: its frame must stay): its error must name that very line of
    -- this file, and say which public function.
    local function check(cases)
      for _, case in ipairs(cases) do
        local name, fn, what = case[1], case[2], case[3]
        local line = debug.getinfo(fn, "S").linedefined
        local ok, err = pcall(fn)
        assert(not ok, name .. ": no error")
        assert(type(err) == "string", name .. ": not a string: " .. tostring(err))
        local at = err:match("^spec/issue18_spec%.lua:(%d+): ")
        assert(tonumber(at) == line, ("%s: raised at the wrong place (want line %d): %s")
          :format(name, line, err))
        assert(err:find(what, 1, true), ("%s: %q does not say %q"):format(name, err, what))
      end
    end

    it("outside a loop name the program's line", function()
      local q = asyncio.Queue()
      local loop = asyncio.new_event_loop()
      check({
        {"sleep", function() local _ = asyncio.sleep("x") end, "'sleep'"},
        {"sleep NaN", function() local _ = asyncio.sleep(0 / 0) end, "delay is NaN"},
        {"wait", function() local _ = asyncio.wait(5) end, "'wait'"},
        {"wait_for", function() local _ = asyncio.wait_for(5, 1) end, "'wait_for'"},
        {"timeout", function() local _ = asyncio.timeout(1, 5) end, "'timeout'"},
        {"as_completed", function() local _ = asyncio.as_completed(5) end, "'as_completed'"},
        {"Queue", function() local _ = asyncio.Queue(-1) end, "'Queue'"},
        {"task_done", function() q:task_done() end, "task_done() called too many times"},
        {"queue self", function() local _ = q.shutdown(5) end, "'shutdown'"},
        {"join self", function() local _ = q.join(5) end, "'join'"},
        {"Lock release", function() asyncio.Lock():release() end, "Lock.release"},
        {"Event self", function() asyncio.Event().set(5) end, "'set'"},
        {"Semaphore", function() local _ = asyncio.Semaphore(-1) end, "'Semaphore'"},
        {"create_task", function() local _ = asyncio.create_task(print) end, "'create_task'"},
        {"get_running_loop", function() local _ = asyncio.get_running_loop() end, "no running event loop"},
        {"run", function() local _ = asyncio.run(5) end, "'run'"},
        {"run options", function() local _ = asyncio.run(print, {clock = "x"}) end, "#2 to 'run'"},
        {"gather", function() local _ = asyncio.gather(1, 2) end, "'gather'"},
        {"Queue kind", function() local _ = asyncio.Queue("x") end, "'Queue'"},
        {"new_event_loop", function() local _ = asyncio.new_event_loop{clock = "x"} end, "'new_event_loop'"},
        {"call_soon", function() local _ = loop:call_soon(5) end, "'call_soon'"},
        {"call_later", function() local _ = loop:call_later("x", print) end, "'call_later'"},
        {"ssl_context", function() local _ = asyncio.ssl_context{mode = "x"} end, "ssl_context"},
        {"open_connection", function() local _ = asyncio.open_connection(5, 80) end, "'open_connection'"},
        {"start_server", function() local _ = asyncio.start_server(5, "127.0.0.1", 0) end, "'start_server'"},
        {"open_file", function() local _ = asyncio.open_file(5) end, "'open_file'"},
        {"open_udp", function() local _ = asyncio.open_udp(5) end, "'open_udp'"},
        {"exec", function() local _ = asyncio.create_subprocess_exec(5) end, "'create_subprocess_exec'"},
        {"mkdir", function() local _ = asyncio.fs.mkdir(5) end, "'mkdir'"},
        {"await outside", function() local _ = asyncio.await(asyncio.sleep(0)) end, "outside a running task"},
        {"add_signal_handler", function() loop:add_signal_handler("SIGINT", print) end, "SIGINT"},
      })
      loop:close()
      check({
        {"closed loop", function() local _ = loop:call_soon(print) end, "closed event loop"},
      })
    end)

    it("inside tasks, deep in the library, name the program's line", function()
      support.run(function()
        local srv = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0))
        local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        local ep = await(asyncio.open_udp{local_addr = {"127.0.0.1", 0}})
        local ep2 = await(asyncio.open_udp{remote_addr = {"127.0.0.1", 9}})
        local path = os.tmpname()
        local f = await(asyncio.open_file(path, "w"))
        local running = asyncio.get_running_loop()
        check({
          {"await", function() local _ = await(5) end, "'await'"},
          {"read", function() local _ = r:read("x") end, "'read'"},
          {"readexactly", function() local _ = r:readexactly(-1) end, "'readexactly'"},
          {"readuntil", function() local _ = r:readuntil("") end, "'readuntil'"},
          {"write", function() w:write(5) end, "'write'"},
          {"start_tls", function() local _ = w:start_tls(5) end, "'start_tls'"},
          {"sendto", function() ep:sendto("x", 5, 1) end, "'sendto'"},
          {"file read", function() local _ = f:read("x") end, "'read'"},
          {"close running", function() running:close() end, "cannot close a running event loop"},
          {"run running", function() running:run_forever() end, "cannot run an event loop"},
          {"reader self", function() local _ = r.read(5) end, "'read'"},
          {"stream loop", function() local _ = asyncio.run(function() end) end, "asyncio.run() cannot"},
        })
        w:close()
        ep:close()
        ep2:close()
        await(f:close())
        os.remove(path)
        check({
          {"write closed", function() w:write("x") end, "write: the stream is closed"},
          {"write_eof closed", function() w:write_eof() end, "write_eof: the stream is closed"},
          {"start_tls closed", function() await(w:start_tls(asyncio.ssl_context())) end,
            "start_tls: the stream is closed"},
          {"sendto closed", function() ep:sendto("x", "127.0.0.1", 9) end, "sendto: the endpoint is closed"},
          {"send closed", function() ep2:send("x") end, "send: the endpoint is closed"},
          {"file closed", function() local _ = f:read(1) end, "read: the file is closed"},
        })
        srv:close()
        await(srv:wait_closed())
      end)
    end)

    it("a huge read of a file reads to its end", function()
      local path = os.tmpname()
      local fh = assert(io.open(path, "w"))
      fh:write("small file")
      fh:close()
      local data = support.run(function()
        local f <close> = await(asyncio.open_file(path))
        return await(f:read(1 << 40))
      end)
      os.remove(path)
      assert.are.equal("small file", data)
    end)

    it("closing our own stream during start_tls is not blamed on the peer", function()
      support.run(function()
        local srv = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0))
        local _, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        local t = asyncio.create_task(function() await(w:start_tls(asyncio.ssl_context{verify = false})) end)
        support.ticks(2)
        w:close()
        local ok, err = pcall(await, t)
        assert.is_false(ok)
        assert.is_true(asyncio.ConnectionAbortedError:is(err), tostring(err))
        assert.matches("the stream was closed during the TLS handshake", tostring(err))
        srv:close()
        srv:close_clients()
        await(srv:wait_closed())
      end)
    end)

    it("a client_cb error is reported with client_cb's own traceback", function()
      local reports = {}
      local loop = asyncio.new_event_loop()
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
      local cb_line
      loop:run_until_complete(asyncio.async(function()
        local srv = await(asyncio.start_server(function(r)
          await(r:readline())
          cb_line = debug.getinfo(1, "l").currentline + 1
          error("handler failed")
        end, "127.0.0.1", 0))
        local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        w:write("hi\n")
        await(r:read())
        w:close()
        srv:close()
        await(srv:wait_closed())
      end)())
      collectgarbage()
      collectgarbage()
      loop:close()
      assert.are.equal(1, #reports)
      assert.matches("handler failed", reports[1].exception)
      -- the first frame below error() is client_cb's line
      local first = reports[1].traceback:match("\n%s*(spec/[^\n]*)")
      assert.matches("^spec/issue18_spec%.lua:" .. cb_line .. ":", first)
    end)
  end)
end)
