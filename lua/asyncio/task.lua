-- task.lua: Task, coroutine objects, await and sleep: what they mean. The
-- mechanics are the C core's (task.c): a task's body is its coroutine's
-- main function, resumed by the loop; suspend() and sleep() give up the
-- CPU and return the wake-up values; the loop reports how a body ended to
-- finish() below, which records the outcome.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local util = require "asyncio.util"
local raise = util.raise

local CancelledError = errors.CancelledError
local argcheck, typeerror, unpack, describe = util.argcheck, util.typeerror, util.unpack,
  util.describe
local setmetatable, select, error, type, tostring, tonumber = setmetatable, select, error, type,
  tostring, tonumber
local getmetatable = core.metatable  -- raw, and cheaper than Lua's
local traceback, getinfo = debug.traceback, debug.getinfo
local where, where_text = core.where, core.where_text  -- the program's line, cheaply
local PENDING, CANCELLED, FINISHED = Future.PENDING, Future.CANCELLED, Future.FINISHED
local schedule_callbacks, resolve = Future._schedule_callbacks, Future._resolve

-- The C core's suspension primitives: they yield the running task and
-- return its wake-up values, or return REFUSED and a message at once when
-- called from a coroutine that is not the running task's own.
local REFUSED = core.REFUSED
local c_suspend, c_sleep = core.loop_methods.suspend, core.loop_methods.sleep

local M = {REFUSED = REFUSED}

