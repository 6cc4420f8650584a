-- Worker threads: to_thread, worker_pool, run_in_executor (threads.lua,
-- worker.c, copy.c). Real threads, real Lua states; no clock is asserted:
-- what runs at once is shown by rendezvous that only threads running at
-- once can complete.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

-- How many threads this process has now.
local function threads()
  local f = assert(io.open("/proc/self/status"))
  local n = f:read("a"):match("Threads:%s*(%d+)")
  f:close()
  return tonumber(n)
end

-- Run in a worker: wait until file 'path' exists (polled, at most 'cap'
-- looks, 5 ms apart). Returns whether it appeared.
local function wait_file(path, cap)
  for _ = 1, cap or 4000 do
    local f = io.open(path)
    if f then f:close() return true end
    os.execute("sleep 0.005")
  end
  return false
end

local function touch(path)
  assert(io.open(path, "w")):close()
end

describe("to_thread", function()
  after_each(support.assert_clean)

  it("runs the function on a worker and results in its values, copied both ways", function()
    local got = table.pack(support.run(function()
      return await(asyncio.to_thread(function(a, b, t, s)
        local shared = {n = #t}
        return a + b, a / b, t.deep[1][1], s, #s, {shared, shared}, nil, math.maxinteger, true
      end, 7, 2, {deep = {{"x"}}}, "with\0nul", "z"))
    end))
    assert.equal(9, got.n)
    assert.equal(9, got[1])
    assert.equal("integer", math.type(got[1]))
    assert.equal(3.5, got[2])
    assert.equal("x", got[3])
    assert.equal("with\0nul", got[4])
    assert.equal(8, got[5])
    assert.equal(got[6][1], got[6][2])  -- one table on the way there, one on the way back
    assert.same({n = 0}, got[6][1])
    assert.is_nil(got[7])
    assert.equal(math.maxinteger, got[8])
    assert.is_true(got[9])
  end)

  it("copies a table that holds itself as one that holds itself", function()
    local ok = support.run(function()
      local t = {name = "loop"}
      t.self = t
      t[t] = "key"
      local back = await(asyncio.to_thread(function(x)
        return x.self == x and x[x] == "key" and x
      end, t))
      return back ~= t and back.self == back and back[back] == "key" and back.name == "loop"
    end)
    assert.is_true(ok)
  end)

  it("refuses what cannot be copied, naming the argument, at the caller's line", function()
    local msgs = {}
    support.run(function()
      local function try(...)
        local ok, err = pcall(...)
        assert.is_false(ok)
        msgs[#msgs + 1] = err
      end
      try(asyncio.to_thread, function() end, 1, print)
      try(asyncio.to_thread, function() end, {f = print})
      try(asyncio.to_thread, function() end, setmetatable({}, {}))
      try(asyncio.to_thread, function() end, io.stdout)
      try(asyncio.to_thread, function() end, coroutine.create(print))
      local up = 1
      try(asyncio.to_thread, function() return up end)
      try(asyncio.to_thread, print)
      try(asyncio.to_thread, "print")
      local deep = {}
      for _ = 1, 150 do deep = {deep} end
      try(asyncio.to_thread, function() end, deep)
    end)
    local line = "threads_spec.lua:%d+: "
    assert.matches(line .. "bad argument #3 to 'to_thread' %(a function cannot be copied", msgs[1])
    assert.matches("bad argument #2 to 'to_thread' %(a table holding a function cannot", msgs[2])
    assert.matches("#2 to 'to_thread' %(a table with a metatable cannot be copied", msgs[3])
    assert.matches("#2 to 'to_thread' %(a userdata cannot be copied", msgs[4])
    assert.matches("#2 to 'to_thread' %(a coroutine cannot be copied", msgs[5])
    assert.matches("#1 to 'to_thread' %(function uses upvalue 'up'", msgs[6])
    assert.matches("#1 to 'to_thread' %(a C function cannot be sent", msgs[7])
    assert.matches("#1 to 'to_thread' %(function expected, got string%)", msgs[8])
    assert.matches("#2 to 'to_thread' %(tables nested more than 100 deep", msgs[9])
  end)

  it("raises the function's error as a ThreadError with the value and the worker's traceback", function()
    local err, tableerr, badresult = support.run(function()
      local _, e1 = pcall(await, asyncio.to_thread(function()
        local function inner() error("boom") end
        inner()
      end))
      local _, e2 = pcall(await, asyncio.to_thread(function() error({code = 42}) end))
      local _, e3 = pcall(await, asyncio.to_thread(function() return 1, print end))
      return e1, e2, e3
    end)
    assert.is_true(asyncio.ThreadError:is(err))
    assert.matches("threads_spec.lua:%d+: boom$", err.message)
    assert.equal(err.message, err.value)
    assert.matches("threads_spec.lua:%d+: in local 'inner'", err.worker_traceback)
    assert.matches("ThreadError: .*boom\nin the worker thread: stack traceback:", tostring(err))
    assert.same({code = 42}, tableerr.value)
    assert.matches("result 2 of the worker's function is a function", badresult.message)
    assert.is_nil(badresult.value)
  end)

  it("an error value that cannot be copied back still gives its message", function()
    local err = support.run(function()
      local _, e = pcall(await, asyncio.to_thread(function()
        error(setmetatable({}, {__tostring = function() return "custom error" end}))
      end))
      return e
    end)
    assert.equal("custom error", err.message)
    assert.is_nil(err.value)
  end)

  it("runs calls at once on several threads while the loop goes on", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local met, ticks = support.run(function()
      local calls, running = {}, true
      local ticker = asyncio.create_task(function()
        local n = 0
        while running do await(asyncio.sleep(0.005)); n = n + 1 end
        return n
      end)
      -- each call says it is here, then waits for all three: only three
      -- threads running at the same time can all get past that
      for i = 1, 3 do
        calls[i] = asyncio.to_thread(function(d, me, code)
          local wait = load(code)
          assert(io.open(d .. "/" .. me, "w")):close()
          return wait(d .. "/1") and wait(d .. "/2") and wait(d .. "/3")
        end, dir, tostring(i), string.dump(wait_file))
      end
      local res = await(asyncio.gather(table.unpack(calls)))
      running = false
      return res, await(ticker)
    end)
    os.execute("rm -rf " .. dir)
    assert.same({true, true, true, n = 3}, met)
    assert.is_true(ticks >= 1)
  end)

  it("cancelling the waiting task: a call not yet started never runs; a running one is dropped", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local outcome = support.run(function()
      local pool = asyncio.worker_pool{size = 1}
      local wait = string.dump(wait_file)
      local first = asyncio.create_task(pool:call(function(d, w)
        assert(io.open(d .. "/started", "w")):close()
        return load(w)(d .. "/go")
      end, dir, wait))
      local second = asyncio.create_task(pool:call(function(d)
        assert(io.open(d .. "/second ran", "w")):close()
      end, dir))
      while not io.open(dir .. "/started") do await(asyncio.sleep(0.005)) end
      second:cancel()
      first:cancel()
      support.ticks(2)
      touch(dir .. "/go")
      -- the pool goes on: a third call runs after the first is done
      local third = await(pool:call(function() return "third" end))
      pool:close()
      return {first = first:cancelled(), second = second:cancelled(), third = third}
    end)
    local second_ran = io.open(dir .. "/second ran") ~= nil
    os.execute("rm -rf " .. dir)
    assert.same({first = true, second = true, third = "third"}, outcome)
    assert.is_false(second_ran)
  end)

  it("a call never awaited never runs, and is reported", function()
    local out = support.lua_run([[
      local asyncio = require "asyncio"
      do local _ = asyncio.to_thread(function() os.exit(3) end) end
      collectgarbage(); collectgarbage()
      print(asyncio.run(asyncio.async(function() return "end" end)))
    ]])
    assert.matches("to_thread%(...%) at [^\n]*:2 was never awaited: it never ran", out)
    assert.matches("\nend\n$", out)
  end)

  it("the end of asyncio.run joins the worker threads; a worker stuck past join_timeout is reported", function()
    local before = threads()
    local during = support.run(function()
      local pool = asyncio.worker_pool{size = 3}
      local calls = {}
      for i = 1, 30 do calls[i] = pool:call(function(x) return x * 2 end, i) end
      local r = await(asyncio.gather(table.unpack(calls)))
      assert.equal(60, r[30])
      return threads()
    end)
    assert.is_true(during > before)
    assert.equal(before, threads())
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      print(asyncio.run(asyncio.async(function()
        local pool = asyncio.worker_pool{size = 1, join_timeout = 0.1}
        asyncio.create_task(pool:call(function() while true do end end))
        asyncio.await(asyncio.sleep(0.05))
        return "main done"
      end)))
    ]])
    assert.equal(0, code)
    assert.matches("asyncio: worker_pool: 1 worker thread still running a call %(or init%) 0.1 s after "
      .. "the loop closed; left running", out)
    assert.matches("main done", out)
  end)
