-- The misuse matrix: every public function and method, called with wrong
-- types, nil, a wrong self, on a closed loop, after shutdown... Each gets a
-- Lua error naming the function; the loop and the process go on.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

-- Strip "file:line: " from a Lua error message.
local function msg(err)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function fails_with(expected, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no error; expected: " .. expected)
  assert.equal(expected, msg(err))
end

local function bad(n, fname, what)
  return ("bad argument #%d to '%s' (%s)"):format(n, fname, what)
end

describe("misuse", function()
  after_each(support.assert_clean)

  it("of Future methods with a wrong self names the method", function()
    for _, name in ipairs({"done", "cancelled", "result", "exception", "cancel",
                           "set_result", "set_exception", "add_done_callback",
                           "remove_done_callback"}) do
      for _, self in ipairs({42, "str", {}, true}) do
        local got = type(self) == "table" and "table" or type(self)
        if type(self) == "boolean" then got = "boolean" end
        fails_with(bad(1, name, "asyncio.Future expected, got " .. got),
          asyncio.Future[name], self, 1)
      end
    end
  end)

  it("of Task methods with a wrong self names the method", function()
    for _, name in ipairs({"cancel", "cancelling", "uncancel", "get_name", "set_name",
                           "traceback", "get_coro"}) do
      fails_with(bad(1, name, "asyncio.Task expected, got number"), asyncio.Task[name], 42)
      fails_with(bad(1, name, "asyncio.Task expected, got asyncio.Future"),
        asyncio.Task[name], asyncio.Future())
    end
  end)

  it("of EventLoop methods with a wrong self names the method", function()
    for _, name in ipairs({"time", "call_soon", "call_later", "call_at", "create_task",
                           "create_future", "is_running", "is_closed", "stop", "close",
                           "run_forever", "run_until_complete", "set_exception_handler",
                           "get_exception_handler", "call_exception_handler"}) do
      fails_with(bad(1, name, "asyncio.EventLoop expected, got number"),
        asyncio.EventLoop[name], 42)
    end
  end)

  it("of a closed loop says so", function()
    local loop = asyncio.new_event_loop()
    loop:close()
    for _, case in ipairs({
      {"call_soon", function() loop:call_soon(print) end},
      {"call_later", function() loop:call_later(1, print) end},
      {"call_at", function() loop:call_at(1, print) end},
      {"create_task", function() loop:create_task(function() end) end},
      {"create_future", function() loop:create_future() end},
      {"run_forever", function() loop:run_forever() end},
      {"run_until_complete", function() loop:run_until_complete(asyncio.Future()) end},
      {"time", function() loop:time() end},
      {"stop", function() loop:stop() end},
    }) do
      fails_with(case[1] .. ": attempt to use a closed event loop", case[2])
    end
    assert.is_true(loop:is_closed())
    assert.is_false(loop:is_running())
  end)

  it("of Queue methods with a wrong self names the method", function()
    for _, name in ipairs({"put", "put_nowait", "get", "get_nowait", "qsize", "empty",
                           "full", "maxsize", "task_done", "join", "shutdown"}) do
      for _, class in ipairs({asyncio.Queue, asyncio.LifoQueue, asyncio.PriorityQueue}) do
        fails_with(bad(1, name, "asyncio.Queue expected, got number"), class[name], 42)
        fails_with(bad(1, name, "asyncio.Queue expected, got nil"), class[name], nil)
      end
    end
  end)

  it("of the synchronisation primitives with a wrong self names the method", function()
    local methods = {
      Event = {"set", "clear", "is_set", "wait"},
      Lock = {"acquire", "release", "locked"},
      Condition = {"acquire", "release", "locked", "wait", "wait_for", "notify", "notify_all"},
      Barrier = {"wait", "reset", "abort", "n_waiting", "broken"},
    }
    for class, names in pairs(methods) do
      for _, name in ipairs(names) do
        fails_with(bad(1, name, "asyncio." .. class .. " expected, got number"), asyncio[class][name], 42)
        fails_with(bad(1, name, "asyncio." .. class .. " expected, got nil"), asyncio[class][name])
        fails_with(bad(1, name, "asyncio." .. class .. " expected, got asyncio.Queue"),
          asyncio[class][name], asyncio.Queue())
      end
    end
    for _, class in ipairs({asyncio.Semaphore, asyncio.BoundedSemaphore}) do
      for _, name in ipairs({"acquire", "release", "locked"}) do
        fails_with(bad(1, name, "asyncio.Semaphore expected, got table"), class[name], {})
        fails_with(bad(1, name, "asyncio.Semaphore expected, got asyncio.Lock"), class[name], asyncio.Lock())
      end
    end
    support.run(function()
      await(asyncio.task_group(function(tg)
        fails_with(bad(1, "create_task", "asyncio.TaskGroup expected, got number"), tg.create_task, 42, print)
      end))
    end)
  end)

  it("of the combinators and time limits names the argument", function()
    fails_with(bad(1, "wait_for", "awaitable expected, got nil"), asyncio.wait_for)
    fails_with(bad(2, "wait_for", "delay is NaN"), asyncio.wait_for, asyncio.Future(), 0/0)
    fails_with(bad(1, "timeout", "number expected, got string"), asyncio.timeout, "1", print)
    fails_with(bad(2, "timeout", "function expected, got nil"), asyncio.timeout, 1)
    fails_with(bad(1, "wait", "list of futures expected, got nil"), asyncio.wait)
    fails_with(bad(2, "wait", "table expected, got number"), asyncio.wait, {}, 5)
    fails_with(bad(1, "as_completed", "list of futures expected, got string"), asyncio.as_completed, "x")
    fails_with(bad(2, "as_completed", "number expected, got string"),
      asyncio.as_completed, {asyncio.Future()}, {timeout = "soon"})
    fails_with(bad(1, "shield", "awaitable expected, got number"), asyncio.shield, 7)
    fails_with(bad(1, "task_group", "function expected, got nil"), asyncio.task_group)
    fails_with(bad(1, "Semaphore", "value must be a non-negative integer"), asyncio.Semaphore, -1)
    fails_with(bad(1, "BoundedSemaphore", "integer expected, got string"), asyncio.BoundedSemaphore, "2")
    fails_with(bad(1, "Barrier", "parties must be a positive integer"), asyncio.Barrier, 0)
    fails_with(bad(1, "Condition", "asyncio.Lock expected, got table"), asyncio.Condition, {})
    fails_with(bad(1, "wait_for", "function expected, got number"), asyncio.Condition().wait_for,
      asyncio.Condition(), 3)
  end)

  it("of the constructors and functions names the argument", function()
    fails_with(bad(1, "sleep", "number expected, got nil"), asyncio.sleep)
    fails_with(bad(1, "sleep", "number expected, got table"), asyncio.sleep, {})
    fails_with(bad(1, "async", "function expected, got nil"), asyncio.async, nil)
    fails_with(bad(1, "run", "coroutine object or function expected, got nil"), asyncio.run)
    fails_with(bad(1, "run", "coroutine object or function expected, got string"), asyncio.run, "main")
    fails_with(bad(1, "Queue", "maxsize must be a non-negative integer"), asyncio.Queue, 0/0)
    fails_with(bad(1, "LifoQueue", "integer expected, got table"), asyncio.LifoQueue, {})
    fails_with(bad(1, "PriorityQueue", "maxsize must be a non-negative integer"),
      asyncio.PriorityQueue, -3)
    fails_with("'await' called outside a running task", await, 42)
    fails_with("'await' called outside a running task", await, nil)
    fails_with("'create_task' called with no running event loop", asyncio.create_task, print)
    fails_with("'gather' called with no running event loop", asyncio.gather, asyncio.Future())
    fails_with("no running event loop", asyncio.get_running_loop)
  end)

  it("inside a task: wrong awaitables, awaiting twice, awaiting itself", function()
    support.run(function()
      for _, v in ipairs({42, "x", {}, print, true}) do
        local ok, err = pcall(await, v)
        assert.is_false(ok)
        assert.matches("^bad argument #1 to 'await' %(awaitable expected, got %a+%)$", msg(err))
      end
      local ok, err = pcall(await, nil)
      assert.is_false(ok)
      assert.equal(bad(1, "await", "awaitable expected, got nil"), msg(err))
      local c = asyncio.async(function() return 1 end)()
      assert.equal(1, await(c))
      ok, err = pcall(await, c)
      assert.is_false(ok)
      assert.matches("cannot reuse already awaited coroutine", msg(err))
      c = asyncio.async(function() end)()
      asyncio.create_task(c)
      ok, err = pcall(asyncio.create_task, c)
      assert.is_false(ok)
      assert.matches("cannot reuse already awaited coroutine", msg(err))
      ok, err = pcall(await, asyncio.current_task())
      assert.is_false(ok)
      assert.matches("a task cannot await itself", msg(err))
    end)
  end)

  it("in callbacks is reported, and the loop goes on", function()
    local got
    local after = support.run(function()
      local loop = asyncio.get_running_loop()
      got = support.capture(loop)
      local f = asyncio.Future()
      f:add_done_callback(function() asyncio.run(function() end) end)  -- run from a callback
      f:add_done_callback(function() loop:close() end)                 -- close from a callback
      f:set_result(1)
      loop:call_later(0.001, function() error("timer broke") end)
      loop:call_soon(function() error({code = 3}) end)
      await(asyncio.sleep(0.01))
      return "went on"
    end)
    assert.equal("went on", after)
    assert.equal(4, #got)
    local texts = {}
    for i, ctx in ipairs(got) do texts[i] = tostring(ctx.exception) end
    local all = table.concat(texts, "\n")
    assert.matches("asyncio.run%(%) cannot be called from a running event loop", all)
    assert.matches("cannot close a running event loop", all)
    assert.matches("timer broke", all)
    local found
    for _, ctx in ipairs(got) do if type(ctx.exception) == "table" then found = ctx.exception.code end end
    assert.equal(3, found)
  end)

  it("of task_done, release and the like leaves the object consistent", function()
    local q = asyncio.Queue(1)
    fails_with("task_done() called too many times", q.task_done, q)
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
    q:task_done()
    q:shutdown()
    local ok, err = pcall(q.put, q, 2)
    assert.is_false(ok)
    assert.is_true(asyncio.QueueShutDown:is(err))
    assert.equal(0, q:qsize())
  end)
end)