-- Inside a C function that called back into Lua (a table.sort comparator,
-- a string.gsub function, a metamethod called from C) the task cannot
-- yield. Every wait checks that before it sets anything up (a waiter in a
-- list, a future, a reserved slot), so that refusing leaves all as it was;
-- the C primitives refuse too (task.c's asyncio_running), with the same words.
local isyieldable, NOWAIT_MSG = coroutine.isyieldable, core.NOWAIT_MSG
local function check_wait()
  if not isyieldable() then raise(NOWAIT_MSG) end
end
M.check_wait, M.NOWAIT_MSG = check_wait, NOWAIT_MSG

-- Debug mode (a loop with debug on is running: see loop.lua's run_core):
-- coroutine objects and sleeps are tracked, and one collected without
-- being awaited is reported. When off this costs one test of DEBUG.
local DEBUG = false
local debug_listeners = {}
function M.set_debug(on)
  DEBUG = on and true or false
  for i = 1, #debug_listeners do debug_listeners[i](DEBUG) end
end

-- fn(on) is told when debug mode starts and stops: another module's debug
-- variants (a queue's get, a reader's reads: see queue.lua, streams.lua).
-- It must not allocate (loop.lua turns debug mode off on any failure).
function M.on_debug(fn) debug_listeners[#debug_listeners + 1] = fn end

-- A tracker's finalizer runs when its object is collected: if the object
-- was never awaited (a coroutine object still unclaimed, a sleep never
-- awaited), the loop it was made on hears of it, with where it was made.
local Tracker = {}
Tracker.__gc = function(tr)
  local obj = tr.obj
  if obj[1] == false or obj._awaited then return end
  local dump = require "asyncio.dump"
  local frames = dump.program_frames(tr.where)
  local ctx = {message = ("%s was never awaited%s"):format(tr.what,
    frames[1] and (" (made at " .. frames[1]:gsub(": in .*$", "") .. ")") or ""),
    source_traceback = table.concat(frames, "\n")}
  local loop = tr.loop
  if loop and not loop._core:is_closed() then pcall(loop.call_exception_handler, loop, ctx)
  else pcall(rt.default_exception_handler, nil, ctx) end
end

local function track(obj, what)
  obj._dbg = setmetatable({obj = obj, what = what, where = traceback("", 2), loop = rt.loop},
    Tracker)
  return obj
end

-- rt.current is the task whose body is running, or nil. It lives in the
-- shared runtime table so that other modules' awaitables (queue.lua) can
-- suspend without a call into this one.

local Task = setmetatable({__name = "asyncio.Task", __isfuture = true, _is_task = true},
  {__index = Future})
Task.__index = Task
M.Task = Task


-- Coroutine objects ---------------------------------------------------------

-- A coroutine object is the list {nargs, fn, wfn, wline, args...} (array
-- part only: one table and one array, whatever the arguments; wfn, wline:
-- the function and line that made it, see core.where, or false, nil);
-- nargs becomes false once it has been awaited or given to a task.
local Coro = {__name = "asyncio.coroutine"}
M.Coro = Coro

-- A coroutine object collected without being awaited (nor given to a
-- task): its body never ran, and that is reported, by default, as
-- CPython's "coroutine ... was never awaited", with the line that made
-- it. In debug mode its tracker reports it instead, with a traceback.

-- The bodies of the library's own async functions (task_group, timeout,
-- wait, Condition:wait_for) -> the call a report names: the program wrote
-- that call, not the library's function (weak keys).
local labels = setmetatable({}, {__mode = "k"})
function M.label(fn, text) labels[fn] = text end

-- What a report calls a coroutine object of body 'fn'.
local function coro_name(fn)
  local label = labels[fn]
  if label then return label end
  local d = getinfo(fn, "S")
  return ("a coroutine object (async function of %s)"):format(d.what == "C" and tostring(fn) or
    ("%s:%d"):format(d.short_src, d.linedefined))
end

Coro.__gc = function(c)
  if not c[1] or rawget(c, "_dbg") then return end
  rt.report_unawaited(nil, ("%s%s was never awaited: its body never ran"):format(coro_name(c[2]),
    c[3] and " made at " .. where_text(c[3], c[4]) or ""))
end

-- An __index for the library's awaitables that stand for a call
-- (coroutine objects, stream calls): they have no fields, so one read by
-- name is a forgotten await (r = fetch(url) then r.status; f =
-- open_file(p) then f:lines()), said so at the program's line. name_of(o)
-- names the call, 'what' says what it is. (The library's own probes,
-- fields named "_...", find nothing.)
local UNDERSCORE = ("_"):byte()
function M.unawaited_index(name_of, what)
  return function(o, k)
    if type(k) == "string" and k:byte(1) ~= UNDERSCORE then
      raise(("attempt to index %s (field '%s'): %s: await it for the results"):format(
        name_of(o), k, what))
    end
  end
end

Coro.__index = M.unawaited_index(function(c) return coro_name(c[2]) end,
  "it stands for a call not made yet")

-- async function -> the plain function it wraps
local async_body = setmetatable({}, {__mode = "k"})

local function debug_track(c, fn)
  track(c, coro_name(fn))
end

-- The async function of 'fn' (see async below), by how many arguments its
-- coroutine objects keep. A Lua function that is not vararg never sees
-- more arguments than its parameters, so for up to three of them the
-- async function keeps just those and is not vararg itself: no select
-- and no vararg frame (about 800 instructions less per object).
local ASYNC_OF_ARITY = {
  [0] = function(fn)
    return function()
      local wfn, wline = where(1)
      local c = setmetatable({0, fn, wfn, wline}, Coro)
      if DEBUG then debug_track(c, fn) end
      return c
    end
  end,
  function(fn)
    return function(a)
      local wfn, wline = where(1)
      local c = setmetatable({1, fn, wfn, wline, a}, Coro)
      if DEBUG then debug_track(c, fn) end
      return c
    end
  end,
  function(fn)
    return function(a, b)
      local wfn, wline = where(1)
      local c = setmetatable({2, fn, wfn, wline, a, b}, Coro)
      if DEBUG then debug_track(c, fn) end
      return c
    end
  end,
  function(fn)
    return function(a, b, c3)
      local wfn, wline = where(1)
      local c = setmetatable({3, fn, wfn, wline, a, b, c3}, Coro)
      if DEBUG then debug_track(c, fn) end
      return c
    end
  end,
}

local function async_of_any(fn)
  return function(...)
    local wfn, wline = where(1)
    local c = setmetatable({select("#", ...), fn, wfn, wline, ...}, Coro)
    if DEBUG then debug_track(c, fn) end
    return c
  end
end

-- async(fn): an async function; calling it returns a coroutine object.
-- Where a function is expected (run, create_task), it runs 'fn' itself.
function M.async(fn)
  argcheck(type(fn) == "function", 1, "async", typeerror("function", fn))
  local d = getinfo(fn, "u")  -- (a C function counts as vararg)
  local make = not d.isvararg and ASYNC_OF_ARITY[d.nparams] or async_of_any
  local af = make(fn)
  async_body[af] = fn
  return af
end

function M.iscoroutinefunction(f)
  return async_body[f] ~= nil
end

-- What runs where a plain function 'fn' is taken and called in a task
-- (run, create_task, timeout, task_group): an async function's body.
function M.body_of(fn)
  return async_body[fn] or fn
end

function M.iscoroutine(x)
  return getmetatable(x) == Coro
end

-- Is 'x' a function? type() interns its answer string on every call: the
-- functions seen are remembered instead (weakly), so the hot path is one
-- table lookup.
local seen_functions = setmetatable({}, {__mode = "k"})
local function isfunction(x)
  local known = seen_functions[x]
  if known then return true end
  if known == nil then
    known = type(x) == "function"
    if known then seen_functions[x] = true end
  end
  return known
end

-- Take coroutine object 'c' for running, for 'fname': its nargs.
local function claim(c, fname)
  local n = c[1]
  if not n then
    raise(("%s: cannot reuse already awaited coroutine"):format(fname))
  end
  c[1] = false
  return n
end

function Coro.__tostring(c)
  return ("<asyncio.coroutine %s>"):format(tostring(c[2]):gsub("^function: ", ""))
end


-- The running task ----------------------------------------------------------

-- The running task, for 'fname' (a clear error outside any task). That
-- the caller runs in the task's own coroutine is checked by the C core
-- when the task suspends.
local function current(fname)
  local task = rt.current or rt.running_task()
  if task == nil then
    raise(("'%s' called outside a running task"):format(fname or "await"))
  end
  return task
end
M.current = current

local function raise_cancel(task)
  task._must_cancel = false
  task._cancel_woken = nil
  error(CancelledError(task._cancel_message), 0)
end
M.raise_cancel = raise_cancel

-- pcall and xpcall that catch errors but let a cancellation (and Ctrl-C)
-- through: a plain pcall around await swallows the CancelledError, and
-- the task can never be cancelled again.
local KeyboardInterrupt = errors.KeyboardInterrupt

local function passes(e)
  return CancelledError:is(e) or KeyboardInterrupt:is(e)
end

local function pass_on(ok, ...)
  if not ok and passes((...)) then error((...), 0) end
  return ok, ...
end

function M.pcall(fn, ...)
  return pass_on(pcall(fn, ...))
end

function M.xpcall(fn, msgh, ...)
  argcheck(type(msgh) == "function", 2, "xpcall", typeerror("function", msgh))
  return pass_on(xpcall(fn, function(e)
    if passes(e) then return e end  -- left as it is, to be raised again
    return msgh(e)
  end, ...))
end

-- await ---------------------------------------------------------------------

-- Refuse a pending future of a loop other than 'loop', for 'fname': nothing
-- on 'loop' could ever complete it (CPython: "attached to a different loop").
local function check_same_loop(fut, loop, fname)
  local l = fut._loop
  if l and l ~= loop and fut._state == PENDING then
    raise(("%s: the future belongs to %s"):format(fname, l._core:is_closed() and
      "an event loop that is closed (nothing will complete it)" or "a different event loop"))
  end
end
M.check_same_loop = check_same_loop

-- Awaiting a future: its results, or its error raised. The task waits in
-- the future's callbacks; _waiting tells Task:cancel where it is.
local function await_future(fut)
  local task = rt.current
  if fut._state == PENDING then  -- refused before anything is touched:
    if fut == task then raise("a task cannot await itself") end
    if not isyieldable() then raise(NOWAIT_MSG) end
    local loop = fut._loop
    if loop and loop ~= task._loop then check_same_loop(fut, task._loop, "await") end
    if task._must_cancel then
      -- cancelled while it ran (Task:cancel could wake nobody): the future it
      -- now awaits is cancelled instead, as if the cancel had come during the
      -- wait (CPython's Task.__step); a task awaited finishes its own way
      if fut:_cancel_wait(task, task._cancel_message) then task._must_cancel = false
      else raise_cancel(task) end
    end
  end
  if fut._state == PENDING then
    fut:_add_waiter(task)
    task._waiting = fut
    rt.current = false
    local v, msg = c_suspend(task._loop._core)
    rt.current = task
    task._waiting = false
    if v == REFUSED then
      fut:_remove_waiter(task)
      raise(msg)
    end
    if fut._state == PENDING then fut:_remove_waiter(task)  -- cancelled meanwhile
    elseif task._must_cancel then
      fut._guard = nil  -- its outcome reached this task, which was cancelled after: retrieved
    end
    if task._must_cancel then raise_cancel(task) end
  end
  if fut._failed then rt.current._awaited = fut end  -- for the chain of an uncaught error
  return fut:result()
end
Future.__await = await_future
Task.__await = await_future

-- Awaiting a coroutine object runs it here, in the awaiting task (one
-- argument, the common case, needs no unpack).
local function await_coro(c)
  local n = c[1]
  if not n then return claim(c, "await") end  -- which raises
  c[1] = false
  if n == 1 then return c[2](c[5]) end
  if n == 0 then return c[2]() end
  return c[2](unpack(c, 5, n + 4))
end
Coro.__await = await_coro

-- A sleep is {delay, wfn, wline} or {delay, wfn, wline, values..., n =
-- count} (wfn, wline: the function and line that made it, see core.where,
-- or false, nil). Until it is awaited
-- its metatable is Sleep, whose finalizer reports it dropped un-awaited;
-- awaiting it makes it an AwaitedSleep (the same but for that).
local Sleep = {__name = "asyncio.sleep"}
Sleep.__index = Sleep
local AwaitedSleep = {__name = "asyncio.sleep"}
AwaitedSleep.__index = AwaitedSleep
local SLEEP0 = setmetatable({0}, AwaitedSleep)  -- shared: never reported

Sleep.__gc = function(s)
  rt.report_unawaited(nil, ("asyncio.sleep(%s)%s was never awaited"):format(tostring(s[1]),
    s[2] and " at " .. where_text(s[2], s[3]) or ""))
end

-- Awaiting a sleep: the C core arms the timer (or queues the task at once
-- for a delay <= 0) and suspends; Task:cancel wakes it early.
local function await_sleep(s)
  local task = rt.current
  -- awaited, though refused below: its error says what became of it
  if s ~= SLEEP0 and getmetatable(s) == Sleep then setmetatable(s, AwaitedSleep) end
  if task._must_cancel then  -- cancelled while it ran (a comparator's refusal first)
    if not isyieldable() then raise(NOWAIT_MSG) end
    raise_cancel(task)
  end
  local delay, n = s[1], s.n
  if not n then s = nil end  -- no values to give: it can go while the task sleeps
  rt.current = false
  -- (where the task cannot wait, the C core refuses before a timer is armed)
  local v, msg = c_sleep(task._loop._core, delay)
  rt.current = task
  if v == REFUSED then raise(msg) end
  if task._must_cancel then raise_cancel(task) end
  if n then return unpack(s, 4, n) end
end
Sleep.__await = await_sleep
AwaitedSleep.__await = await_sleep

-- await(aw): the results of 'aw', suspending the current task until done.
-- The library's own awaitables are found in AWAIT by their metatable (no
-- call to find them); anything else with __await has it called, inside
-- the awaiting task.
local AWAIT = {[Future] = await_future, [Task] = await_future, [Sleep] = await_sleep,
               [AwaitedSleep] = await_sleep, [Coro] = await_coro}

-- Awaitables that are reused again and again (sleep(0), a put that went
-- through at once, a queue's get) are found by identity, before any
-- metatable is read. Weak: a queue's get goes with its queue.
local INSTANCES = setmetatable({}, {__mode = "k"})

-- Let await find 'obj' at once; its metatable must be registered.
function M.register_instance(obj)
  INSTANCES[obj] = AWAIT[getmetatable(obj)]
end

-- Can 'x' be awaited? (The library's own awaitables cost one lookup.)
function M.isawaitable(x)
  local mt = getmetatable(x)
  return AWAIT[mt] ~= nil or (type(mt) == "table" and mt.__await ~= nil)
end

-- Let await find 'mt' (a metatable of this library's) without a lookup.
function M.register_awaitable(mt)
  AWAIT[mt] = mt.__await
end

-- The awaitable that is done already, with no results (a put that went
-- through at once, say): awaiting it returns at once.
-- (__isdone marks the awaitables that stand for something done already:
-- see M.isdone)
local Done = {__name = "asyncio.done", __await = function() end, __isdone = true}
local DONE = setmetatable({}, Done)
M.DONE = DONE
AWAIT[Done] = false

local function await(aw, extra)
  if not rt.current then
    local t = rt.running_task()
    if not t then
      M.forgo(aw)  -- refused here: not reported again as never awaited
      raise("'await' called outside a running task")
    end
    if not rt.current then  -- (not kept: a finalizer or hook inside a wait)
      M.forgo(aw)
      raise(NOWAIT_MSG)
    end
  end
  if extra ~= nil then
    raise("bad argument #2 to 'await' (one awaitable expected: gather awaits several)")
  end
  if aw == DONE then return end
  local f = INSTANCES[aw]
  if f == nil then
    local mt = getmetatable(aw)
    if mt == Coro then  -- await_coro inline: one call less per awaited coroutine object
      local n = aw[1]
      if n == 1 then
        aw[1] = false
        return aw[2](aw[5])
      end
      return await_coro(aw)
    end
    f = AWAIT[mt]
    if f == nil then
      f = type(mt) == "table" and mt.__await
      if not f then
        raise(("bad argument #1 to 'await' (%s)"):format(typeerror("awaitable", aw)))
      end
    end
  end
  if f then return f(aw) end
  -- false: done already, with no results
end
M.await = await

M.register_instance(SLEEP0)

-- Does 'aw' stand for something that happened already (a put that went
-- through at once, an Event set)? Awaiting it only gives its results: a
-- time limit already up must not say it timed out (wait_for).
function M.isdone(aw)
  local mt = getmetatable(aw)
  return type(mt) == "table" and rawget(mt, "__isdone") == true
end

-- sleep(delay, ...): an awaitable that resumes after 'delay' seconds with '...'.
local debug_sleep

local valid_delay = 0  -- the last delay seen to be a number

function M.sleep(delay, ...)
  if DEBUG then return debug_sleep(delay, ...) end
  local n = select("#", ...)
  if n == 0 and delay == 0 then return SLEEP0 end
  -- (a number, not NaN, is checked inline: one frame less for the task's
  -- coroutine to keep while it sleeps; the delay seen last needs no call)
  if delay ~= valid_delay then
    if delay == nil or delay ~= tonumber(delay) then util.checkdelay(delay, 1, "sleep") end
    valid_delay = delay
  end
  if n == 0 then
    if delay <= 0 then return SLEEP0 end
    local wfn, wline = where(1)
    return setmetatable({delay, wfn, wline}, Sleep)
  end
  local wfn, wline = where(1)
  return setmetatable({delay, wfn, wline, n = n + 3, ...}, Sleep)
end

-- In debug mode every sleep is its own object (no shared sleep(0)), tracked;
-- awaiting it says so (its own metatable: the fast path does not look).
local DebugSleep = {__name = "asyncio.sleep", __index = Sleep}
DebugSleep.__await = function(s)
  s._awaited = true
  return await_sleep(s)
end
M.register_awaitable(DebugSleep)

debug_sleep = function(delay, ...)
  util.checkdelay(delay, 1, "sleep")
  local n = select("#", ...)
  local s = setmetatable(n == 0 and {delay, false} or {delay, false, false, n = n + 3, ...},
    DebugSleep)
  return track(s, ("asyncio.sleep(%s)"):format(tostring(delay)))
end


-- Tasks ---------------------------------------------------------------------

-- Awaitable 'aw' was handed to a task (create_task, wait_for) that was
-- cancelled before it started: whoever handed it over hears of that
-- cancellation, so it is not reported as never awaited. (A user's own
-- awaitable is left as it is.)
local function forgo(aw)
  if rt.unawaited[aw] then
    rt.unawaited[aw] = nil
    aw._awaited = true
  end
  local mt = getmetatable(aw)
  if mt == Sleep then setmetatable(aw, AwaitedSleep)
  elseif mt == DebugSleep then aw._awaited = true
  elseif type(mt) == "table" and rawget(mt, "__forgo") then mt.__forgo(aw) end
end
M.forgo = forgo

-- The first function a task's coroutine runs: the body, by a tail call (no
-- frame left behind), unless the task was cancelled before it started.
-- (Only the loop can start it: see task.c's spawn.)
local function enter(task, fn, ...)
  rt.current = task
  if task._must_cancel then
    if fn == await then forgo((...)) end
    raise_cancel(task)
  end
  return fn(...)
end

-- A new task on 'loop' running fn(...), started on a later step. The
-- fields a task usually gets are in the constructor (false until set), so
-- that its table is allocated once, with room for two more (8 slots).
local ntasks = 0  -- tasks made so far: the default names are Task-1, Task-2, ... (CPython)

local function spawn(loop, fn, ...)
  ntasks = ntasks + 1
  local task = setmetatable({_state = PENDING, _loop = loop, _co = false, _v = false,
    _callbacks = false, _must_cancel = false, _id = ntasks}, Task)
  task._co = loop._core:spawn(task, enter, task, fn, ...)
  return task
end

-- task.c's error for a task whose coroutine the program closed or resumed.
local TAMPERED = "asyncio: the task's coroutine was closed or resumed outside its event loop"

-- Such a task never runs again, so the code that would leave what it waits
-- on (a stream's queue of readers, a lock's waiters) never runs: its wait
-- record does that instead (_abandon), so that nobody waits for it.
local function abandon(task)
  local w = task._waiting
  task._waiting = false
  if w and w._abandon then pcall(w._abandon, w, task) end
end

-- Debug mode: 'task' returned normally although a cancellation was
-- raised in it and never taken back (uncancel): it caught its
-- CancelledError (a plain pcall around await) and went on.
local function swallowed(task)
  local loop = task._loop
  pcall(loop.call_exception_handler, loop, {task = task, message = ("%s returned normally " ..
    "after a cancellation was raised in it: it caught its CancelledError (a pcall around " ..
    "await?) and cannot be cancelled that way; use asyncio.pcall, or raise it again")
    :format(task:get_name())})
end

-- The loop reports how the body of 'task' ended: the number of results
-- and the results, or false, the error and the dead coroutine (for the
-- traceback). Called again after running out of memory, it only hands the
-- outcome decided the first time to the waiters it has not reached yet.
local function finish(task, n, ...)
  rt.current = false
  if task._state ~= PENDING then  -- called again (task.c retries out of memory)
    schedule_callbacks(task)
    return
  end
  if n then
    if DEBUG and not task._must_cancel and (task._num_cancels_requested or 0) > 0 then
      swallowed(task)
    end
    if task._must_cancel then  -- cancelled right before it returned
      task._must_cancel = false
      task._state = CANCELLED
      schedule_callbacks(task)
    elseif n == 1 then  -- the common case, without passing '...' on
      task._v = ...
      task._state = FINISHED
      schedule_callbacks(task)
    elseif n == 0 then  -- a body that returns nothing (see future.lua's store)
      task._n = 0
      task._state = FINISHED
      schedule_callbacks(task)
    else
      resolve(task, n, ...)
    end
    return
  end
  local e, co = ...
  if e == TAMPERED then abandon(task) end
  if CancelledError:is(e) then
    task._state = CANCELLED
    task._cancel_error = e
    schedule_callbacks(task)
  else
    task:_set_exception(e, co and traceback(co, describe(e)))
    -- Ctrl-C that landed in this task: the run raises it; not an error of
    -- the program's left unretrieved
    if KeyboardInterrupt:is(e) then task._guard = nil end
  end
end

-- A task for create_task(what, ...) where 'what' is not a function (the
-- callers try that case first): a coroutine object or an awaitable.
-- The options of create_task(coro, opts): only after a coroutine object or
-- an awaitable (a function takes what follows as its arguments).
local TASK_OPTIONS = {name = true}

-- The name the options give, as a string, or nil: asked before anything
-- starts, since a __tostring may raise (and the task would run unheld).
local function name_of(opts)
  if opts ~= nil and opts.name ~= nil then return tostring(opts.name) end
end

local function spawn_for(loop, fname, what, opts, ...)
  local mt = getmetatable(what)
  if mt == Coro or (type(mt) == "table" and mt.__await) then
    if select("#", ...) > 0 then
      raise(("bad argument #3 to '%s' (a coroutine object takes no arguments)"):format(fname))
    end
    util.checkopts(opts, TASK_OPTIONS, 2, fname)
    local name = name_of(opts)
    local t
    if mt == Coro then
      local nargs = claim(what, fname)
      t = spawn(loop, what[2], unpack(what, 5, nargs + 4))
    else
      t = spawn(loop, await, what)
    end
    t._name = name
    return t
  end
  raise(("bad argument #1 to '%s' (%s)"):format(fname,
    typeerror("coroutine object or function", what)))
end

function M.create_task(what, ...)
  local loop = rt.loop
  if not loop then raise("'create_task' called with no running event loop") end
  if seen_functions[what] or isfunction(what) then  -- (the lookup first: no call)
    return spawn(loop, async_body[what] or what, ...)
  end
  return spawn_for(loop, "create_task", what, ...)
end

-- loop:create_task(...): on a loop that may not be running yet.
function M.loop_create_task(loop, what, ...)
  if isfunction(what) then return spawn(loop, async_body[what] or what, ...) end
  return spawn_for(loop, "create_task", what, ...)
end

-- A future or task for awaitable 'aw' (coroutine objects become tasks).
function M.ensure_future(aw, fname, n, loop)
  local mt = getmetatable(aw)
  if mt == Task then return aw end
  if mt ~= Coro then
    if type(mt) == "table" and mt.__isfuture then return aw end
    if type(mt) ~= "table" or not mt.__await then
      raise(("bad argument #%d to '%s' (%s)"):format(n or 1, fname, typeerror("awaitable", aw)))
    end
  end
  loop = loop or rt.loop
  if loop == nil then raise(("'%s' called with no running event loop"):format(fname)) end
  if mt == Coro then
    local nargs = aw[1] or claim(aw, fname)  -- (claim raises for one awaited already)
    aw[1] = false
    if nargs == 1 then return spawn(loop, aw[2], aw[5]) end
    return spawn(loop, aw[2], unpack(aw, 5, nargs + 4))
  end
  return spawn(loop, await, aw)
end

local function checktask(self, fname)
  if getmetatable(self) ~= Task then
    raise(("bad argument #1 to '%s' (%s)"):format(fname, typeerror("asyncio.Task", self)))
  end
end

-- Cancel: what the task waits on is told first. A task waits on nothing
-- (it is ready, running or asleep: the C core knows), or on one object in
-- _waiting, a future or a queue, which has two methods:
--   w:_cancel_wait(task, msg): cancel what is awaited, if that is the
--     meaning (a future: true if that cancellation will wake the task);
--   w:_abort_wait(task): forget the task as a waiter.
function Task:cancel(msg)
  checktask(self, "cancel")
  if self._state ~= PENDING then return false end
  self._num_cancels_requested = (self._num_cancels_requested or 0) + 1
  local w = self._waiting
  if w and not self._in_cancel then
    self._in_cancel = true  -- tasks awaiting each other in a cycle end here
    local done = w:_cancel_wait(self, msg)
    self._in_cancel = nil
    if done then return true end
  end
  self._must_cancel = true
  self._cancel_message = msg
  w = self._waiting
  if w then w:_abort_wait(self) end
  -- nothing if it is ready or running already; a task woken here has left
  -- its wait, so the cancellation is delivered even if uncancel comes
  -- before it runs (CPython cancels the future it waits on)
  if self._loop._core:wake(self._co) then self._cancel_woken = true end
  return true
end

function Future:_cancel_wait(_, msg) return self:cancel(msg) end
function Future:_abort_wait(task) self:_remove_waiter(task) end

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
    if n == 0 and not self._cancel_woken then self._must_cancel = false end
  end
  return n
end

function Task:get_name()
  checktask(self, "get_name")
  if self._name == nil then self._name = "Task-" .. self._id end
  return self._name
end

function Task:set_name(name)
  checktask(self, "set_name")
  self._name = tostring(name)
end

-- The coroutine that runs the task (it serves this task only).
function Task:get_coro()
  checktask(self, "get_coro")
  return self._co
end

-- Where the task failed, or where it is suspended now; nil when neither.
function Task:traceback()
  checktask(self, "traceback")
  if self._tb then return self._tb end
  if self._state == PENDING and getinfo(self._co, 0, "l") ~= nil then  -- started
    return traceback(self._co, "traceback of " .. self:get_name())
  end
  return nil
end

function Task:__tostring()
  local s = self._state
  if s == "FINISHED" and self._failed then s = "FINISHED error" end
  return ("<asyncio.Task %s %s>"):format(self:get_name(), s)
end

function M.current_task() return rt.current or rt.running_task() end

function M.all_tasks(loop)
  if loop ~= nil or rt.loop ~= nil then loop = rt.checkloop(loop, 1, "all_tasks") end
  local set = {}
  if loop == nil or loop._core:is_closed() then return set end
  for _, t in ipairs(loop._core:tasks()) do set[t] = true end
  return set
end


-- Loop hooks (called by the C core; see task.c) ---------------------------

-- The three functions a core loop calls: a body ended, a callback raised,
-- a body yielded without await.
-- Task has every method of Future copied in and no class above it: a field
-- a task does not have (_failed on a success, say) costs one lookup, not two.
for k, v in pairs(Future) do
  if rawget(Task, k) == nil then Task[k] = v end
end
setmetatable(Task, nil)

function M.hooks(loop)
  return {
    finish,
    function(err, fn, value)
      rt.current = false
      local handle = type(value) == "table" and rawget(value, "_is_handle") and value or nil
      loop:call_exception_handler({message = "Exception in callback",
        exception = err, callback = fn, handle = handle})
    end,
    function(task, co)
      rt.current = false
      local d = getinfo(co, 1, "Sl")  -- the function that called coroutine.yield
      local at = d and d.currentline > 0 and ("%s:%d: "):format(d.short_src, d.currentline) or ""
      task:_set_exception(at .. "task yielded outside 'await' (use asyncio.await, not " ..
        "coroutine.yield)", traceback(co))
    end,
    function(what, seconds)  -- debug mode: a step held the loop too long
      rt.current = false
      local ctx = {seconds = seconds}
      if getmetatable(what) == Task then
        local frames = require("asyncio.dump").frames(what)
        ctx.task = what
        ctx.message = ("Executing %s took %.3f seconds%s"):format(what:get_name(), seconds,
          frames[1] and what._state == PENDING and
            (" (its step ended at " .. frames[1]:gsub(": in .*$", "") .. ")") or "")
      else
        ctx.callback = what
        ctx.message = ("Executing callback %s took %.3f seconds"):format(tostring(what), seconds)
      end
      loop:call_exception_handler(ctx)
    end,
    function(task, err)  -- closing a <close> variable of an ended task raised
      rt.current = false
      loop:call_exception_handler({task = task, exception = err, message = ("error in a <close> " ..
        "variable of %s, closed after the task had failed (it keeps its own error)")
        :format(task:get_name())})
    end,
  }
end

return M
