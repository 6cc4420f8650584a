-- task.lua: Task, coroutine objects, await and sleep. A task runs in a
-- pooled Lua coroutine that the C loop resumes; the body's outcome is
-- recorded here, in Lua. A task suspends only by yielding core.SENTINEL,
-- and the loop resumes it with core.TOKEN first, so a foreign resume is
-- told apart and refused.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local util = require "asyncio.util"

local CancelledError = errors.CancelledError
local argcheck, typeerror, pack, unpack = util.argcheck, util.typeerror, util.pack, util.unpack
local TOKEN, SENTINEL = core.TOKEN, core.SENTINEL
local yield, running, cocreate, coclose = coroutine.yield, coroutine.running,
  coroutine.create, coroutine.close
local getmetatable, setmetatable, select, error, type, xpcall =
  getmetatable, setmetatable, select, error, type, xpcall
local traceback = debug.traceback
local PENDING, CANCELLED = Future.PENDING, Future.CANCELLED
local schedule_callbacks = Future._schedule_callbacks

local M = {}

-- What a foreign resumer of a task's coroutine gets back.
local FOREIGN = setmetatable({}, {__tostring = function()
  return "asyncio: a task's coroutine can only be resumed by its event loop"
end})
M.FOREIGN = FOREIGN

local cur = nil                           -- the task being run, or nil
local pool, npool, POOL_MAX = {}, 0, 256  -- idle worker coroutines

local Task = setmetatable({__name = "asyncio.Task", __isfuture = true}, {__index = Future})
Task.__index = Task
M.Task = Task


-- Coroutine objects ---------------------------------------------------------

local Coro = {__name = "asyncio.coroutine"}
Coro.__index = Coro
M.Coro = Coro

-- async function -> the plain function it wraps
local async_body = setmetatable({}, {__mode = "k"})

-- async(fn): an async function; calling it returns a coroutine object.
-- Where a function is expected (run, create_task), it runs 'fn' itself.
function M.async(fn)
  argcheck(type(fn) == "function", 1, "async", typeerror("function", fn))
  local af = function(...)
    local c = pack(...)
    c.fn = fn
    return setmetatable(c, Coro)
  end
  async_body[af] = fn
  return af
end

function M.iscoroutinefunction(f)
  return async_body[f] ~= nil
end

function M.iscoroutine(x)
  return getmetatable(x) == Coro
end

local function claim(c, fname)
  if c.awaited then
    error(("%s: cannot reuse already awaited coroutine"):format(fname), 3)
  end
  c.awaited = true
end

function Coro.__await(c)
  claim(c, "await")
  return c.fn(unpack(c, 1, c.n))
end

function Coro.__tostring(c)
  return ("<asyncio.coroutine %s>"):format(tostring(c.fn):gsub("^function: ", ""))
end


-- Suspension ----------------------------------------------------------------

-- The running task, checked to be in its own coroutine (not a coroutine
-- the task created itself: yielding there would go to the wrong resumer).
local function current(fname)
  local task = cur
  if task == nil then
    error(("'%s' called outside a running task"):format(fname or "await"), 3)
  end
  if running() ~= task._co then
    error(("'%s' called inside a coroutine that is not the task's own"):format(
      fname or "await"), 3)
  end
  return task
end
M.current = current

-- Suspend 'task' until the loop resumes it; return the wake-up value.
local function suspend(task)
  cur = nil
  local tok, v = yield(SENTINEL)
  while tok ~= TOKEN do tok, v = yield(FOREIGN) end
  cur = task
  return v
end
M.suspend = suspend

local function raise_cancel(task)
  task._must_cancel = false
  error(CancelledError(task._cancel_message), 0)
end
M.raise_cancel = raise_cancel

-- After a wake-up: raise CancelledError if a cancellation is pending.
local function check_cancel(task)
  if task._must_cancel then raise_cancel(task) end
end
M.check_cancel = check_cancel

-- await(aw): the results of 'aw', suspending the current task until done.
local function await(aw)
  if cur == nil then error("'await' called outside a running task", 2) end
  local mt = getmetatable(aw)
  local f = type(mt) == "table" and mt.__await
  if not f then
    error(("bad argument #1 to 'await' (%s)"):format(typeerror("awaitable", aw)), 2)
  end
  return f(aw)
end
M.await = await

-- Awaiting a future: its results, or its error raised.
local function await_future(fut)
  if fut._state == PENDING then
    local task = current()
    if fut == task then error("a task cannot await itself", 3) end
    fut:_add_waiter(task)
    task._fut_waiter = fut
    cur = nil  -- suspend(task), inlined: one frame less on every task's stack
    local tok = yield(SENTINEL)
    while tok ~= TOKEN do tok = yield(FOREIGN) end
    cur = task
    task._fut_waiter = nil
    if fut._state == PENDING then fut:_remove_waiter(task) end
    check_cancel(task)
  end
  return fut:result()
