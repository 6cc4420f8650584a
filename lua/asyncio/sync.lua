-- sync.lua: Event, Lock, Semaphore, BoundedSemaphore, Condition, Barrier.
-- Each waiter waits on a future of its own, woken in FIFO order; a waiter
-- cancelled after it was woken passes its wake-up on, so nobody is left
-- waiting (asyncio 3.13 semantics). Locks have no owner.

local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw

local CancelledError, BrokenBarrierError = errors.CancelledError, errors.BrokenBarrierError
local await = task.await
local argcheck, typeerror = util.argcheck, util.typeerror
local setmetatable, error, pcall, type = setmetatable, error, pcall, type

local M = {}

-- A class table whose instances check 'self' by metatable.
local function class(name)
  local cls = {__name = "asyncio." .. name}
  cls.__index = cls
  cls.__tostring = function(self) return ("<asyncio.%s%s>"):format(name, self:_describe()) end
  return cls
end

local checkself = util.checkself

local function remove(list, x)
  for i = 1, #list do if list[i] == x then table.remove(list, i) return end end
end

-- Wait on a new future appended to 'waiters' of primitive 'what' (named
-- in task dumps); remove it whatever happens. Returns true, or false plus
-- the error (cancellation) with the future. Making the future and the room
-- for it may run a collection, and so a finalizer that sets the event or
-- releases the lock after the caller looked: 'enqueued(fut)', if given, is
-- asked once the future is in the list, and the wait is skipped (true) if
-- it says there is no need any more. (Condition releases its lock there.)
-- 'on_abandon(fut)' undoes the wait if the task never runs again.
local function wait_in(waiters, what, enqueued, on_abandon)
  task.check_wait()  -- where the task cannot yield: refused with nothing changed
  local fut = Future._new(Future, rt.loop)
  fut._what = what
  fut._on_abandon = on_abandon  -- its task closed by hand (Future:_abandon)
  waiters[#waiters + 1] = fut
  if enqueued and not enqueued(fut) then
    remove(waiters, fut)
    return true, nil, fut
  end
  local ok, err = pcall(await, fut)
  remove(waiters, fut)
  return ok, err, fut
end

-- Is any waiter of 'list' but 'fut' still waiting or woken (not cancelled)?
local function others(list, fut)
  for _, w in ipairs(list) do if w ~= fut and not w:cancelled() then return true end end
  return false
end

-- Awaitables that are already done: what acquire() returns on its fast path.
-- (__isdone: see task.isdone)
local Ready = {__name = "asyncio.ready", __await = function(r) return r[1] end, __isdone = true}
local TRUE = setmetatable({true}, Ready)
local NOTHING = setmetatable({}, {__name = "asyncio.done", __await = function() end,
  __isdone = true})

-- Something to hold with <close>: released at scope exit, errors included.
local Held = {__name = "asyncio.held"}
Held.__index = Held
Held.__close = function(h) h[1]:release() end


-- Event ---------------------------------------------------------------------

local Event = class("Event")
M.Event = setmetatable({}, {__index = Event, __call = function()
  return setmetatable({_value = false, _waiters = {}}, Event)
end})

function Event:is_set()
  checkself(Event, self, "is_set")
  return self._value
end

function Event:set()
  checkself(Event, self, "set")
  if self._value then return end
  self._value = true
  for _, fut in ipairs(self._waiters) do
    if not fut:done() then fut:set_result(true) end
  end
end

function Event:clear()
  checkself(Event, self, "clear")
  self._value = false
end

local EventWait = {__name = "asyncio.Event.wait", __await = function(op)
  local ev = op[1]
  if ev._value then return true end
  local ok, err = wait_in(ev._waiters, "Event", function() return not ev._value end,
    function(fut) remove(ev._waiters, fut) end)
  if not ok then error(err, 0) end
  return true
end}

-- wait(): an awaitable that returns true once the event is set.
function Event:wait()
  checkself(Event, self, "wait")
  if self._value then return TRUE end
  return setmetatable({self}, EventWait)
end

function Event:_describe() return self._value and " set" or " unset" end


-- Lock ----------------------------------------------------------------------

local Lock = class("Lock")
M.Lock = setmetatable({}, {__index = Lock, __call = function()
  return setmetatable({_locked = false, _waiters = {}}, Lock)
end})

local function wake_first(waiters)
  local fut = waiters[1]
  if fut ~= nil and not fut:done() then fut:set_result(true) end
end

-- Nobody may take the lock on the fast path while a woken waiter exists.
local function lock_free(lock)
  if lock._locked then return false end
  for _, w in ipairs(lock._waiters) do if not w:cancelled() then return false end end
  return true
end

-- An acquire is {lock or semaphore, where it was made, awaited}: dropped
-- without being awaited, nothing was taken, and its finalizer says so.
local function acquire_class(name, what, fn)
  local cls = {__name = "asyncio." .. name}
  cls.__await = function(op)
    op[3] = true
    return fn(op)
  end
  cls.__forgo = function(op) op[3] = true end  -- handed to a task cancelled before it ran
  cls.__gc = function(op)
    if op[3] then return end
    rt.report_unawaited(nil, ("%s()%s was never awaited: the %s was not taken"):format(name,
      op[2] and " at " .. op[2] or "", what))
  end
  return cls
end

local LockAcquire = acquire_class("Lock.acquire", "lock", function(op)
  local lock = op[1]
  if lock_free(lock) then lock._locked = true; return Held.new(lock) end
  local ok, err = wait_in(lock._waiters, "Lock", function(fut)
    return lock._locked or others(lock._waiters, fut)
  end, function(fut)
    remove(lock._waiters, fut)
    if fut:done() and not fut:cancelled() and not lock._locked then wake_first(lock._waiters) end
  end)
  if not ok then
    if CancelledError:is(err) and not lock._locked then wake_first(lock._waiters) end
    error(err, 0)
  end
  lock._locked = true
  return Held.new(lock)
end)

function Held.new(obj) return setmetatable({obj}, Held) end

-- acquire(): an awaitable whose result is a true value that can be held
-- with <close> to release the lock at scope exit.
function Lock:acquire()
  checkself(Lock, self, "acquire")
  return setmetatable({self, util.where() or false, false}, LockAcquire)
end

function Lock:release()
  checkself(Lock, self, "release")
  if not self._locked then raise("Lock.release: lock is not acquired") end
  self._locked = false
  wake_first(self._waiters)
end

function Lock:locked()
  checkself(Lock, self, "locked")
  return self._locked
end

function Lock:_describe() return self._locked and " locked" or " unlocked" end


-- Semaphore -----------------------------------------------------------------

local Semaphore = class("Semaphore")
local BoundedSemaphore = setmetatable(class("BoundedSemaphore"), {__index = Semaphore})
BoundedSemaphore.__index = BoundedSemaphore

local function new_semaphore(cls, fname, value)
  if value == nil then value = 1 end
  argcheck(math.type(value) == "integer" and value >= 0, 1, fname,
    type(value) ~= "number" and typeerror("integer", value) or "value must be a non-negative integer")
  return setmetatable({_value = value, _bound = value, _waiters = {}}, cls)
end
M.Semaphore = setmetatable({}, {__index = Semaphore, __call = function(_, v)
  return new_semaphore(Semaphore, "Semaphore", v)
end})
M.BoundedSemaphore = setmetatable({}, {__index = BoundedSemaphore, __call = function(_, v)
  return new_semaphore(BoundedSemaphore, "BoundedSemaphore", v)
end})

local function checksem(self, fname)
  local mt = getmetatable(self)
  if mt ~= Semaphore and mt ~= BoundedSemaphore then
    raise(("bad argument #1 to '%s' (%s)"):format(fname, typeerror("asyncio.Semaphore", self)))
  end
end

local function sem_locked(sem)
  if sem._value == 0 then return true end
  for _, w in ipairs(sem._waiters) do if not w:cancelled() then return true end end
  return false
end

local function wake_next(sem)
  for _, fut in ipairs(sem._waiters) do
    if not fut:done() then
      sem._value = sem._value - 1
      fut:set_result(true)
      return true
    end
  end
  return false
end

local SemAcquire = acquire_class("Semaphore.acquire", "semaphore", function(op)
  local sem = op[1]
  if not sem_locked(sem) then
    sem._value = sem._value - 1
    return Held.new(sem)
  end
  local skipped = false
  local ok, err, fut = wait_in(sem._waiters, "Semaphore", function(f)
    if sem._value > 0 and not others(sem._waiters, f) then  -- released meanwhile: ours
      sem._value = sem._value - 1
      skipped = true
      return false
    end
    return true
  end, function(f)
    remove(sem._waiters, f)
    if f:done() and not f:cancelled() then  -- woken: the value it took goes on
      sem._value = sem._value + 1
      while sem._value > 0 and wake_next(sem) do end
    end
  end)
  if skipped then return Held.new(sem) end
  if not ok and fut:done() and not fut:cancelled() then
    sem._value = sem._value + 1  -- woken, but not taking it: undo, pass on
  end
  while sem._value > 0 and wake_next(sem) do end
  if not ok then error(err, 0) end
  return Held.new(sem)
end)

function Semaphore:acquire()
  checksem(self, "acquire")
  return setmetatable({self, util.where() or false, false}, SemAcquire)
end

function Semaphore:release()
  checksem(self, "release")
  if getmetatable(self) == BoundedSemaphore and self._value >= self._bound then
    raise("BoundedSemaphore.release: released too many times")
  end
  self._value = self._value + 1
  wake_next(self)
end

function Semaphore:locked()
  checksem(self, "locked")
  return sem_locked(self)
end

function Semaphore:_describe() return (" value=%d"):format(self._value) end
BoundedSemaphore.__tostring = Semaphore.__tostring


-- Condition -----------------------------------------------------------------

local Condition = class("Condition")
M.Condition = setmetatable({}, {__index = Condition, __call = function(_, lock)
  argcheck(lock == nil or getmetatable(lock) == Lock, 1, "Condition", typeerror("asyncio.Lock", lock))
  return setmetatable({_lock = lock or M.Lock(), _waiters = {}}, Condition)
end})

function Condition:acquire()
  checkself(Condition, self, "acquire")
  return self._lock:acquire()
end

function Condition:release()
  checkself(Condition, self, "release")
  return self._lock:release()
end

function Condition:locked()
  checkself(Condition, self, "locked")
  return self._lock._locked
end

local function notify(cond, n)
  local woken = 0
  for _, fut in ipairs(cond._waiters) do
    if woken >= n then break end
    if not fut:done() then
      woken = woken + 1
      fut:set_result(false)
    end
  end
end

local CondWait = {__name = "asyncio.Condition.wait", __await = function(op)
  local cond = op[1]
  if not cond._lock._locked then raise("Condition.wait: cannot wait on an un-acquired lock") end
  -- the lock is released once this waiter is in the list: a notify after
  -- the release cannot miss it
  local ok, err = wait_in(cond._waiters, "Condition", function()
    cond._lock:release()
    return true
  end, function(fut)
    remove(cond._waiters, fut)
    if fut:done() then notify(cond, 1) end  -- notified: pass it on
  end)
  -- the lock must be held again on the way out, even when cancelled
  local reacquire_err
  while true do
    local ok2, e = pcall(await, cond._lock:acquire())
    if ok2 then break end
    reacquire_err = e
  end
  if not ok or reacquire_err then
    notify(cond, 1)  -- we may have been notified: pass it on
    error(reacquire_err or err, 0)
  end
  return true
end}

-- wait(): release the lock, wait for a notify, take the lock again.
function Condition:wait()
  checkself(Condition, self, "wait")
  return setmetatable({self}, CondWait)
end

-- wait_for(pred): an awaitable that waits until pred() is true; returns it.
local function wait_for_pred(cond, pred)
  local r = pred()
  while not r do
    await(cond:wait())
    r = pred()
  end
  return r
end
local wait_for_async = task.async(wait_for_pred)
task.label(wait_for_pred, "Condition:wait_for(...)")

function Condition:wait_for(pred)
  checkself(Condition, self, "wait_for")
  argcheck(type(pred) == "function", 1, "wait_for", typeerror("function", pred))
  return wait_for_async(self, pred)  -- (a tail call: made at the caller's line)
end

function Condition:notify(n)
  checkself(Condition, self, "notify")
  if not self._lock._locked then raise("Condition.notify: cannot notify on an un-acquired lock") end
  notify(self, n or 1)
end

function Condition:notify_all()
  checkself(Condition, self, "notify_all")
  if not self._lock._locked then raise("Condition.notify_all: cannot notify on an un-acquired lock") end
  notify(self, #self._waiters)
end

function Condition:_describe() return self._lock._locked and " locked" or " unlocked" end


-- Barrier -------------------------------------------------------------------

local Barrier = class("Barrier")
M.Barrier = setmetatable({}, {__index = Barrier, __call = function(_, parties)
  argcheck(math.type(parties) == "integer" and parties >= 1, 1, "Barrier",
    type(parties) ~= "number" and typeerror("integer", parties) or "parties must be a positive integer")
  return setmetatable({parties = parties, _state = "filling", _count = 0, _waiters = {}}, Barrier)
end})

-- Wake every task waiting on the barrier; each checks the state again.
local function broadcast(b)
  local list = b._waiters
  b._waiters = {}
  for _, fut in ipairs(list) do if not fut:done() then fut:set_result() end end
end

local function wait_until(b, pred)
  while not pred() do
    local ok, err = wait_in(b._waiters, "Barrier", function() return not pred() end)
    if not ok then error(err, 0) end
  end
end

local BarrierWait = {__name = "asyncio.Barrier.wait", __await = function(op)
  local b = op[1]
  -- a barrier that drains or resets lets no one in until it is done
  wait_until(b, function() return b._state ~= "draining" and b._state ~= "resetting" end)
  if b._state == "broken" then throw(BrokenBarrierError("barrier aborted")) end
  if b._count + 1 < b.parties then task.check_wait() end  -- it will wait: refused first
  local index = b._count
  b._count = b._count + 1
  local ok, err = pcall(function()
    if index + 1 == b.parties then
      b._state = "draining"
      broadcast(b)
    else
      wait_until(b, function() return b._state ~= "filling" end)
      if b._state == "broken" or b._state == "resetting" then
        throw(BrokenBarrierError("barrier aborted or reset"))
      end
    end
  end)
  b._count = b._count - 1
  if b._count == 0 then  -- the last one out lets the next round in
    if b._state == "resetting" or b._state == "draining" then b._state = "filling" end
    broadcast(b)
  end
  if not ok then error(err, 0) end
  return index
end}

-- wait(): an awaitable giving this task's arrival index (0 .. parties-1)
-- once 'parties' tasks wait; BrokenBarrierError if aborted or reset.
function Barrier:wait()
  checkself(Barrier, self, "wait")
  return setmetatable({self}, BarrierWait)
end

-- reset(): back to the empty state; waiting tasks get BrokenBarrierError.
-- Takes effect at once; returns an awaitable, for asyncio-style await.
function Barrier:reset()
  checkself(Barrier, self, "reset")
  if self._count > 0 then
    if self._state ~= "resetting" then self._state = "resetting" end
  else
    self._state = "filling"
  end
  broadcast(self)
  return NOTHING
end

-- abort(): the barrier is broken for good; waiters get BrokenBarrierError.
function Barrier:abort()
  checkself(Barrier, self, "abort")
  self._state = "broken"
  broadcast(self)
  return NOTHING
end

function Barrier:n_waiting()
  checkself(Barrier, self, "n_waiting")
  return self._state == "filling" and self._count or 0
end

function Barrier:broken()
  checkself(Barrier, self, "broken")
  return self._state == "broken"
end

function Barrier:_describe()
  return (" %s waiters=%d/%d"):format(self._state, self:n_waiting(), self.parties)
end

return M
