-- What a review of the core found: awaiting where a task cannot yield (a
-- C function that called back into Lua) left a queue, a lock or the task
-- itself half waiting; and allocations in queue.c that let a finalizer
-- change the queue under the C code. Each spec failed before its fix.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local NOWAIT = "'await' cannot wait here: the task is inside a C function that called back " ..
  "into Lua (a table.sort comparator, a string.gsub function, a metamethod called from C " ..
  "such as __index, __lt or __gc, ...), across which it cannot yield"

-- Run 'fn' from inside a C function that calls back into Lua ('how'), and
-- return pcall's outcome, the error without its "file:line: " prefix.
local CALLBACKS = {
  sort = function(fn)
    table.sort({2, 1}, function(a, b) fn(); return a < b end)
  end,
  gsub = function(fn)
    string.gsub("a", "a", function() fn(); return "b" end)
  end,
  index_from_c = function(fn)  -- table.concat reads t[1] through lua_geti: __index from C
    table.concat(setmetatable({}, {__index = function() fn(); return "x" end}), "", 1, 1)
  end,
  lt_from_c = function(fn)  -- table.sort without a comparator compares through __lt from C
    local mt = {__lt = function() fn(); return false end}
    table.sort({setmetatable({}, mt), setmetatable({}, mt)})
  end,
}
local HOWS = {"sort", "gsub", "index_from_c", "lt_from_c"}

local function inside(how, fn)
  local ok, err = pcall(CALLBACKS[how], fn)
  if type(err) == "string" then err = err:gsub("^[^:\n]*:%d+: ", "") end
  return ok, err
end

