local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await
local ticks = support.ticks

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

describe("Queue", function()
  after_each(support.assert_clean)

  it("is first in, first out", function()
    local q = asyncio.Queue()
    for i = 1, 5 do q:put_nowait(i) end
    assert.equal(5, q:qsize())
    assert.same({1, 2, 3, 4, 5}, drain(q))
  end)

  it("keeps its order across ring wrap-around and growth", function()
    local q = asyncio.Queue()
    local expect, out = {}, {}
    for round = 1, 3 do
      for i = 1, 100 do q:put_nowait(round * 1000 + i); expect[#expect + 1] = round * 1000 + i end
      for _ = 1, 60 do out[#out + 1] = q:get_nowait() end
    end
    for _, v in ipairs(drain(q)) do out[#out + 1] = v end
    assert.same(expect, out)
  end)

  it("takes nil and any other Lua value as an item", function()
    local q = asyncio.Queue()
    local t = {}
    q:put_nowait(nil)
    q:put_nowait(false)
    q:put_nowait(t)
    assert.equal(3, q:qsize())
    assert.is_nil(q:get_nowait())
    assert.is_false(q:get_nowait())
    assert.equal(t, q:get_nowait())
  end)

  it("bounds put_nowait by maxsize and raises QueueFull/QueueEmpty", function()
    local q = asyncio.Queue(2)
    assert.equal(2, q:maxsize())
    q:put_nowait(1)
    q:put_nowait(2)
    assert.is_true(q:full())
    local ok, err = pcall(q.put_nowait, q, 3)
    assert.is_false(ok)
    assert.is_true(asyncio.QueueFull:is(err))
    assert.equal("spec/queue_spec.lua:51: QueueFull: queue is full", tostring(err))  -- where it was called
    drain(q)
    ok, err = pcall(q.get_nowait, q)
    assert.is_false(ok)
    assert.is_true(asyncio.QueueEmpty:is(err))
    assert.is_true(q:empty())
  end)

  it("is unbounded with maxsize 0 or nil", function()
    for _, q in ipairs({asyncio.Queue(), asyncio.Queue(0)}) do
      for i = 1, 1000 do q:put_nowait(i) end
      assert.is_false(q:full())
      assert.equal(0, q:maxsize())
    end
  end)

  it("blocks a getter until an item comes, then hands it over", function()
    local r = support.run(function()
      local q = asyncio.Queue()
      local t = asyncio.create_task(function() return await(q:get()) end)
      ticks(2)
      assert.is_false(t:done())
      q:put_nowait("item")
      return await(t)
    end)
    assert.equal("item", r)
  end)

  it("blocks a putter while full, then puts", function()
    local r = support.run(function()
      local q = asyncio.Queue(1)
      await(q:put("a"))
      local t = asyncio.create_task(function() await(q:put("b")) return "put" end)
      ticks(2)
      assert.is_false(t:done())
      assert.equal("a", await(q:get()))
      assert.equal("put", await(t))
      return q:get_nowait()
    end)
    assert.equal("b", r)
  end)

  it("wakes getters in the order they waited", function()
    local order = support.run(function()
      local q, got = asyncio.Queue(), {}
      local ts = {}
      for i = 1, 4 do
        ts[i] = asyncio.create_task(function()
          local v = await(q:get())
          got[#got + 1] = i .. v
        end)
      end
      ticks(2)
      for _, v in ipairs({"a", "b", "c", "d"}) do q:put_nowait(v) end
      await(asyncio.gather(table.unpack(ts)))
      return got
    end)
    assert.same({"1a", "2b", "3c", "4d"}, order)
  end)

  it("wakes putters in the order they waited, items in that order", function()
    local got = support.run(function()
      local q = asyncio.Queue(1)
      q:put_nowait(0)
      local ts = {}
      for i = 1, 3 do ts[i] = asyncio.create_task(function() await(q:put(i)) end) end
      ticks(2)
      local out = {}
      for _ = 1, 4 do out[#out + 1] = await(q:get()) end
      await(asyncio.gather(table.unpack(ts)))
      return out
    end)
    assert.same({0, 1, 2, 3}, got)
  end)

  it("does not let a new getter barge past a woken one", function()
    local got = support.run(function()
      local q = asyncio.Queue()
      local waiter = asyncio.create_task(function() return await(q:get()) end)
      ticks(2)
      q:put_nowait("x")                    -- reserved for 'waiter'
      assert.is_true(q:empty())
      assert.is_false(pcall(q.get_nowait, q))
      return await(waiter)
    end)
    assert.equal("x", got)
  end)

  it("join waits until every item is marked done", function()
    local log = support.run(function()
      local q, log = asyncio.Queue(), {}
      q:put_nowait(1)
      q:put_nowait(2)
      local j = asyncio.create_task(function() await(q:join()); log[#log + 1] = "joined" end)
      ticks(2)
      q:get_nowait(); q:task_done(); log[#log + 1] = "one done"
      ticks(2)
      q:get_nowait(); q:task_done(); log[#log + 1] = "two done"
      await(j)
      await(q:join())  -- nothing unfinished: returns at once
      return log
    end)
    assert.same({"one done", "two done", "joined"}, log)
  end)

  it("raises when task_done is called too often", function()
    local q = asyncio.Queue()
    q:put_nowait(1)
    q:get_nowait()
    q:task_done()
    assert.has_error(function() q:task_done() end, "task_done() called too many times")
  end)

  describe("shutdown", function()
    it("makes put raise QueueShutDown and get drain first", function()
      local q = asyncio.Queue()
      q:put_nowait(1)
      q:shutdown()
      local ok, err = pcall(q.put_nowait, q, 2)
      assert.is_false(ok)
      assert.is_true(asyncio.QueueShutDown:is(err))
      assert.equal(1, q:get_nowait())
      ok, err = pcall(q.get_nowait, q)
      assert.is_false(ok)
      assert.is_true(asyncio.QueueShutDown:is(err))
    end)

    it("drops the items at once when immediate and releases join", function()
      local r = support.run(function()
        local q = asyncio.Queue()
        q:put_nowait(1)
        q:put_nowait(2)
        local j = asyncio.create_task(function() await(q:join()) return "joined" end)
        ticks(2)
        q:shutdown(true)
        assert.equal(0, q:qsize())
        return await(j)
      end)
      assert.equal("joined", r)
    end)

    it("wakes blocked getters and putters with QueueShutDown", function()
      local r = support.run(function()
        local empty, full = asyncio.Queue(), asyncio.Queue(1)
        full:put_nowait(0)
        local g = asyncio.create_task(function() return await(empty:get()) end)
        local p = asyncio.create_task(function() return await(full:put(1)) end)
        ticks(2)
        empty:shutdown()
        full:shutdown()
        local _, e1 = pcall(await, g)
        local _, e2 = pcall(await, p)
        return {asyncio.QueueShutDown:is(e1), asyncio.QueueShutDown:is(e2)}
      end)
      assert.same({true, true}, r)
    end)
  end)

  describe("cancellation", function()
    it("of a waiting getter frees its place for the next", function()
      local r = support.run(function()
        local q = asyncio.Queue()
        local a = asyncio.create_task(function() return await(q:get()) end)
        local b = asyncio.create_task(function() return await(q:get()) end)
        ticks(2)
        a:cancel()
        q:put_nowait("only")
        return {pcall(await, a) == false, await(b)}
      end)
      assert.same({true, "only"}, r)
    end)

    it("of a getter after the item was handed to it passes the item on", function()
      local r = support.run(function()
        local q = asyncio.Queue()
        local a = asyncio.create_task(function() return await(q:get()) end)
        local b = asyncio.create_task(function() return await(q:get()) end)
        ticks(2)
        q:put_nowait("item")  -- reserved for a, a is scheduled
        a:cancel()            -- before a runs
        local ok = pcall(await, a)
        return {ok, await(b), q:qsize()}
      end)
      assert.same({false, "item", 0}, r)
    end)

    it("of a woken getter with no one waiting leaves the item in the queue", function()
      local r = support.run(function()
        local q = asyncio.Queue()
        local a = asyncio.create_task(function() return await(q:get()) end)
        ticks(2)
        q:put_nowait("item")
        a:cancel()
        pcall(await, a)
        return {q:qsize(), q:get_nowait()}
      end)
      assert.same({1, "item"}, r)
    end)

    it("of a waiting putter keeps its item out of the queue", function()
      local r = support.run(function()
        local q = asyncio.Queue(1)
        q:put_nowait("first")
        local p = asyncio.create_task(function() await(q:put("never")) end)
        ticks(2)
        p:cancel()
        pcall(await, p)
        return drain(q)
      end)
      assert.same({"first"}, r)
    end)

    it("of a woken putter keeps its item out and passes the slot on", function()
      local r = support.run(function()
        local q = asyncio.Queue(1)
        q:put_nowait("first")
        local p1 = asyncio.create_task(function() await(q:put("p1")) end)
        local p2 = asyncio.create_task(function() await(q:put("p2")) end)
        ticks(2)
        assert.equal("first", q:get_nowait())  -- slot reserved for p1
        p1:cancel()                             -- before p1 runs
        pcall(await, p1)
        await(p2)
        return drain(q)
      end)
      assert.same({"p2"}, r)
    end)
  end)

  describe("misuse", function()
    it("names the function and the argument", function()
      assert.has_error(function() asyncio.Queue.get(42) end,
        "bad argument #1 to 'get' (asyncio.Queue expected, got number)")
      assert.has_error(function() asyncio.Queue.put_nowait({}, 1) end,
        "bad argument #1 to 'put_nowait' (asyncio.Queue expected, got table)")
      assert.has_error(function() asyncio.Queue(-1) end,
        "bad argument #1 to 'Queue' (maxsize must be a non-negative integer)")
      assert.has_error(function() asyncio.Queue(1.5) end,
        "bad argument #1 to 'Queue' (maxsize must be a non-negative integer)")
      assert.has_error(function() asyncio.Queue("10") end,
        "bad argument #1 to 'Queue' (integer expected, got string)")
      assert.has_error(function() asyncio.PriorityQueue(0, 42) end,
        "bad argument #2 to 'PriorityQueue' (function expected, got number)")
    end)

    it("refuses await(q:get()) outside a task", function()
      local q = asyncio.Queue()
      assert.has_error(function() await(q:get()) end, "'await' called outside a running task")
    end)

    it("leaves a queue whose tasks were abandoned usable in the next run", function()
      local q = asyncio.Queue()
      asyncio.run(function()  -- asyncio.run: its clean-up is the point
        asyncio.create_task(function() await(q:get()) end)
        ticks(2)
      end)  -- the getter was cancelled at the end of run
      q:put_nowait("later")
      assert.equal("later", support.run(function() return await(q:get()) end))
    end)

    it("survives being dropped while tasks wait on it", function()
      support.run(function()
        local t = asyncio.create_task(function() await(asyncio.Queue():get()) end)
        ticks(2)
        collectgarbage()
        t:cancel()
        assert.is_false(pcall(await, t))
      end)
    end)
  end)
end)

describe("LifoQueue", function()
  it("is last in, first out", function()
    local q = asyncio.LifoQueue()
    for i = 1, 4 do q:put_nowait(i) end
    assert.same({4, 3, 2, 1}, drain(q))
  end)

  it("blocks and wakes like Queue", function()
    local r = support.run(function()
      local q = asyncio.LifoQueue(2)
      local t = asyncio.create_task(function() return await(q:get()) end)
      ticks(2)
      await(q:put("x"))
      return await(t)
    end)
    assert.equal("x", r)
  end)
end)

describe("PriorityQueue", function()
  it("gives the smallest first, equal ones in insertion order", function()
    local q = asyncio.PriorityQueue()
    local input = {5, 1, 4, 1, 3, 9, 2, 6}
    for _, v in ipairs(input) do q:put_nowait(v) end
    assert.same({1, 1, 2, 3, 4, 5, 6, 9}, drain(q))
    q = asyncio.PriorityQueue(0, function(a, b) return a[1] < b[1] end)
    for i, p in ipairs({2, 1, 2, 1, 2}) do q:put_nowait({p, i}) end
    local order = {}
    for _, e in ipairs(drain(q)) do order[#order + 1] = e[2] end
    assert.same({2, 4, 1, 3, 5}, order)
  end)

  it("always gives the smallest item, checked against a sorted list", function()
    math.randomseed(42)
    local q, ref = asyncio.PriorityQueue(), {}
    for i = 1, 1000 do
      local v = math.random(1, 100)
      q:put_nowait(v)
      ref[#ref + 1] = v
      if i % 3 == 0 then
        table.sort(ref)
        assert.equal(table.remove(ref, 1), q:get_nowait())
      end
    end
    table.sort(ref)
    assert.same(ref, drain(q))
  end)

  it("stays consistent when less raises", function()
    local q = asyncio.PriorityQueue(0, function(a, b)
      if a == "bad" or b == "bad" then error("cannot compare", 0) end
      return a < b
    end)
    q:put_nowait(3)
    q:put_nowait(1)
    local ok, err = pcall(q.put_nowait, q, "bad")
    assert.is_false(ok)
    assert.equal("cannot compare", err)
    assert.equal(2, q:qsize())
    assert.same({1, 3}, drain(q))
  end)

  it("raises Lua's error for incomparable items", function()
    local q = asyncio.PriorityQueue()
    q:put_nowait(1)
    local ok, err = pcall(q.put_nowait, q, {})
    assert.is_false(ok)
    assert.matches("attempt to compare", err)
    assert.equal(1, q:qsize())
  end)
end)