end
Future.__await = await_future
Task.__await = await_future


-- Tasks ---------------------------------------------------------------------

local last_tb
local function msgh(e)
  if not CancelledError:is(e) then last_tb = traceback(tostring(e), 2) end
  return e
end

-- Record the outcome of the body of 'task'.
local function finish(task, ok, ...)
  cur = nil
  task._loop._tasks[task] = nil
  if ok then
    if task._must_cancel then  -- cancelled right before it returned
      task._must_cancel = false
      task._state = CANCELLED
      schedule_callbacks(task)
      return
    end
    Future.set_result(task, ...)
    return
  end
  local e = ...
  if CancelledError:is(e) then
    task._state = CANCELLED
    task._cancel_error = e
    schedule_callbacks(task)
  else
    local tb = last_tb
    last_tb = nil
    task:_set_exception(e, tb)
  end
end

-- A worker coroutine: runs tasks one after another, then waits in the pool.
-- A task's body is a function, or a table {fn = f, n = count, args...}
-- (a coroutine object is one); it is dropped once the task starts, which
-- is how traceback() knows the task has started. The frames below a
-- task's own code are kept few and small: a suspended task's stack then
-- fits in the coroutine's first allocation.
local function worker(tok, task)
  while true do
    if tok == TOKEN and getmetatable(task) == Task then
      cur = task
      local body = task._body
      task._body = nil
      if task._must_cancel then
        finish(task, false, CancelledError(task._cancel_message))
      elseif type(body) == "function" then
        finish(task, xpcall(body, msgh))
      else
        finish(task, xpcall(body.fn, msgh, unpack(body, 1, body.n)))
      end
      -- an idle worker must not keep its last task alive
      body = nil  -- luacheck: ignore 311
      if npool >= POOL_MAX then return end
      npool = npool + 1
      pool[npool] = running()
      task = nil  -- luacheck: ignore 311
      tok, task = yield(SENTINEL)
    else
      tok, task = yield(FOREIGN)
    end
  end
end

-- A new task on 'loop' running 'body' (see worker), started on the next
-- iteration.
local function spawn(loop, body)
  local co
  if npool > 0 then
    co = pool[npool]
    pool[npool] = nil
    npool = npool - 1
  else
    co = cocreate(worker)
  end
  local task = setmetatable({_state = PENDING, _loop = loop, _co = co, _body = body}, Task)
  loop._tasks[task] = true
  loop._core:schedule(co, task)
  return task
end

-- The body of a task for create_task's arguments, for 'fname'.
local function task_body(fname, what, ...)
  local mt = getmetatable(what)
  if mt == Coro then
    claim(what, fname)
    return what
  elseif type(what) == "function" then
    what = async_body[what] or what
    local n = select("#", ...)
    if n == 0 then return what end
    return {fn = what, n = n, ...}
  elseif type(mt) == "table" and mt.__await then
    return function() return await(what) end
  end
  error(("bad argument #1 to '%s' (%s)"):format(fname,
    typeerror("coroutine object or function", what)), 3)
end

function M.create_task(what, ...)
  local loop = rt.loop
  if loop == nil then error("'create_task' called with no running event loop", 2) end
  return spawn(loop, task_body("create_task", what, ...))
end

-- loop:create_task(...): on a loop that may not be running yet.
function M.loop_create_task(loop, what, ...)
  return spawn(loop, task_body("create_task", what, ...))
end

-- A future or task for awaitable 'aw' (coroutine objects become tasks).
function M.ensure_future(aw, fname, n, loop)
  local mt = getmetatable(aw)
  if type(mt) == "table" and mt.__isfuture then return aw end
  if type(mt) ~= "table" or (mt ~= Coro and not mt.__await) then
    error(("bad argument #%d to '%s' (%s)"):format(n or 1, fname, typeerror("awaitable", aw)), 3)
  end
  loop = loop or rt.loop
  if loop == nil then error(("'%s' called with no running event loop"):format(fname), 3) end
  if mt == Coro then
    claim(aw, fname)
    return spawn(loop, aw)
  end
  return spawn(loop, function() return await(aw) end)
end

local function checktask(self, fname)
  if getmetatable(self) ~= Task then
    error(("bad argument #1 to '%s' (%s)"):format(fname, typeerror("asyncio.Task", self)), 3)
  end
end