end)

describe("worker threads, after the review", function()
  after_each(support.assert_clean)

  it("a task cancelled before it awaits a call never runs it", function()
    local path = os.tmpname()
    os.remove(path)
    local cancelled = support.run(function()
      local t = asyncio.create_task(function()
        asyncio.current_task():cancel()
        await(asyncio.to_thread(function(p) assert(io.open(p, "w")):close() end, path))
      end)
      local ok, e = pcall(await, t)
      await(asyncio.to_thread(function() end))  -- the default pool's queue is empty after it
      return not ok and asyncio.CancelledError:is(e)
    end)
    local ran = io.open(path) ~= nil
    os.remove(path)
    assert.is_true(cancelled)
    assert.is_false(ran)
  end)

  it("a burst of calls starts as many threads as the pool may have: four that wait for each other all meet", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local met = support.run(function()
      local pool <close> = asyncio.worker_pool{size = 4}
      await(pool:call(function() end))  -- one idle thread: the next four must not all wait for it
      local calls = {}
      for i = 1, 4 do
        calls[i] = pool:call(function(d, me, code)
          local wait = load(code)
          assert(io.open(d .. "/" .. me, "w")):close()
          for k = 1, 4 do if not wait(d .. "/" .. k, 2000) then return false end end
          return true
        end, dir, tostring(i), string.dump(wait_file))
      end
      return await(asyncio.gather(calls))
    end)
    os.execute("rm -rf " .. dir)
    assert.same({true, true, true, true, n = 4}, met)
  end)

  it("says clearly what went wrong: awaited twice, C closures, many results, a failing __tostring", function()
    local twice, closure, many, badstr = support.run(function()
      local call = asyncio.to_thread(function() return 1 end)
      await(call)
      local _, e1 = pcall(await, call)
      local _, e2 = pcall(asyncio.to_thread, string.gmatch("a", "a"))
      local _, e3 = pcall(await, asyncio.to_thread(function() return table.unpack({}, 1, 20000) end))
      local _, e4 = pcall(await, asyncio.to_thread(function()
        local function raiser() error(setmetatable({}, {__tostring = function() error("no text") end})) end
        raiser()
      end))
      return e1, e2, e3, e4
    end)
    assert.matches("threads_spec.lua:%d+: await: to_thread%(...%) was already awaited", twice)
    assert.matches("#1 to 'to_thread' %(a C function cannot be sent", closure)
    assert.matches("returned 20000 values; at most 8000 come back", many.message)
    assert.equal("(error object is a table value)", badstr.message)
    assert.matches("in local 'raiser'", badstr.worker_traceback)
  end)

  it("a pool's workers require from the package.path of the pool's making", function()
    local path = support.run(function()
      local saved = package.path
      package.path = "/made/?.lua;" .. saved
      local pool <close> = asyncio.worker_pool{size = 1}
      package.path = "/first-call/?.lua;" .. saved
      local p = await(pool:call(function() return package.path end))
      package.path = saved
      return p
    end)
    assert.matches("^/made/%?%.lua;", path)
  end)

  it("a loop run inside a worker leaves Ctrl-C and signal handlers to the program's loop", function()
    local out = support.sh(support.LUA .. [[ -e '
      local asyncio = require "asyncio"
      local ok, err = pcall(asyncio.run, function()
        print(asyncio.await(asyncio.to_thread(function()
          local a = require "asyncio"
          return a.run(function()
            local ok, e = pcall(a.get_running_loop().add_signal_handler, a.get_running_loop(), "SIGUSR1", print)
            return tostring(ok) .. " " .. tostring(e)
          end)
        end)))
        io.stdout:flush()
        local pid = math.tointeger(io.open("/proc/self/stat"):read("n"))
        asyncio.await(asyncio.await(asyncio.create_subprocess_exec("kill", "-INT", pid)):wait())
        asyncio.await(asyncio.sleep(5))
        print("not interrupted")
      end)
      print(ok, asyncio.KeyboardInterrupt:is(err))' 2>&1]])
    assert.matches("false [^\n]*signal handlers belong to the program's own thread", out)
    assert.matches("\nfalse\ttrue\n$", out)
  end)

  it("every stuck pool is reported at the loop's close, and a host that closes its state goes on", function()
    local out = support.lua_run([[
      local asyncio = require "asyncio"
      asyncio.run(function()
        for _ = 1, 3 do
          local pool = asyncio.worker_pool{size = 1, join_timeout = 0.2}
          asyncio.create_task(pool:call(function() while true do end end))
        end
        asyncio.await(asyncio.sleep(0.05))
      end)
      print("closed")
    ]])
    local n = select(2, out:gsub("still running a call %(or init%) 0.2 s after the loop closed", ""))
    assert.equal(3, n)
    assert.matches("closed\n$", out)
    -- a C host whose worker outlives lua_close: the module stays loaded
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local f = assert(io.open(dir .. "/host.c", "w"))
    f:write([[
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <unistd.h>
int main (void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, "local asyncio = require 'asyncio' "
      "asyncio.run(function() local p = asyncio.worker_pool{size = 1, join_timeout = 0} "
      "asyncio.create_task(p:call(function() local t = os.clock() while os.clock() - t < 0.5 do end end)) "
      "asyncio.await(asyncio.sleep(0.05)) end)") != 0)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  usleep(1500000);  /* the worker comes back meanwhile */
  printf("host survived\n");
  return 0;
}
]])
    f:close()
    local built, code = support.sh(("cc %s/host.c $(pkg-config --cflags --libs lua5.4) -o %s/host")
      :format(dir, dir))
    assert.equal(0, code, built)
    local ran, rcode = support.sh(('LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" %s/host')
      :format(dir))
    os.execute("rm -rf " .. dir)
    assert.equal(0, rcode, ran)
    assert.matches("host survived", ran)
  end)
end)

describe("worker_pool", function()
  after_each(support.assert_clean)

  it("each worker keeps its Lua state: init runs once, calls see what it left", function()
    local seen = support.run(function()
      local pool <close> = asyncio.worker_pool{size = 1, init = function()
        counter = 100  -- luacheck: ignore (the worker's own global)
      end}
      local seen = {}
      for i = 1, 3 do
        seen[i] = await(pool:call(function() counter = counter + 1; return counter end))  -- luacheck: ignore
      end
      return seen
    end)
    assert.same({101, 102, 103}, seen)
  end)

  it("require in a worker looks where the program's require does", function()
    local name = support.run(function()
      return await(asyncio.to_thread(function() return require("asyncio.errors").Error.name end))
    end)
    assert.equal("Error", name)
  end)

  it("an init that fails breaks the pool: every call raises its error", function()
    local e1, e2 = support.run(function()
      local pool = asyncio.worker_pool{size = 2, init = function() error("no database", 0) end}
      local _, a = pcall(await, pool:call(function() return 1 end))
      local _, b = pcall(await, pool:call(function() return 2 end))
      pool:close()
      return a, b
    end)
    assert.is_true(asyncio.ThreadError:is(e1))
    assert.equal("worker_pool: init failed: no database", e1.message)
    assert.equal("worker_pool: init failed: no database", e2.message)
  end)

  it("close: calls in flight still come back, new ones are refused, closing twice is fine", function()
    local results, err = support.run(function()
      local pool = asyncio.worker_pool{size = 2}
      local tasks = {}
      for i = 1, 6 do tasks[i] = asyncio.create_task(pool:call(function(x) return x + 1 end, i)) end
      support.ticks(1)
      pool:close()
      pool:close()
      local _, e = pcall(pool.call, pool, function() end)
      return await(asyncio.gather(table.unpack(tasks))), e
    end)
    assert.same({2, 3, 4, 5, 6, 7, n = 6}, results)
    assert.matches("'call': the worker pool is closed", err)
  end)

  it("a pool collected without close lets its threads go", function()
    local before = threads()
    support.run(function()
      local pool = asyncio.worker_pool{size = 2}
      await(asyncio.gather(pool:call(function() return 1 end), pool:call(function() return 2 end)))
      pool = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      for _ = 1, 200 do
        if threads() == before then break end
        await(asyncio.sleep(0.01))
      end
    end)
    assert.equal(before, threads())
  end)

  it("refuses bad options and misuse clearly", function()
    local function err(fn, ...)
      local ok, e = pcall(fn, ...)
      assert.is_false(ok)
      return e
    end
    assert.matches("bad argument #1 to 'worker_pool' %(size must be an integer from 1 to 1024%)",
      err(asyncio.worker_pool, {size = 0}))
    assert.matches("size must be", err(asyncio.worker_pool, {size = "4"}))
    assert.matches("unknown option 'sise'", err(asyncio.worker_pool, {sise = 4}))
    assert.matches("%(init: function expected, got number%)", err(asyncio.worker_pool, {init = 5}))
    assert.matches("join_timeout must be", err(asyncio.worker_pool, {join_timeout = -1}))
    assert.matches("bad argument #1 to 'call' %(asyncio.WorkerPool expected",
      err(asyncio.WorkerPool.call, {}, function() end))
    local pool = asyncio.worker_pool{size = 1}
    support.run(function() assert.equal(1, await(pool:call(function() return 1 end))) end)
    local other = support.run(function()
      local _, e = pcall(await, pool:call(function() return 1 end))
      return e
    end)
    assert.matches("the worker pool belongs to a different event loop", other)
    pool:close()
    assert.matches("outside a running task", err(function()
      await(asyncio.to_thread(function() end))
    end))
  end)

  it("loop:run_in_executor runs on the default pool or the given one", function()
    local a, b = support.run(function()
      local loop = asyncio.get_running_loop()
      local pool <close> = asyncio.worker_pool{size = 1}
      local path = os.tmpname()
      os.remove(path)
      local started = loop:run_in_executor(nil, function(p) assert(io.open(p, "w")):close() end, path)
      assert.is_true(asyncio.isfuture(started))  -- as CPython's: running without an await
      while not started:done() do await(asyncio.sleep(0.005)) end
      local ran = io.open(path) ~= nil
      os.remove(path)
      assert.is_true(ran)
      return await(loop:run_in_executor(nil, function(x) return x .. "!" end, "default")),
        await(loop:run_in_executor(pool, function(x) return x .. "?" end, "pool"))
    end)
    assert.equal("default!", a)
    assert.equal("pool?", b)
  end)
end)

describe("worker threads, after the second review", function()
  after_each(support.assert_clean)

  it("a pool closed while its calls wait for a worker that could not start fails them (no crash)", function()
    -- spec/c/no_worker_states.c makes every worker's Lua state fail to start
    local so = os.tmpname() .. ".so"
    local out, code = support.sh(("cc -shared -fPIC -o %s spec/c/no_worker_states.c -ldl"):format(so))
    assert.equal(0, code, out)
    out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      asyncio.run(function()
        local pool = asyncio.worker_pool{size = 1}
        local t = asyncio.create_task(function() return await(pool:call(function() return 1 end)) end)
        await(asyncio.sleep(0))  -- t queues its call; the worker starts, and fails
        local t0 = os.clock()    -- the loop does not run meanwhile: the failure is not taken in
        while pool:info().threads > 0 and os.clock() - t0 < 30 do end
        pool:close()
        local ok, err = pcall(await, t)
        print(ok, tostring(err))
        collectgarbage()
      end)
      print("end")
    ]], "LD_PRELOAD=" .. so .. " ")
    os.remove(so)
    assert.equal(0, code, out)
    assert.matches("false\t[^\n]*ThreadError: worker_pool: cannot start a worker: not enough memory " ..
      "for a Lua state\nend\n$", out)
  end)

  it("a Ctrl-C while the loop's close waits for a call ends the wait (lua5.4 then stops)", function()
    local release = os.tmpname()  -- (never made: the call spins until the process ends)
    os.remove(release)
    local out = support.terminal_run([[
      local asyncio = require "asyncio"
      local loop = asyncio.new_event_loop()
      local pool = asyncio.worker_pool{size = 1, join_timeout = 1e6}
      loop:run_in_executor(pool, function(path)  -- spins until released (or 120 s)
        local t = os.time()
        while not io.open(path) and os.time() - t < 120 do end
      end, arg[1])
      loop:run_until_complete(asyncio.sleep(0.1))
      print("closing")
      loop:close()
      print("closed")
    ]], release, {"expect closing", "pause 0.5", "ctrl-c"})
    assert.matches("asyncio: worker_pool: 1 worker thread still running a call (or init) when Ctrl-C " ..
      "ended the loop's close; left running", out, 1, true)
    assert.matches("interrupted!", out, 1, true)  -- lua5.4's own handler, once the close returned
    assert.is_nil(out:find("closed\n", 1, true), out)
    assert.matches("exit status 1\n?$", out)
  end)

  it("a Ctrl-C at a close is not lost to loops that worker threads close meanwhile", function()
    local out = support.terminal_run([[
      local asyncio = require "asyncio"
      local loop = asyncio.new_event_loop()
      local pool = asyncio.worker_pool{size = 1, join_timeout = 1e6}
      loop:run_in_executor(pool, function()  -- closes loops of its own (or 120 s)
        local asyncio = require "asyncio"
        local t = os.time()
        while os.time() - t < 120 do asyncio.new_event_loop():close() end
      end)
      loop:run_until_complete(asyncio.sleep(0.1))
      print("closing")
      loop:close()
      print("closed")
    ]], "", {"expect closing", "pause 0.5", "ctrl-c"})
    assert.matches("when Ctrl-C ended the loop's close; left running", out, 1, true)
    assert.matches("interrupted!", out, 1, true)
    assert.matches("exit status 1\n?$", out)
  end)

  it("Ctrl-C still works after os.execute in a worker put the library's handler back late", function()
    -- C's system() restores, when its command ends, the SIGINT handler it
    -- found: here the library's, after the run that had it has ended
    local done = os.tmpname()
    os.remove(done)
    local out = support.terminal_run([[
      local asyncio = require "asyncio"
      local done = arg[1]
      asyncio.run(function()
        local pool = asyncio.worker_pool{size = 1, join_timeout = 0}  -- the close leaves it running
        asyncio.create_task(function()
          asyncio.await(pool:call(function(p) os.execute("sleep 0.3; touch " .. p) end, done))
        end)
        asyncio.await(asyncio.sleep(0.05))
      end)
      while not io.open(done) do end
      local t = os.clock()
      while os.clock() - t < 0.3 do end  -- system() has returned: its restore is done
      asyncio.run(function() end)  -- a run that finds the library's handler there takes it for ours
      print("ready")
      t = os.clock()
      while os.clock() - t < 30 do end
      print("Ctrl-C was lost")
    ]], done, {"expect ready", "ctrl-c"})
    os.remove(done)
    assert.matches("interrupted!", out, 1, true)
    assert.is_nil(out:find("Ctrl-C was lost", 1, true), out)
  end)

  it("os.execute in a worker answers as Lua's own does", function()
    local function results()
      local out = {}
      local function add(...)
        local t = table.pack(...)
        for i = 1, t.n do t[i] = tostring(t[i]) end
        out[#out + 1] = table.concat(t, ",")
      end
      add(os.execute())
      add(os.execute("true"))
      add(os.execute("exit 3"))
      add(os.execute("kill -INT $$"))
      add(os.execute("command_that_is_not_there_xyz 2>/dev/null"))
      add(pcall(os.execute, {}))
      return table.concat(out, " | ")
    end
    local here = results()
    assert.equal(here, support.run(function() return await(asyncio.to_thread(results)) end))
    assert.matches("^true | true,exit,0 | nil,exit,3 | nil,signal,2 | nil,exit,127 | false,", here)
  end)

  it("a Ctrl-C while a worker's os.execute runs its command reaches the loop and the command", function()
    -- (C's system() would have the whole process ignore it meanwhile)
    local out = support.terminal_run([[
      local asyncio = require "asyncio"
      local ok, err = pcall(asyncio.run, function()
        return asyncio.await(asyncio.to_thread(function() return os.execute("echo started; sleep 10") end))
      end)
      print("result", ok, tostring(err))
    ]], "", {"expect started", "pause 0.3", "ctrl-c"})
    assert.matches("result\tfalse\t[^\n]*KeyboardInterrupt", out)
    assert.matches("exit status 0\n?$", out)
  end)

  it("init's results are dropped: one that cannot be copied does not break the pool", function()
    local kind = support.run(function()
      local pool <close> = asyncio.worker_pool{size = 1, init = function()
        conn = io.tmpfile()  -- luacheck: ignore (the worker's global)
        return conn, print  -- luacheck: ignore
      end}
      return await(pool:call(function() return io.type(conn) end))  -- luacheck: ignore
    end)
    assert.equal("file", kind)
  end)

  it("initargs: its n is checked; a table with a metatable is named as such", function()
    local function msg(opts)
      local ok, e = pcall(asyncio.worker_pool, opts)
      assert.is_false(ok)
      return e
    end
    local init = function() end
    for _, n in ipairs{1.5, 1e8, "2", -5, 8001} do
      assert.matches("bad argument #1 to 'worker_pool' %(initargs.n must be an integer from 0 to 8000, got ",
        msg{init = init, initargs = {n = n, 1, 2}})
    end
    assert.matches("threads_spec.lua:%d+: bad argument #1 to 'worker_pool' %(initargs: a plain table " ..
      "expected, got one with a metatable%)", msg{init = init, initargs = setmetatable({}, {})})
    local got = support.run(function()
      local pool <close> = asyncio.worker_pool{size = 1, initargs = {n = 3, "a", nil, "c"},
        init = function(...) ARGS = table.pack(...) end}  -- luacheck: ignore
      return await(pool:call(function() return ARGS.n, ARGS[1], ARGS[3] end))  -- luacheck: ignore
    end)
    assert.equal(3, got)
  end)

  it("run_in_executor names itself and counts its arguments as written", function()
    local errs = support.run(function()
      local loop = asyncio.get_running_loop()
      local pool <close> = asyncio.worker_pool{size = 1}
      local list = {}
      for _, pool_arg in ipairs{false, pool} do
        local p = pool_arg or nil
        list[#list + 1] = select(2, pcall(loop.run_in_executor, loop, p, print))
        list[#list + 1] = select(2, pcall(loop.run_in_executor, loop, p, function() end, 1, print))
      end
      return list
    end)
    for i = 1, 3, 2 do
      assert.matches("bad argument #3 to 'run_in_executor' %(a C function cannot be sent", errs[i])
      assert.matches("bad argument #5 to 'run_in_executor' %(a function cannot be copied", errs[i + 1])
    end
  end)

  it("a function from stripped bytecode can be sent; an upvalue that is not the globals cannot", function()
    local floor = load(string.dump(function(x) return math.floor(x) end, true), "=stripped", "b")
    local x = 1
    local captured = load(string.dump(function() return x end, true), "=stripped", "b")
    debug.setupvalue(captured, 1, x)
    assert.equal(2, support.run(function() return await(asyncio.to_thread(floor, 2.5)) end))
    assert.has_error(function() asyncio.to_thread(captured) end, "bad argument #1 to 'to_thread' " ..
      "(function uses an upvalue (its name stripped), but a worker thread runs it in a Lua state " ..
      "of its own: pass the value as an argument)")
  end)

  it("pool:info counts a starting thread as neither idle nor running, and running calls after close", function()
    local release = os.tmpname()
    os.remove(release)
    local before, after = support.run(function()
      local pool = asyncio.worker_pool{size = 2}
      local calls = {}
      for i = 1, 2 do
        calls[i] = asyncio.create_task(function()
          return await(pool:call(function(p)
            local t = os.time()
            while not io.open(p) and os.time() - t < 60 do end
          end, release))
        end)
      end
      await(asyncio.sleep(0))
      local i = pool:info()  -- the threads may still be starting: each call is queued or running
      while pool:info().running < 2 do await(asyncio.sleep(0.005)) end
      pool:close()
      local closed = pool:info()
      touch(release)
      await(asyncio.gather(calls))
      return i, closed
    end)
    os.remove(release)
    assert.equal(2, before.running + before.queued)
    assert.same({threads = 2, idle = 0, queued = 0, running = 2}, after)
  end)
end)
