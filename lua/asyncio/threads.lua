-- threads.lua: worker threads. to_thread(fn, ...) and pool:call(fn, ...)
-- run a Lua function on a thread of its own, in that thread's own Lua state
-- (worker.c); the awaiting task waits without holding up the loop. What
-- goes over is copied: the function as its bytecode (so it may not keep
-- upvalues other than _ENV), its arguments and its results as values
-- (copy.c: nil, booleans, numbers, strings and tables of these).

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local EventLoop = require "asyncio.loop"
local streams = require "asyncio.streams"
local task = require "asyncio.task"
local util = require "asyncio.util"

local argcheck, typeerror, raise, throw = util.argcheck, util.typeerror, util.raise, util.throw
local raise_cancel, wait_object, op = task.raise_cancel, streams.wait_object, streams.op
local ThreadError = errors.ThreadError
local mtype = math.type

local M = {}

local GLOBALS = debug.getregistry()[2]  -- the global table (LUA_RIDX_GLOBALS)

-- The bytecode of each function sent so far (the dump is the costly part).
local dumps = setmetatable({}, {__mode = "k"})

-- The bytecode of function 'fn', argument 'n' of 'fname' ('what' names an
-- option instead, as "init"): refused if it cannot run in another state.
local function bytecode(fn, n, fname, what)
  local code = dumps[fn]
  if code then return code end
  local prefix = what and what .. ": " or ""
  argcheck(type(fn) == "function", n, fname, prefix .. typeerror("function", fn))
  argcheck(debug.getinfo(fn, "S").what ~= "C", n, fname, prefix .. "a C function cannot be sent "
    .. "to a worker thread (call it from a Lua function that requires its module)")
  -- the one upvalue a worker gives a loaded function is the first, set to
  -- its own globals: so the first may be _ENV (whatever table it is here:
  -- a busted spec's, say), or, in a stripped function (no names), the
  -- program's global table; any other is refused
  for i = 1, math.huge do
    local name, value = debug.getupvalue(fn, i)
    if name == nil then break end
    if i > 1 or not (name == "_ENV" or (name == "(no name)" and value == GLOBALS)) then
      -- (a function or a userdata cannot be an argument either: said so)
      local how = (type(value) == "function" or type(value) == "userdata") and
        "define it inside the function, or require the module that has it there" or
        "pass the value as an argument"
      argcheck(false, n, fname, ("%sfunction uses %s, but a worker thread runs it in a Lua state "
        .. "of its own: %s"):format(prefix, name == "(no name)" and
        "an upvalue (its name stripped)" or ("upvalue '%s'"):format(name), how))
    end
  end
  local dumped = string.dump(fn)  -- (its only error now: memory)
  dumps[fn] = dumped
  return dumped
end

-- WorkerPool ----------------------------------------------------------------------

local WorkerPool = {__name = "asyncio.WorkerPool"}
WorkerPool.__index = WorkerPool
M.WorkerPool = WorkerPool

local function default_size()
  return math.min(32, core.cpu_count() + 4)  -- CPython's default for to_thread
end

-- worker_pool{size = N, init = fn, initargs = {...}, join_timeout = seconds}:
-- see docs/api.md. No thread starts before the first call; the pool binds
-- to the loop of its first call.
local POOL_OPTIONS = {size = true, init = true, initargs = true, join_timeout = true}
local MAX_INITARGS = 8000  -- (what comes back from a call is limited alike)
function M.worker_pool(opts)
  opts = util.checkopts(opts, POOL_OPTIONS, 1, "worker_pool")
  local size = opts.size == nil and default_size() or opts.size
  argcheck(mtype(size) == "integer" and size >= 1 and size <= 1024, 1, "worker_pool",
    "size must be an integer from 1 to 1024")
  local initargs = opts.initargs
  argcheck(initargs == nil or type(initargs) == "table", 1, "worker_pool",
    "initargs: " .. typeerror("table", initargs))
  argcheck(initargs == nil or getmetatable(initargs) == nil, 1, "worker_pool",
    "initargs: a plain table expected, got one with a metatable")
  argcheck(initargs == nil or opts.init ~= nil, 1, "worker_pool", "initargs without init")
  local nargs = initargs and (initargs.n or #initargs) or 0
  argcheck(mtype(nargs) == "integer" and nargs >= 0 and nargs <= MAX_INITARGS, 1, "worker_pool",
    ("initargs.n must be an integer from 0 to %d, got %s"):format(MAX_INITARGS,
      type(nargs) == "number" and nargs or type(nargs)))
  local init = opts.init ~= nil and core.worker_call("worker_pool", -1,
    bytecode(opts.init, 1, "worker_pool", "init"), table.unpack(initargs or {}, 1, nargs)) or nil
  local join = opts.join_timeout == nil and 30 or opts.join_timeout
  argcheck(type(join) == "number" and join >= 0 and join <= 1e6, 1, "worker_pool",
    "join_timeout must be a number of seconds from 0 to 1e6")
  -- the workers' require looks where the program's does now
  return setmetatable({_size = size, _init = init, _join = join, _loop = false,
                       _core = false, _closed = false, _path = package.path,
                       _cpath = package.cpath}, WorkerPool)
end

local CLOSED = "the worker pool is closed"

-- The pool's C side, made on the first call, on task 't's loop.
local function core_of(pool, t, fname)
  if pool._closed then raise(("'%s': %s"):format(fname, CLOSED)) end
  if pool._loop then
    if pool._loop ~= t._loop then
      raise(("'%s': the worker pool belongs to a different event loop"):format(fname))
    end
    return pool._core
  end
  local c, name, msg = core.pool_new(t._loop._core, pool._size, pool._init, pool._join,
    pool._path, pool._cpath)
  if not c then throw(errors.oserror(name, msg, "worker_pool")) end
  pool._loop, pool._core = t._loop, c
  return c
end

-- What a call came back as, for task 't': its results, or its error.
local function settle(t, box, status, ...)
  if status == "ok" then return ... end
  if status == false then  -- not back yet: wait, and ask again
    local refused = wait_object(t, box)
    if refused then raise(refused) end
    if t._must_cancel then
      box:_abort()  -- (if it has not started, it never will)
      raise_cancel(t)
    end
    return settle(t, box, box:_result())
  end
  if status == "error" then
    local message, traceback, value = ...
    throw(ThreadError(message, {value = value, worker_traceback = traceback}))
  end
  if status == "failed" then throw(ThreadError((...))) end
  if status == "cancelled" then raise_cancel(t) end
  raise("the event loop closed before the worker thread's call came back")
end

local function run_call(t, pool, box, fname)
  local c = core_of(pool, t, fname)
  task.check_wait()  -- refused, or cancelled already: nothing is queued
  if t._must_cancel then raise_cancel(t) end
  local ok, why, msg = c:_submit(box)
  if not ok then
    if why == "closed" then raise(("'%s': %s"):format(fname, CLOSED)) end
    if why == "submitted" then
      raise(("'%s': this call was awaited already (a call is awaited once)"):format(fname))
    end
    if why == "broken" then throw(ThreadError(msg)) end
    throw(errors.oserror(why, msg, "start a worker thread"))
  end
  return settle(t, box, box:_result())
end

local function call_impl(pool, box)
  return run_call(task.current("call"), pool, box, "call")
end

-- pool:call(fn, ...) -> awaitable: fn(...)'s results, run on one of the
-- pool's workers. The arguments are copied now; the call is queued when
-- it is awaited.
function WorkerPool:call(fn, ...)
  util.checkself(WorkerPool, self, "call")
  if self._closed then raise(("'call': %s"):format(CLOSED)) end
  local box = core.worker_call("call", 1, bytecode(fn, 1, "call"), ...)
  return op(call_impl, self, box)
end

-- pool:close(): no more calls. Calls already queued or running still run
-- and come back; each worker then closes its Lua state and its thread
-- ends. Returns at once. Closing again does nothing.
function WorkerPool:close()
  util.checkself(WorkerPool, self, "close")
  self._closed = true
  if self._core then self._core:_close() end
end
WorkerPool.__close = WorkerPool.close

-- pool:size() -> the most threads it runs
function WorkerPool:size()
  util.checkself(WorkerPool, self, "size")
  return self._size
end

-- pool:info() -> {threads, idle, queued, running}: how it is doing now
function WorkerPool:info()
  util.checkself(WorkerPool, self, "info")
  local threads, idle, queued, running = 0, 0, 0, 0
  if self._core then  -- (after close too: the calls it still runs are counted)
    threads, idle, queued, running = self._core:_info()
  end
  return {threads = threads or 0, idle = idle or 0, queued = queued or 0, running = running or 0}
end

function WorkerPool:__tostring()
  return ("asyncio.WorkerPool(size %d%s)"):format(self._size, self._closed and ", closed" or "")
end

-- to_thread -------------------------------------------------------------------------

-- The loop's default pool, for to_thread and run_in_executor(nil, ...).
local function default_pool(loop)
  local pool = loop._default_pool
  if not pool then
    pool = M.worker_pool()
    loop._default_pool = pool
  end
  return pool
end

local function to_thread_impl(box)
  local t = task.current("to_thread")
  return run_call(t, default_pool(t._loop), box, "to_thread")
end

-- to_thread(fn, ...) -> awaitable: fn(...)'s results, run on a worker of
-- the loop's default pool (min(32, CPUs + 4) threads).
function M.to_thread(fn, ...)
  local box = core.worker_call("to_thread", 1, bytecode(fn, 1, "to_thread"), ...)
  return op(to_thread_impl, box)
end

streams.name_ops{[call_impl] = "pool:call(...)", [to_thread_impl] = "to_thread(...)"}

-- loop:run_in_executor(pool, fn, ...): as CPython's, a future (a task)
-- that runs the call, started at once; pool nil is the default pool. (Set
-- here: loop.lua is loaded before this module.)
function EventLoop:run_in_executor(pool, fn, ...)
  argcheck(getmetatable(self) == EventLoop, 1, "run_in_executor",
    typeerror("asyncio.EventLoop", self))
  argcheck(pool == nil or getmetatable(pool) == WorkerPool, 2, "run_in_executor",
    typeerror("asyncio.WorkerPool or nil", pool))
  if pool and pool._closed then raise(("'run_in_executor': %s"):format(CLOSED)) end
  -- (the arguments counted as in loop:run_in_executor(pool, fn, ...): fn is #3)
  local box = core.worker_call("run_in_executor", 3, bytecode(fn, 3, "run_in_executor"), ...)
  return self:create_task(pool and op(call_impl, pool, box) or op(to_thread_impl, box))
end

return M
