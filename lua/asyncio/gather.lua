-- gather.lua: gather(aw1, aw2, ..., [opts]), a future over children whose
-- result is the list of their first results, in argument order.

local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"

local PENDING = Future.PENDING

local GatheringFuture = setmetatable({__name = "asyncio.gather", __isfuture = true,
  __await = Future.__await, __tostring = Future.__tostring}, {__index = Future})
GatheringFuture.__index = GatheringFuture

-- Cancelling a gather cancels its children; it ends with CancelledError.
function GatheringFuture:cancel(msg)
  if self._state ~= PENDING then return false end
  local ret = false
  for _, child in ipairs(self._children) do
    if child:cancel(msg) then ret = true end
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
  if child._state == "CANCELLED" then return Future._cancelled_error(child), true end
  if child._failed then
    child._guard = nil
    return child._exc, true
  end
  local n = child._n
  if n == nil then return child._v end
  if n == 0 then return nil end
  return child._v[1]
end

-- gather over the 'n' futures of 'children' on 'loop'.
local function gather_futures(loop, children, n, return_exceptions)
  local outer = Future._new(GatheringFuture, loop)
  outer._children = children
  if n == 0 then
    outer:set_result({n = 0})
    return outer
  end
  local nfinished = 0
  local function on_child_done(child)
    nfinished = nfinished + 1
    if outer._state ~= PENDING then
      if child._state ~= "CANCELLED" then child._guard = nil end
      return
    end
    if not return_exceptions then
      if child._state == "CANCELLED" then
        outer:_set_exception(Future._cancelled_error(child))
        return
      elseif child._failed then
        child._guard = nil
        outer:_set_exception(child._exc, child._tb)
        return
      end
    end
    if nfinished == n then
      local results, failed = {n = n}, nil
      for i = 1, n do
        local v, bad = outcome(children[i])
        results[i] = v
        if bad then
          failed = failed or {}
          failed[i] = true
        end
      end
      results.failed = failed
      if outer._cancel_requested then
        outer:_set_exception(errors.CancelledError(outer._cancel_message))
      else
        outer:set_result(results)
      end
    end
  end
  for i = 1, n do children[i]:add_done_callback(on_child_done) end
  return outer
end

local function gather(...)
  local n = select("#", ...)
  local last = n > 0 and select(n, ...) or nil
  local return_exceptions = false
  if type(last) == "table" and getmetatable(last) == nil then
    return_exceptions = last.return_exceptions and true or false
    n = n - 1
  end
  local loop = rt.loop
  local children = {...}  -- one copy: select(i, ...) in the loop would be quadratic
  children[n + 1] = nil
  for i = 1, n do
    local fut = task.ensure_future(children[i], "gather", i, loop)
    loop = loop or fut._loop
    children[i] = fut
  end
  if loop == nil then error("'gather' called with no running event loop", 2) end
  return gather_futures(loop, children, n, return_exceptions)
end

return {gather = gather, gather_futures = gather_futures, GatheringFuture = GatheringFuture}