function Task:cancel(msg)
  checktask(self, "cancel")
  if self._state ~= PENDING then return false end
  self._num_cancels_requested = (self._num_cancels_requested or 0) + 1
  local w = self._fut_waiter
  if w ~= nil and not self._in_cancel then
    self._in_cancel = true  -- tasks awaiting each other in a cycle end here
    local done = w:cancel(msg)
    self._in_cancel = nil
    if done then return true end
  end
  self._must_cancel = true
  self._cancel_message = msg
  if w ~= nil and w._state == PENDING then  -- re-entered: wake it ourselves
    w:_remove_waiter(self)
    self._fut_waiter = nil
    self._loop._core:schedule(self._co, nil)
    return true
  end
  -- what the task waits on besides a future: a function, the id of a
  -- sleep's timer, or an object with _abort(co) (a queue)
  local abort = self._wait_abort
  if abort ~= nil then
    self._wait_abort = nil
    local lcore, removed = self._loop._core
    local t = type(abort)
    if t == "number" then removed = lcore:untimer(abort)
    elseif t == "function" then removed = abort(self)
    else removed = abort:_abort(self._co) end
    if removed then lcore:schedule(self._co, nil) end
  end
  return true
end

function Task:cancelling()
  checktask(self, "cancelling")
  return self._num_cancels_requested or 0
end

function Task:uncancel()
  checktask(self, "uncancel")
  local n = self._num_cancels_requested or 0
  if n > 0 then
    n = n - 1
    self._num_cancels_requested = n
    if n == 0 then self._must_cancel = false end
  end
  return n
end

function Task:get_name()
  checktask(self, "get_name")
  if self._name == nil then
    self._name = ("Task-%s"):format(tostring(self._co):match("0x%x+") or "?")
  end
  return self._name
end

function Task:set_name(name)
  checktask(self, "set_name")
  self._name = tostring(name)
end

function Task:get_coro()
  checktask(self, "get_coro")
  return self._co
end

-- Where the task failed, or where it is suspended now; nil when neither.
function Task:traceback()
  checktask(self, "traceback")
  if self._tb then return self._tb end
  if self._state == PENDING and self._body == nil then  -- started
    return traceback(self._co, "traceback of " .. self:get_name())
  end
  return nil
end

function Task:__tostring()
  local s = self._state
  if s == "FINISHED" and self._failed then s = "FINISHED error" end
  return ("<asyncio.Task %s %s>"):format(self:get_name(), s)
end

function M.current_task() return cur end

function M.all_tasks(loop)
  loop = loop or rt.loop
  local set = {}
  if loop == nil then return set end
  for t in pairs(loop._tasks) do
    if t._state == PENDING then set[t] = true end
  end
  return set
end


-- Sleep ---------------------------------------------------------------------

-- A sleep is {delay} or {delay, values..., n = count}.
local Sleep = {__name = "asyncio.sleep"}
Sleep.__index = Sleep
local SLEEP0 = setmetatable({0}, Sleep)

function Sleep.__await(s)
  local task = current()
  local delay, co = s[1], task._co
  if delay <= 0 then
    task._loop._core:schedule(co, nil)  -- already ready: cancel needs no abort
  else  -- a timer id as the abort: Task:cancel removes the timer
    task._wait_abort = task._loop._core:timer(delay, co, nil)
  end
  cur = nil  -- suspend(task), inlined: one frame less on every task's stack
  local tok = yield(SENTINEL)
  while tok ~= TOKEN do tok = yield(FOREIGN) end
  cur = task
  task._wait_abort = nil
  if task._must_cancel then raise_cancel(task) end
  local n = s.n
  if n then return unpack(s, 2, n) end
end

-- sleep(delay, ...): an awaitable that resumes after 'delay' seconds with '...'.
function M.sleep(delay, ...)
  util.checkdelay(delay, 1, "sleep")
  local n = select("#", ...)
  if n == 0 then
    if delay <= 0 then return SLEEP0 end
    return setmetatable({delay}, Sleep)
  end
  return setmetatable({delay, n = n + 1, ...}, Sleep)
end


-- Loop hooks (called by C; see loop.c) -------------------------------------

-- The pending task of 'loop' running in 'co' (error paths only: a search).
local function task_of(loop, co)
  for t in pairs(loop._tasks) do
    if t._co == co and t._state == PENDING then return t end
  end
  return nil
end

-- The three functions a core loop calls on errors it cannot place itself.
function M.hooks(loop)
  return {
    function(err, fn, value)  -- a callback raised
      cur = nil
      local handle = type(value) == "table" and rawget(value, "_is_handle") and value or nil
      loop:call_exception_handler({message = "Exception in callback",
        exception = err, callback = fn, handle = handle})
    end,
    function(co, err)  -- a task's coroutine died (the wrapper itself failed)
      cur = nil
      local task = task_of(loop, co)
      if task ~= nil then
        loop._tasks[task] = nil
        task:_set_exception(err)
      end
      loop:call_exception_handler({message = "task coroutine failed",
        exception = err, task = task})
    end,
    function(co)  -- a task yielded without await
      cur = nil
      local task = task_of(loop, co)
      local msg = "task yielded outside 'await' (use asyncio.await, not coroutine.yield)"
      pcall(coclose, co)
      if task ~= nil then
        loop._tasks[task] = nil
        task:_set_exception(msg, traceback(co))
      end
    end,
  }
end

return M
