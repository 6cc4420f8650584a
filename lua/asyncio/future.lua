-- future.lua: Future, the result slot that tasks wait on. Completion hands
-- every waiter to the loop: a waiting task is woken, a done callback is
-- queued to be called with the future. Unretrieved errors are reported to
-- the loop's exception handler when the future is collected.

local errors = require "asyncio.errors"
local rt = require "asyncio.runtime"
local util = require "asyncio.util"
local raise = util.raise

local CancelledError = errors.CancelledError
local InvalidStateError = errors.InvalidStateError
local argcheck, unpack = util.argcheck, util.unpack
local setmetatable, select, error, type = setmetatable, select, error, type
local getmetatable = require("asyncio.core").metatable  -- raw, and cheaper than Lua's

local PENDING, CANCELLED, FINISHED = "PENDING", "CANCELLED", "FINISHED"

local Future = {__name = "asyncio.Future", __isfuture = true}
Future.__index = Future

-- A guard object whose finalizer reports an error nobody retrieved.
local Guard = {}
Guard.__gc = function(g)
  local fut = g[1]
  if fut._guard ~= g then return end  -- retrieved meanwhile
  if rawget(fut, "_dropped") then return end  -- reported as never awaited instead
  if rawget(fut, "_where") ~= nil and not fut._awaited then return end  -- so is a gather (its __gc)
  local loop = fut._loop or rt.loop
  local ctx = {message = (fut._is_task and "Task" or "Future") ..
                 " exception was never retrieved", failed = true,
               exception = fut._exc, future = fut, traceback = fut._tb}
  if loop then pcall(loop.call_exception_handler, loop, ctx)
  else pcall(rt.default_exception_handler, nil, ctx) end
end

local function newfuture(mt, loop)
  return setmetatable({_state = PENDING, _loop = loop or rt.loop}, mt)
end

