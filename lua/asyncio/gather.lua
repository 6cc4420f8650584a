-- gather.lua: gather(aw1, aw2, ..., [opts]) and gather(list, [opts]), a
-- future over children whose result is the list of their first results,
-- in order. The gather is itself the done callback of every child: a
-- child's completion tells it at once (_on_done), with no closure per
-- child and no trip through the ready ring.

local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise = util.raise

local OPTIONS = {return_exceptions = true}

local PENDING, CANCELLED, FINISHED = Future.PENDING, Future.CANCELLED, Future.FINISHED
local add_callback, cancelled_error = Future._add_callback, Future._cancelled_error
local schedule_callbacks = Future._schedule_callbacks
local select, type = select, type
local getmetatable = require("asyncio.core").metatable  -- raw, and cheaper than Lua's

local GatheringFuture = setmetatable({__name = "asyncio.gather", __isfuture = true,
  __tostring = Future.__tostring}, {__index = Future})
GatheringFuture.__index = GatheringFuture

-- Cancelling a gather cancels its children; it ends with CancelledError.
function GatheringFuture:cancel(msg)
  if self._state ~= PENDING then return false end
  local ret = false
  local children = self._children
  for i = 1, self._count do
    if children[i]:cancel(msg) then ret = true end
  end
  if ret then
    self._cancel_requested = true
    self._cancel_message = msg
  end
  return ret
end

-- The outcome of a done child, as gather reports it with return_exceptions,
-- and whether it failed (an error, nil included, or a cancellation).
local function outcome(child)
  if child._state == CANCELLED then return cancelled_error(child), true end
  if child._failed then
    child._guard = nil
    return child._exc, true
  end
  local n = child._n
  if not n then return child._v end
  if n == 0 then return nil end
  return child._v[1]
end

-- All children are done: the list of outcomes, or the gather's cancellation.
local function complete(self)
  local n, children = self._count, self._children
  local results, failed = {n = n}, nil
  for i = 1, n do
    local child = children[i]
    if child._state == FINISHED and not child._failed then  -- outcome's common case, inline
      local cn = child._n
      if not cn then results[i] = child._v
      elseif cn > 0 then results[i] = child._v[1] end  -- (none: nil)
    else
      local v, bad = outcome(child)
      results[i] = v
      if bad then
        failed = failed or {}
        failed[i] = true
      end
    end
  end
  results.failed = failed
  if self._cancel_requested then
    self:_set_exception(errors.CancelledError(self._cancel_message))
  else
    Future._resolve(self, 1, results)
  end
end

