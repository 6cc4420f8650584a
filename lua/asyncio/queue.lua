-- queue.lua: the Lua face of the C queues (queue.c): constructors, the
-- awaitables that q:get() and q:put() return, join, and what a wake-up
-- means. A getter woken with true was handed its item; a putter woken with
-- true has a slot reserved; false: the queue was shut down; nothing: the
-- task was cancelled while waiting.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw

local raise_cancel, REFUSED, check_wait = task.raise_cancel, task.REFUSED, task.check_wait
local isyieldable = coroutine.isyieldable
local argcheck, typeerror = util.argcheck, util.typeerror
local methods = core.queue_methods
local setmetatable, error, pcall, mtype = setmetatable, error, pcall, math.type

local GET, PUT = 0, 1  -- the waiter lists of queue.c

-- The awaitable of a put that completed at once.
local DONE = task.DONE

-- the C methods of the hot paths, called directly (no lookup through the
-- queue's metatable on every item)
local try_get, try_put, put_woken, c_wait, unget, release = methods._try_get,
  methods._try_put, methods._put_woken, methods._wait, methods._unget, methods._release

-- While a task waits on a queue, the queue is its wait record (see
-- Task:cancel): cancelling the task removes it from the waiter list.
function methods._cancel_wait() return false end
function methods._abort_wait(q, t) q:_abort(t._co) end

-- Wait on 'q' as a getter or putter ('which') until woken; the queue is
-- the task's wait record meanwhile. Returns the wake-up values.
local function wait(q, which)
  local t = rt.current  -- await checked that a task runs
  if t._must_cancel then raise_cancel(t) end  -- cancelled while it ran
  t._waiting = q
  rt.current = false
  local woken, item = c_wait(q, which, t._loop._core)
  rt.current = t
  t._waiting = false
  if woken == REFUSED then raise(item) end
  return t, woken, item
end

local GetOp = {__name = "asyncio.Queue.get"}
-- Done at once if an item is there (true, item), else false: a time limit
-- needs no timer for what never waits (timeouts.lua's wait_for).
GetOp.__now = methods._op_now  -- try_get(op[1]), in C
function GetOp.__await(op)
  local q = op[1]
  local ok, item = try_get(q)
  if ok then return item end
  local t = rt.current  -- await checked that a task runs
  if t._must_cancel then  -- cancelled while it ran (a comparator's refusal first)
    if not isyieldable() then check_wait() end
    raise_cancel(t)
  end
  t._waiting = q  -- the wait, inlined: this is the hot path of a consumer
  rt.current = false
  -- where the task cannot wait (a sort comparator, say) the C core refuses
  -- before the getter is listed, with the words of check_wait
  ok, item = c_wait(q, GET, t._loop._core)
  rt.current = t
  t._waiting = false
  if ok == REFUSED then raise(item) end
  if t._must_cancel then
    -- the item goes to the next getter, or back to the front; if it cannot
    -- go back (a PriorityQueue whose 'less' fails), the get happened: the
    -- item is returned and the cancellation waits for the next await
    if not ok or pcall(unget, q, item) then raise_cancel(t) end
  end
  if not ok then throw(errors.QueueShutDown()) end
  return item
end

-- A put that had to wait: {queue, item, where it was made}. Dropped
-- without being awaited, its item never went in: that is reported.
local PutOp = {__name = "asyncio.Queue.put"}
PutOp.__index = PutOp
function PutOp._unawaited(op)
  return ("q:put(%s)%s was never awaited: the queue was full and the item was not put")
    :format(util.describe(op[2]), op[3] and " at " .. op[3] or "")
end
-- (marked: a finalized key stays in the weak set rt.unawaited until the
-- next collection, and the end of the run would report it again)
PutOp.__gc = function(op)
  if op._awaited then return end
  op._awaited = true
  rt.report_unawaited(nil, op:_unawaited())
end
function PutOp.__await(op)
  local q, item = op[1], op[2]
  if op._awaited then raise("await: this put was already awaited") end
  op._awaited = true
  if try_put(q, item) then return end
  if not isyieldable() then  -- refused before the putter is listed: as it was
    op._awaited = nil
    check_wait()
  end
  local t, woken = wait(q, PUT)
  if t._must_cancel then
    if woken then release(q) end  -- the reserved slot goes to the next putter
    raise_cancel(t)
  end
  if not woken then throw(errors.QueueShutDown()) end
  local done, err = pcall(put_woken, q, item)
  if not done then  -- the item could not be stored: the slot goes to the next putter
    release(q)
    error(err, 0)
  end
end

-- Debug mode: q:get() returns an object of its own, {queue, awaited,
-- where}, that is reported when it is collected without being awaited.
-- (Outside debug mode q:get() is the queue's one reusable operation, which
-- allocates nothing and so cannot tell a forgotten await.)
local DebugGetOp = {__name = "asyncio.Queue.get"}
function DebugGetOp.__await(op)
  op[2] = true
  return GetOp.__await(op)
end
function DebugGetOp.__now(op)
  op[2] = true
  return try_get(op[1])
end
function DebugGetOp.__forgo(op) op[2] = true end  -- handed to a task cancelled before it ran
DebugGetOp.__gc = function(op)
  if op[2] then return end
  op[2] = true
  rt.report_unawaited(nil, ("q:get()%s was never awaited: it took no item")
    :format(op[3] and " at " .. op[3] or ""))
end

local c_get = methods.get
local function debug_get(q)
  c_get(q)  -- its check of 'q'
  return setmetatable({q, false, util.where() or false}, DebugGetOp)
end
task.on_debug(function(on) methods.get = on and debug_get or c_get end)

task.register_awaitable(GetOp)
task.register_awaitable(DebugGetOp)
task.register_awaitable(PutOp)

-- QueueEmpty and QueueFull are what get_nowait/put_nowait answer when a
-- program polls: a traceback without names, cheaper (see util.stamp).
core.queue_config(PutOp, DONE, function(name)
  if name == "QueueShutDown" then throw(errors[name]()) end
  error(util.stamp(errors[name](), true), 0)
end, rt.unawaited)

-- join(): an awaitable done when every item put has been marked task_done.
local joiners = setmetatable({}, {__mode = "k"})  -- queue -> list of futures
local JoinOp = {__name = "asyncio.Queue.join"}
function JoinOp.__await(op)
  local q = op[1]
  if q:_unfinished() == 0 then return end
  check_wait()
  local list = joiners[q]
  if list == nil then list = {}; joiners[q] = list end
  local fut = Future._new(Future, rt.loop)
  list[#list + 1] = fut
  local ok, err = pcall(task.await, fut)
  if not ok then  -- cancelled (a time limit, say): its future leaves the list
    for i = #list, 1, -1 do
      if list[i] == fut then table.remove(list, i); break end
    end
    error(err, 0)
  end
end

local function wake_joiners(q)
  local list = joiners[q]
  if list == nil then return end
  joiners[q] = nil
  for _, fut in ipairs(list) do
    if not fut:done() then fut:set_result() end
  end
end

local c_task_done, c_shutdown = methods.task_done, methods.shutdown

local QUEUE_MT = getmetatable(core.new_queue("fifo", 0, nil, false))

function methods.join(q)
  if getmetatable(q) ~= QUEUE_MT then
    raise(("bad argument #1 to 'join' (%s)"):format(typeerror("asyncio.Queue", q)))
  end
  return setmetatable({q}, JoinOp)
end

function methods.task_done(q)
  if c_task_done(q) == 0 then wake_joiners(q) end
end

function methods.shutdown(q, immediate)
  if c_shutdown(q, immediate) == 0 and immediate then wake_joiners(q) end
end

local function constructor(kind, fname)
  local class = setmetatable({}, {__index = methods, __call = function(_, maxsize, less)
    argcheck(maxsize == nil or (mtype(maxsize) == "integer" and maxsize >= 0), 1, fname,
      maxsize ~= nil and type(maxsize) ~= "number" and typeerror("integer", maxsize) or
      "maxsize must be a non-negative integer")
    argcheck(less == nil or type(less) == "function", 2, fname, typeerror("function", less))
    local op = setmetatable({}, GetOp)
    local q = core.new_queue(kind, maxsize, less, op)
    op[1] = q
    task.register_instance(op)
    return q
  end})
  return class
end

return {
  Queue = constructor("fifo", "Queue"),
  LifoQueue = constructor("lifo", "LifoQueue"),
  PriorityQueue = constructor("priority", "PriorityQueue"),
}
