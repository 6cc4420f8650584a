-- queue.lua: the Lua face of the C queues (queue.c): constructors, the
-- awaitables that q:get() and q:put() return, join, and what a wake-up
-- means. A getter woken with true has an item reserved for it; with false,
-- the queue was shut down; with nil, it was cancelled while waiting.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"

local current, suspend, raise_cancel = task.current, task.suspend, task.raise_cancel
local argcheck, typeerror = util.argcheck, util.typeerror
local methods = core.queue_methods
local setmetatable, error, mtype = setmetatable, error, math.type

local GET, PUT = 0, 1  -- the waiter lists of queue.c

-- The awaitable of a put that completed at once.
local Done = {__name = "asyncio.done", __await = function() end}
local DONE = setmetatable({}, Done)

-- Wait on 'q' as a getter or putter ('which'); returns the wake-up value,
-- having raised CancelledError if the task was cancelled meanwhile. The
-- task's _wait_abort is the queue: Task:cancel calls q:_abort(co).
local function wait(q, which)
  local t = current()
  q:_wait(which, t._co, t._loop._core)
  t._wait_abort = q
  local woken = suspend(t)
  t._wait_abort = nil
  if t._must_cancel then
    if woken then q:_release(which) end  -- pass the reservation on
    raise_cancel(t)
  end
  if woken == false then error(errors.QueueShutDown(), 0) end
  return woken
end

-- the C methods of the hot paths, called directly (no lookup through the
-- queue's metatable on every item)
local try_get, take, try_put, put_woken = methods._try_get, methods._take,
  methods._try_put, methods._put_woken

local GetOp = {__name = "asyncio.Queue.get"}
function GetOp.__await(op)
  local q = op[1]
  local ok, item = try_get(q)
  if ok then return item end
  wait(q, GET)
  return take(q)
end

local PutOp = {__name = "asyncio.Queue.put"}
function PutOp.__await(op)
  local q, item = op[1], op[2]
  if op.awaited then error("await: this put was already awaited", 3) end
  op.awaited = true
  if try_put(q, item) then return end
  wait(q, PUT)
  put_woken(q, item)
end

core.queue_config(PutOp, DONE, function(name)
  error(errors[name](), 0)
end)

-- join(): an awaitable done when every item put has been marked task_done.
local joiners = setmetatable({}, {__mode = "k"})  -- queue -> list of futures
local JoinOp = {__name = "asyncio.Queue.join"}
function JoinOp.__await(op)
  local q = op[1]
  if q:_unfinished() == 0 then return end
  local list = joiners[q]
  if list == nil then list = {}; joiners[q] = list end
  local fut = Future._new(Future, rt.loop)
  list[#list + 1] = fut
  return task.await(fut)
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
    error(("bad argument #1 to 'join' (%s)"):format(typeerror("asyncio.Queue", q)), 2)
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
    return q
  end})
  return class
end

return {
  Queue = constructor("fifo", "Queue"),
  LifoQueue = constructor("lifo", "LifoQueue"),
  PriorityQueue = constructor("priority", "PriorityQueue"),
}