-- A child is done (called by the child's completion, see future.lua). It
-- is counted last: if anything before runs out of memory, the child's
-- completion calls this again (see schedule_callbacks), and it must count
-- once.
function GatheringFuture:_on_done(child)
  local left = self._left - 1
  if self._state ~= PENDING then
    schedule_callbacks(self)  -- called again: the gather's own waiters not reached yet
  elseif not self._return_exceptions and child._state == CANCELLED then
    self:_set_exception(cancelled_error(child))
  elseif not self._return_exceptions and child._failed then
    self._from = child  -- the chain of an uncaught error goes on through it (init.lua)
    self:_set_exception(child._exc, child._tb)
  elseif left == 0 then
    complete(self)
  end
  self._left = left
  if child._state ~= CANCELLED then child._guard = nil end  -- its outcome reached the gather
end

-- A gather the program made (gather(), not the library's own) and never
-- awaited nor looked at: its results and errors are lost, and at the end
-- of asyncio.run that is reported (rt.report_dropped) instead of the
-- CancelledError its children then get. Awaiting it, a done callback (wait,
-- shield, as_completed use one), result() or exception() look at it.
local function looked_at(self) self._awaited = true end
function GatheringFuture.__await(self)
  if self._state == PENDING then task.check_wait() end  -- refused: still not awaited
  looked_at(self)
  return Future.__await(self)
end
function GatheringFuture:add_done_callback(fn)
  looked_at(self)
  return Future.add_done_callback(self, fn)
end
function GatheringFuture:result()
  looked_at(self)
  return Future.result(self)
end
function GatheringFuture:exception()
  looked_at(self)
  return Future.exception(self)
end
-- Collected before the end of the run (done, and nobody kept it): said
-- now. The gathers the library makes for itself (no _where) never are.
GatheringFuture.__gc = function(g)
  if rawget(g, "_where") == nil or g._awaited then return end
  g._awaited = true
  rt.report_unawaited(g._loop, g:_unawaited())
end
function GatheringFuture:_unawaited()
  local n = self._count
  return ("asyncio.gather(...)%s was never awaited: %s lost"):format(
    self._where and " at " .. self._where or "", n == 1 and "the result or error of its 1 " ..
    "awaitable is" or ("the results and errors of its %d awaitables are"):format(n))
end

-- Every method of Future copied in, no class above: see task.lua's Task.
for k, v in pairs(Future) do
  if rawget(GatheringFuture, k) == nil then GatheringFuture[k] = v end
end
setmetatable(GatheringFuture, nil)
task.register_awaitable(GatheringFuture)

-- gather over the 'n' futures of 'children' on 'loop'.
local function gather_futures(loop, children, n, return_exceptions)
  local outer = Future._new(GatheringFuture, loop)
  outer._children, outer._count, outer._left = children, n, n
  outer._return_exceptions = return_exceptions
  if n == 0 then
    Future._resolve(outer, 1, {n = 0})
    return outer
  end
  local pending = 0
  for i = 1, n do
    local child = children[i]
    if child._state == PENDING then
      if not child._loop then child._loop = loop end
      if not child._callbacks and not child._morecbs then child._callbacks = outer
      else add_callback(child, outer) end
      pending = pending + 1
    end
  end
  -- children already done are counted now, in order, as if they had just finished
  if pending < n then
    for i = 1, n do
      local child = children[i]
      if child._state ~= PENDING and outer._state == PENDING then outer:_on_done(child) end
    end
  end
  return outer
end

-- The futures for 'n' awaitables in 'list' (coroutine objects become tasks).
local function futures_of(list, n)
  local loop, Task, Coro = rt.loop, task.Task, task.Coro
  local children = {}
  for i = 1, n do
    local aw = list[i]
    local mt = getmetatable(aw)
    local fut = aw
    if mt ~= Task then
      fut = task.ensure_future(aw, "gather", i, loop)  -- a coroutine object's is a task
      if mt ~= Coro and getmetatable(fut) == GatheringFuture then
        looked_at(fut)  -- its outcome reaches this one
      end
    end
    loop = loop or fut._loop
    children[i] = fut
    if fut._loop ~= loop and fut._loop and fut._state == PENDING then
      -- refused; the tasks made here for coroutine objects are cancelled unrun
      for j = 1, i - 1 do
        if getmetatable(list[j]) == Coro then children[j]:cancel() end
      end
      task.check_same_loop(fut, loop, "gather")
    end
  end
  if loop == nil then raise("'gather' called with no running event loop") end
  return loop, children
end

-- gather(aw1, aw2, ..., [opts]) or gather(list, [opts]): the first argument
-- is a list when it is a plain table (an awaitable has a metatable). The
-- options, a plain table after the awaitables: {return_exceptions = true}.
local function gather(...)
  local nargs = select("#", ...)
  local first = ...
  local list, n, opts
  if type(first) == "table" and getmetatable(first) == nil and nargs <= 2 and
     (nargs == 1 or select(2, ...) == nil or
      (type(select(2, ...)) == "table" and getmetatable((select(2, ...))) == nil)) then
    list, opts = first, select(2, ...)
    n = #list
  else
    list, n = {...}, nargs  -- one copy: select(i, ...) in a loop would be quadratic
    local last = list[n]
    if n > 0 and type(last) == "table" and getmetatable(last) == nil then
      opts = last
      list[n] = nil
      n = n - 1
    end
  end
  if opts ~= nil then  -- gather({a}, {b}) meant two lists: refused as options
    util.checkopts(opts, OPTIONS, list == first and 2 or nargs, "gather")
  end
  local return_exceptions = opts ~= nil and opts.return_exceptions and true or false
  local loop, children = futures_of(list, n)
  local g = gather_futures(loop, children, n, return_exceptions)
  g._where = util.where() or false  -- not nil: made by the program (see __gc)
  rt.unawaited[g] = true
  return g
end

return {gather = gather, gather_futures = gather_futures, GatheringFuture = GatheringFuture}