describe("review of the core", function()
  after_each(support.assert_clean)

  describe("await where the task cannot yield", function()
    for _, how in ipairs(HOWS) do
      it("q:get() on an empty queue (" .. how .. ") raises and leaves no getter behind", function()
        support.run(function()
          local q = asyncio.Queue()
          local ok, err = inside(how, function() await(q:get()) end)
          assert.is_false(ok)
          assert.are.equal(NOWAIT, err)
          assert.are.same({0, 0}, {q:_waiting()})
          q:put_nowait("item")
          await(asyncio.sleep(0))
          assert.are.equal(1, q:qsize())
          assert.are.equal("item", await(q:get()))
        end)
      end)

      it("q:put() on a full queue (" .. how .. ") raises; the put can be awaited later", function()
        support.run(function()
          local q = asyncio.Queue(1)
          q:put_nowait(1)
          local op = q:put(2)
          local ok, err = inside(how, function() await(op) end)
          assert.is_false(ok)
          assert.are.equal(NOWAIT, err)
          assert.are.same({0, 0}, {q:_waiting()})
          assert.are.equal(1, q:get_nowait())
          await(asyncio.sleep(0))
          assert.are.equal(0, q:qsize())
          await(op)  -- not "already awaited": the refused await changed nothing
          assert.are.equal(2, q:get_nowait())
          assert.is_true(q:empty())
        end)
      end)
    end

    it("a get that needs no wait still works inside a comparator", function()
      support.run(function()
        local q = asyncio.Queue()
        q:put_nowait(7)
        local got
        local ok = inside("sort", function() got = await(q:get()) end)
        assert.is_true(ok)
        assert.are.equal(7, got)
      end)
    end)

    it("sleep(0) and sleep(d) raise, and leave no wake-up behind", function()
      support.run(function()
        for _, d in ipairs({0, 0.001}) do
          local ok, err = inside("gsub", function() await(asyncio.sleep(d)) end)
          assert.is_false(ok)
          assert.are.equal(NOWAIT, err)
          -- a stray wake-up would end this wait before the future is done
          local f = asyncio.Future()
          asyncio.create_task(function()
            for _ = 1, 3 do await(asyncio.sleep(0)) end
            await(asyncio.sleep(0.002))
            f:set_result("done")
          end)
          assert.are.equal("done", await(f))
        end
      end)
    end)

    it("a pending future raises, and does not wake the task later", function()
      support.run(function()
        local f, g = asyncio.Future(), asyncio.Future()
        local ok, err = inside("sort", function() await(f) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.is_false(f:done())
        asyncio.create_task(function()
          f:set_result("f")
          for _ = 1, 3 do await(asyncio.sleep(0)) end
          g:set_result("g")
        end)
        assert.are.equal("g", await(g))
        assert.are.equal("f", await(f))
      end)
    end)

    it("a task that was cancelled gets the cancellation at its next wait", function()
      support.run(function()
        local f = asyncio.Future()
        local t = asyncio.create_task(function()
          asyncio.current_task():cancel()
          local ok, err = inside("sort", function() await(f) end)
          assert.is_false(ok)
          assert.are.equal(NOWAIT, err)
          assert.is_false(f:cancelled())
          await(asyncio.sleep(0))
        end)
        assert.is_false(pcall(await, t))
        assert.is_true(t:cancelled())
      end)
    end)

    it("Lock:acquire() raises and leaves no waiter to take the lock", function()
      support.run(function()
        local lock = asyncio.Lock()
        local held, go = asyncio.Event(), asyncio.Event()
        local holder = asyncio.create_task(function()
          await(lock:acquire())
          held:set()
          await(go:wait())
          lock:release()
        end)
        await(held:wait())
        local ok, err = inside("lt_from_c", function() await(lock:acquire()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        go:set()
        await(holder)
        assert.is_false(lock:locked())
        await(lock:acquire())
        assert.is_true(lock:locked())
        lock:release()
      end)
    end)

    it("Semaphore:acquire() raises and no permit goes to a waiter that left", function()
      support.run(function()
        local sem = asyncio.Semaphore(0)
        local ok, err = inside("index_from_c", function() await(sem:acquire()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        sem:release()
        assert.is_false(sem:locked())
        await(sem:acquire())
        assert.is_true(sem:locked())
      end)
    end)

    it("Event:wait() raises, then waits normally", function()
      support.run(function()
        local ev = asyncio.Event()
        local ok, err = inside("sort", function() await(ev:wait()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        asyncio.create_task(function() ev:set() end)
        assert.is_true(await(ev:wait()))
      end)
    end)

    it("Condition:wait() raises with the lock still held and nobody let in", function()
      support.run(function()
        local cond = asyncio.Condition()
        await(cond:acquire())
        local other = asyncio.create_task(function()
          await(cond:acquire())
          cond:release()
          return "ran"
        end)
        await(asyncio.sleep(0))  -- it waits for the lock now
        local ok, err = inside("gsub", function() await(cond:wait()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.is_true(cond:locked())
        await(asyncio.sleep(0))
        assert.is_false(other:done())
        cond:release()
        assert.are.equal("ran", await(other))
      end)
    end)

    it("Barrier:wait() raises without counting the task in", function()
      support.run(function()
        local b = asyncio.Barrier(2)
        local ok, err = inside("sort", function() await(b:wait()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.are.equal(0, b:n_waiting())
      end)
    end)

    it("gather raises, and can still be awaited", function()
      support.run(function()
        local g = asyncio.gather(asyncio.sleep(0, "a"), asyncio.sleep(0, "b"))
        local ok, err = inside("sort", function() await(g) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.are.same({"a", "b", n = 2}, await(g))
      end)
    end)

    it("q:join(), wait_for, wait and task_group raise before they start anything", function()
      support.run(function()
        local q = asyncio.Queue()
        q:put_nowait(1)
        local ok, err = inside("sort", function() await(q:join()) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        local f = asyncio.Future()
        ok, err = inside("sort", function() await(asyncio.wait_for(f, 10)) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.is_false(f:done())
        ok, err = inside("sort", function() await(asyncio.wait({f})) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        local ran = false
        ok, err = inside("sort", function()
          await(asyncio.task_group(function(tg) ran = true; tg:create_task(asyncio.sleep(0)) end))
        end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.is_false(ran)
        q:get_nowait()
        q:task_done()
        await(q:join())
        f:set_result(1)
        assert.are.equal(1, await(asyncio.wait_for(f, 10)))
      end)
    end)

    it("a stream read raises and the reader still works", function()
      support.run(function()
        local srv = await(asyncio.start_server(function(_, w)
          await(asyncio.sleep(0.01))
          w:write("hello")
          await(w:drain())
          w:close()
          await(w:wait_closed())
        end, "127.0.0.1", 0))
        local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
        local ok, err = inside("sort", function() await(r:read(5)) end)
        assert.is_false(ok)
        assert.are.equal(NOWAIT, err)
        assert.are.equal("hello", await(r:readexactly(5)))
        w:close()
        await(w:wait_closed())
        srv:close()
        await(srv:wait_closed())
      end)
    end)
  end)

  describe("queue.c allocations and finalizers", function()
    -- Finalizers that put to and get from the queue while it grows: the
    -- only allocations of the put loop are the queue's own, so they run
    -- exactly there. Every item must come out once.
    local function churn(kind, mode)
      collectgarbage(table.unpack(mode))
      local lost, dup, fired = 0, 0, 0
      for round = 1, 40 do
        local q = asyncio[kind]()
        local fin_put, fin_got, hits, nextv = {}, {}, 0, -1e6 * round
        local live = true
        local function mk()
          setmetatable({}, {__gc = function()
            if not live then return end
            hits = hits + 1
            if hits % 2 == 1 then
              nextv = nextv - 1
              if pcall(q.put_nowait, q, nextv) then fin_put[#fin_put + 1] = nextv end
            else
              local ok, v = pcall(q.get_nowait, q)
              if ok then fin_got[#fin_got + 1] = v end
            end
          end})
        end
        for i = 1, 1000 do
          if i % 16 == 0 then mk() end
          q:put_nowait(i)
        end
        collectgarbage("stop")
        live = false
        local seen = {}
        local function see(v) if seen[v] then dup = dup + 1 end seen[v] = true end
        while not q:empty() do see(q:get_nowait()) end
        for _, v in ipairs(fin_got) do see(v) end
        for i = 1, 1000 do if not seen[i] then lost = lost + 1 end end
        for _, v in ipairs(fin_put) do if not seen[v] then lost = lost + 1 end end
        collectgarbage("restart")
        fired = fired + hits
      end
      collectgarbage("incremental", 200, 100, 13)  -- Lua 5.4's defaults
      return lost, dup, fired
    end

    for _, kind in ipairs({"Queue", "LifoQueue", "PriorityQueue"}) do
      for _, mode in ipairs({{"generational", 1, 1}, {"incremental", 1, 1000, 0}}) do
        it(("%s keeps every item when finalizers use it while it grows (%s)")
            :format(kind, mode[1]), function()
          -- (how many finalizers fire depends on the collector's state that
          -- earlier specs left: not asserted)
          local lost, dup = churn(kind, mode)
          assert.are.same({0, 0}, {lost, dup})
        end)
      end
    end

    it("shutdown(true) counts what a finalizer got meanwhile as unfinished", function()
      collectgarbage("generational", 1, 1)
      local bad = 0
      for _ = 1, 200 do
        local q = asyncio.Queue()
        for i = 1, 100 do q:put_nowait(i) end
        local got = 0
        setmetatable({}, {__gc = function() if pcall(q.get_nowait, q) then got = got + 1 end end})
        q:shutdown(true)
        collectgarbage("stop")
        if q:_unfinished() ~= got then bad = bad + 1 end
        collectgarbage("restart")
      end
      collectgarbage("incremental", 200, 100, 13)
      assert.are.equal(0, bad)
    end)
  end)
end)