-- The waiters and done callbacks: the first in _callbacks, any more in
-- the list _morecbs (most futures have exactly one: that saves a table).
-- Either may be nil or false (a task's constructor sets false: see spawn).
-- Each is a function (a done callback, queued on the loop), a task waiting
-- in await (woken), or an object of this library with _on_done(fut) (a
-- gather: told at once; it runs no user code).
-- The functions among them are the ones add_done_callback was given: kept
-- in a weak set, so that telling them apart costs a lookup, not a call.
local done_fns = setmetatable({}, {__mode = "k"})

local function add_callback(fut, cb)
  if not fut._callbacks and not fut._morecbs then fut._callbacks = cb; return end
  local more = fut._morecbs
  if not more then more = {}; fut._morecbs = more end
  more[#more + 1] = cb
end
Future._add_callback = add_callback

-- Remove the registrations of 'cb' (all, or the first if 'once'); how many.
local function remove_callback(fut, cb, once)
  local n = 0
  if fut._callbacks == cb and cb then
    fut._callbacks = false
    n = 1
    if once then return 1 end
  end
  local more = fut._morecbs
  if not more then return n end
  local j = 1
  for i = 1, #more do
    local x = more[i]
    if x == cb and not (once and n > 0) then n = n + 1 else more[j] = x; j = j + 1 end
  end
  for i = j, #more do more[i] = nil end
  return n
end

local function schedule_one(core, fut, cb)
  if done_fns[cb] then core:call_soon(cb, fut)  -- a function
  elseif cb._on_done then cb:_on_done(fut)
  else core:wake(cb._co) end  -- a task waiting in await
end

-- Hand every waiter and done callback to the loop; clear the list. Each
-- leaves the list only once it is handed over: if handing one over fails
-- (out of memory), a second call hands over the rest, each once.
local function schedule_callbacks(fut)
  local cb, more = fut._callbacks, fut._morecbs
  if not cb and not more then return end
  local loop = fut._loop or rt.loop
  if not loop then  -- a closed loop: the core itself refuses
    raise("Future has waiters but no event loop to run them")
  end
  local core = loop._core
  if cb then  -- schedule_one, inline: most futures have this one alone
    if done_fns[cb] then core:call_soon(cb, fut)
    elseif cb._on_done then cb:_on_done(fut)
    else core:wake(cb._co) end
    fut._callbacks = false
  end
  if more then
    for i = 1, #more do
      local x = more[i]
      if x then
        schedule_one(core, fut, x)
        more[i] = false
      end
    end
    fut._morecbs = false
  end
end
Future._schedule_callbacks = schedule_callbacks

-- Metatables seen to be futures' (__isfuture), so that the check is one lookup.
local future_mts = setmetatable({}, {__mode = "k"})

local function checkfuture(self, fname)
  local mt = getmetatable(self)
  if future_mts[mt] then return end
  if type(mt) == "table" and mt.__isfuture then
    future_mts[mt] = true
    return
  end
  raise(("bad argument #1 to '%s' (%s)"):format(fname,
    util.typeerror("asyncio.Future", self)))
end

function Future:done()
  checkfuture(self, "done")
  return self._state ~= PENDING
end

function Future:cancelled()
  checkfuture(self, "cancelled")
  return self._state == CANCELLED
end

-- Store the results: one value in _v alone (the common case: one field,
-- no table); otherwise their count in _n, and a list in _v if more than one.
local function store(self, n, ...)
  if n == 1 then self._v = ...
  else
    self._n = n
    if n > 1 then self._v = {...} end
  end
end

-- A future with waiters or done callbacks and no open loop to run them (it
-- was made outside any loop, or its loop is closed) cannot be completed:
-- refused before anything changes.
local function check_loop(self, fname)
  local loop = self._loop
  if loop and loop == rt.loop then return end  -- the running loop: open
  if not (self._callbacks or self._morecbs) then return end
  loop = loop or rt.loop
  if loop == nil or loop._core:is_closed() then
    raise(("%s: the future has waiters or done callbacks but no open event loop to run them")
      :format(fname))
  end
end

-- Finish with the 'n' results '...' (the state is known to be pending).
local function resolve(self, n, ...)
  store(self, n, ...)
  self._state = FINISHED
  schedule_callbacks(self)
end
Future._resolve = resolve

function Future:set_result(...)
  checkfuture(self, "set_result")
  if self._state ~= PENDING then
    raise(InvalidStateError("set_result: future is already done"))
  end
  check_loop(self, "set_result")
  resolve(self, select("#", ...), ...)
end

-- Record 'err' as the outcome; 'tb' a traceback string. 'err' may be nil
-- (a task's body ran error(nil)): _failed, not _exc, says it failed.
function Future:_set_exception(err, tb)
  local guard = setmetatable({self}, Guard)  -- first: what allocates comes before the state
  self._exc = err
  self._failed = true
  self._tb = tb
  self._guard = guard
  self._state = FINISHED
  schedule_callbacks(self)
end

function Future:set_exception(err)
  checkfuture(self, "set_exception")
  argcheck(err ~= nil, 1, "set_exception", "error value expected, got nil")
  if self._state ~= PENDING then
    raise(InvalidStateError("set_exception: future is already done"))
  end
  check_loop(self, "set_exception")
  self:_set_exception(err)
end

local function cancelled_error(self)
  local e = self._cancel_error
  if e == nil then
    e = CancelledError(self._cancel_message)
    self._cancel_error = e
  end
  return e
end
Future._cancelled_error = cancelled_error

-- The results, or raise the error (the same value that was set).
function Future:result()
  if not future_mts[getmetatable(self)] then checkfuture(self, "result") end
  local state = self._state
  if state == FINISHED then
    if self._failed then
      self._guard = nil
      error(self._exc, 0)
    end
    local n = self._n
    if not n then return self._v end
    if n == 0 then return end
    return unpack(self._v, 1, n)
  end
  checkfuture(self, "result")
  if state == CANCELLED then error(cancelled_error(self), 0) end
  raise(InvalidStateError("result is not set yet"))
end

-- Did it finish with an error? The one way to tell error(nil) from a nil
-- result: exception() returns nil for both.
function Future:failed()
  checkfuture(self, "failed")
  return self._failed == true
end

function Future:exception()
  checkfuture(self, "exception")
  if self._state == CANCELLED then raise(cancelled_error(self)) end
  if self._state == PENDING then
    raise(InvalidStateError("exception is not set yet"))
  end
  self._guard = nil
  return self._exc
end

function Future:cancel(msg)
  checkfuture(self, "cancel")
  if self._state ~= PENDING then return false end
  check_loop(self, "cancel")
  self._state = CANCELLED
  self._cancel_message = msg
  schedule_callbacks(self)
  return true
end

function Future:add_done_callback(fn)
  checkfuture(self, "add_done_callback")
  if type(fn) ~= "function" then
    argcheck(false, 1, "add_done_callback", util.typeerror("function", fn))
  end
  if self._state ~= PENDING then
    local loop = self._loop or rt.loop
    if loop == nil then raise("no running event loop to call the callback") end
    loop._core:call_soon(fn, self)
    return
  end
  if self._loop == nil then self._loop = rt.loop end
  done_fns[fn] = true
  add_callback(self, fn)
end

-- Remove every registration of 'fn'; return how many were removed.
function Future:remove_done_callback(fn)
  checkfuture(self, "remove_done_callback")
  return remove_callback(self, fn, false)
end

-- Register a task as a waiter: it is resumed when this future is done.
function Future:_add_waiter(task)
  if self._loop == nil then self._loop = task._loop end
  add_callback(self, task)
end

function Future:_remove_waiter(task)
  remove_callback(self, task, true)
end

function Future:get_loop()
  checkfuture(self, "get_loop")
  return self._loop
end

-- The task waiting on this future will never run again (task.lua's
-- abandon): the primitive that made the future (sync.lua) undoes the wait.
function Future:_abandon()
  local f = rawget(self, "_on_abandon")
  if f then f(self) end
end

function Future:__tostring()
  local s = self._state
  if s == FINISHED and self._failed then s = "FINISHED error" end
  return ("<%s %s>"):format(getmetatable(self).__name, s)
end

Future.PENDING, Future.CANCELLED, Future.FINISHED = PENDING, CANCELLED, FINISHED
Future._new = newfuture

return Future
