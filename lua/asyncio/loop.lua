-- loop.lua: EventLoop, the Lua face of a core loop (loop.c): running until
-- a future is done, callbacks with handles, the exception handler.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local gather = require "asyncio.gather"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise = util.raise

local argcheck, typeerror, pack, unpack = util.argcheck, util.typeerror, util.pack, util.unpack

local EventLoop = {__name = "asyncio.EventLoop"}
EventLoop.__index = EventLoop

local Handle = {__name = "asyncio.Handle"}
Handle.__index = Handle

local function run_handle(h)
  if not h._cancelled then
    h._loop, h._timer = nil, nil
    h._fn(unpack(h, 1, h.n))
  end
end

function Handle:cancel()
  if self._cancelled then return end
  self._cancelled = true
  if self._timer and self._loop and not self._loop._core:is_closed() then
    self._loop._core:untimer(self._timer)
  end
end

function Handle:cancelled() return self._cancelled == true end
function Handle:when() return self._when end
function Handle:__tostring()
  return ("<asyncio.Handle%s>"):format(self._cancelled and " cancelled" or "")
end

local function newhandle(loop, fn, ...)
  local h = pack(...)
  h._fn, h._loop, h._is_handle = fn, loop, true
  return setmetatable(h, Handle)
end

local function checkself(self, fname)
  if getmetatable(self) ~= EventLoop then
    raise(("bad argument #1 to '%s' (%s)"):format(fname,
      typeerror("asyncio.EventLoop", self)))
  end
end

local function checkloop(self, fname)
  checkself(self, fname)
  if self._core:is_closed() then raise(fname .. ": attempt to use a closed event loop") end
end

-- The C core keeps every pending task (loop._core:tasks()), so that run()
-- can cancel and finish every one of them.
local LOOP_OPTIONS = {clock = true, debug = true, slow_callback_duration = true}

-- ASYNCIO_DEBUG=1 in the environment: every new loop is in debug mode.
local function env_debug()
  local v = os.getenv("ASYNCIO_DEBUG")
  return v ~= nil and v ~= "" and v ~= "0"
end

-- new_event_loop([opts]): opts.clock "real" (default) or "virtual": time
-- stands still while anything can run and jumps to the next deadline when
-- every task waits (loop.c); opts.debug and opts.slow_callback_duration:
-- debug mode (see set_debug below).
function rt.new_event_loop(opts, fname, n)
  fname, n = fname or "new_event_loop", n or 1  -- asyncio.run checks its options here too
  argcheck(opts == nil or type(opts) == "table", n, fname, typeerror("table", opts))
  opts = opts or {}
  for k in pairs(opts) do
    argcheck(LOOP_OPTIONS[k], n, fname, ("unknown option '%s'"):format(tostring(k)))
  end
  argcheck(opts.clock == nil or opts.clock == "real" or opts.clock == "virtual", n,
    fname, "clock must be \"real\" or \"virtual\"")
  argcheck(opts.debug == nil or type(opts.debug) == "boolean", n, fname,
    "debug must be a boolean")
  local slow = opts.slow_callback_duration
  argcheck(slow == nil or (type(slow) == "number" and slow > 0 and slow < 1e6), n,
    fname, "slow_callback_duration must be a positive number of seconds")
  -- every field the loop gets at once: once the core loop exists nothing
  -- here allocates (a memory error now would leave it open)
  local loop = {_core = false, _debug = false, slow_callback_duration = slow or 0.1}
  local hooks, virtual = task.hooks(loop), opts.clock == "virtual"
  local c, name, msg = core.new_loop(hooks, virtual)
  if not c and (name == "EMFILE" or name == "ENFILE") then
    -- loops the program dropped unclosed may hold the descriptors: their
    -- finalizers close them
    collectgarbage()
    collectgarbage()
    c, name, msg = core.new_loop(hooks, virtual)
  end
  if not c then raise(("cannot create event loop: %s"):format(msg or name)) end
  loop._core = c
  -- the metatable (with __gc) after the core loop: finalizers run newest
  -- first, so EventLoop.__gc sees the core loop still open
  setmetatable(loop, EventLoop)
  if opts.debug == nil then loop._debug = env_debug() else loop._debug = opts.debug end
  return loop
end
rt.LOOP_OPTIONS = LOOP_OPTIONS

-- loop:set_debug(flag), loop:get_debug(): debug mode (applies from the
-- next run): never-awaited coroutine objects and sleeps, steps longer than
-- loop.slow_callback_duration (seconds, default 0.1), and tasks still
-- pending when the loop is closed are reported to the exception handler.
function EventLoop:set_debug(flag)
  checkself(self, "set_debug")
  self._debug = flag and true or false
end

function EventLoop:get_debug()
  checkself(self, "get_debug")
  return self._debug
end

-- loop:is_virtual(): does this loop run on a virtual clock?
function EventLoop:is_virtual()
  checkself(self, "is_virtual")
  return self._core:is_virtual()
end

function EventLoop:time()
  checkloop(self, "time")
  return self._core:time()
end

function EventLoop:call_soon(fn, ...)
  checkloop(self, "call_soon")
  argcheck(type(fn) == "function", 1, "call_soon", typeerror("function", fn))
  local h = newhandle(self, fn, ...)
  self._core:call_soon(run_handle, h)
  return h
end

function EventLoop:call_later(delay, fn, ...)
  checkloop(self, "call_later")
  util.checkdelay(delay, 1, "call_later")
  argcheck(type(fn) == "function", 2, "call_later", typeerror("function", fn))
  local h = newhandle(self, fn, ...)
  h._timer, h._when = self._core:timer(delay, run_handle, h)
  return h
end

function EventLoop:call_at(when, fn, ...)
  checkloop(self, "call_at")
  util.checkdelay(when, 1, "call_at")
  argcheck(type(fn) == "function", 2, "call_at", typeerror("function", fn))
  local h = newhandle(self, fn, ...)
  h._timer, h._when = self._core:timer_at(when, run_handle, h)
  return h
end

function EventLoop:create_task(what, ...)
  checkloop(self, "create_task")
  return task.loop_create_task(self, what, ...)
end

function EventLoop:create_future()
  checkloop(self, "create_future")
  return Future._new(Future, self)
end

function EventLoop:is_running()
  checkself(self, "is_running")
  return self._core:is_running()
end

function EventLoop:is_closed()
  checkself(self, "is_closed")
  return self._core:is_closed()
end

function EventLoop:stop()
  checkloop(self, "stop")
  self._core:stop()
end

function EventLoop:close()
  checkself(self, "close")
  if self._core:is_running() then raise("cannot close a running event loop") end
  if self._debug and not self._core:is_closed() then  -- they can never finish now
    for _, t in ipairs(self._core:tasks()) do
      if not t:done() then
        self:call_exception_handler({message = "Task was destroyed but it is pending: " ..
          t:get_name(), task = t})
      end
    end
  end
  self._core:close()
end

-- The part of run_core that may fail: marking the loop as the running one
-- happens inside the pcall, so a failure anywhere (even memory running out
-- while pcall sets up) never leaves a loop marked running.
local function run_marked(self, watch_sigint)
  rt.loop = self
  rt.recent[1] = self
  if self._debug then
    task.set_debug(true)
    self._core:set_slow(self.slow_callback_duration)
  end
  return self._core:run(watch_sigint)
end

-- Run the core with this loop as the running one; returns the C status.
local function run_core(self, watch_sigint)
  if rt.loop ~= nil then
    raise("cannot run an event loop while another loop is running")
  end
  local ok, status = pcall(run_marked, self, watch_sigint)
  -- none of this allocates, so it cannot fail halfway
  rt.loop = nil
  if self._debug then
    task.set_debug(false)
    self._core:set_slow(0)
  end
  if not ok then error(status, 0) end
  return status
end
EventLoop._run_core = run_core

-- Ctrl-C stops a task that computes without awaiting by raising this in
-- it (interrupt.c), once it runs code outside these files.
local KeyboardInterrupt = errors.KeyboardInterrupt
core.interrupt_config(function() return util.stamp(KeyboardInterrupt()) end,
  (debug.getinfo(1, "S").source:match("^@(.*)loop%.lua$") or "\0"))

-- The KeyboardInterrupt to raise after a Ctrl-C: the one raised in 'fut'
-- by the interruption, if it ended with it (then retrieved), or a new one.
local function interruption(fut)
  if fut and fut._failed and KeyboardInterrupt:is(fut._exc) then
    fut._guard = nil
    return fut._exc
  end
  return KeyboardInterrupt()
end
EventLoop._interruption = interruption

-- Run until stop() is called or nothing is left that could ever run.
-- Ctrl-C stops the loop and raises KeyboardInterrupt; it can be run again.
function EventLoop:run_forever()
  checkloop(self, "run_forever")
  local status = run_core(self, true)
  if status == "interrupted" then raise(interruption(nil)) end
  return status
end

-- Run until 'fut' is done (or stop(), or SIGINT if 'watch_sigint'). Returns
-- the C status: "stopped", "interrupted" or "idle".
function EventLoop:_run_until(fut, watch_sigint)
  local loop, active = self, true
  -- 'fut' done stops this run only: if the run ends another way (Ctrl-C)
  -- with this callback already scheduled, it must not stop the next run
  local function stop() if active then loop._core:stop() end end
  fut:add_done_callback(stop)
  local ok, status = pcall(run_core, self, watch_sigint)
  active = false
  fut:remove_done_callback(stop)
  if not ok then error(status, 0) end
  return status
end

-- Cancel every task still pending and run until they have all finished.
-- A failure among them goes to the exception handler if 'report' (as
-- asyncio.run does; a KeyboardInterrupt of Ctrl-C never does); with
-- 'watch_sigint', a Ctrl-C stops the wait. Returns true once they are all
-- done, else false and the run's status. asyncio.run, the busted helper
-- and the async REPL end this way.
function EventLoop:_cancel_all(report, watch_sigint)
  local pending, n = {}, 0
  for _, t in ipairs(self._core:tasks()) do
    if not t:done() then
      t:cancel()
      n = n + 1
      pending[n] = t
    end
  end
  if n == 0 then return true end
  local all = gather.gather_futures(self, pending, n, true)
  local status = self:_run_until(all, watch_sigint)
  if not all:done() then return false, status end
  for i = 1, n do
    local t = pending[i]
    if t._failed then
      t._guard = nil
      if report and not KeyboardInterrupt:is(t._exc) then
        self:call_exception_handler({message = "unhandled error during asyncio.run() shutdown",
          exception = t._exc, failed = true, task = t, traceback = t._tb})
      end
    end
  end
  return true
end

-- Run until 'aw' is done; its results, or its error raised. Ctrl-C stops
-- the loop and raises KeyboardInterrupt ('aw' goes on pending); the loop
-- can be closed or run again.
function EventLoop:run_until_complete(aw)
  checkloop(self, "run_until_complete")
  if rt.loop ~= nil then raise("cannot run an event loop while another loop is running") end
  local fut = task.ensure_future(aw, "run_until_complete", 1, self)
  local status = self:_run_until(fut, true)
  if status == "interrupted" then raise(interruption(fut)) end
  if not fut:done() then
    if status == "idle" then
      raise("run_until_complete: deadlock: the future is not done and nothing is left that could complete it")
    end
    raise("event loop stopped before the future completed")
  end
  return fut:result()
end

function EventLoop:set_exception_handler(fn)
  checkloop(self, "set_exception_handler")
  argcheck(fn == nil or type(fn) == "function", 1, "set_exception_handler",
           typeerror("function or nil", fn))
  self._handler = fn
end

function EventLoop:get_exception_handler()
  checkself(self, "get_exception_handler")
  return self._handler
end

function EventLoop:default_exception_handler(ctx)
  rt.default_exception_handler(self, ctx)
end

-- Call the exception handler with 'ctx'; if it raises, fall back to the default.
function EventLoop:call_exception_handler(ctx)
  checkself(self, "call_exception_handler")
  local h = self._handler
  if h == nil then return rt.default_exception_handler(self, ctx) end
  local ok, err = pcall(h, self, ctx)
  if not ok then
    rt.default_exception_handler(self, {message = "Unhandled error in exception handler",
      exception = err, context = ctx})
    rt.default_exception_handler(self, ctx)
  end
end

-- Signals -----------------------------------------------------------------

local function run_signal(h) h._fn(unpack(h, 1, h.n)) end

local checksignal = util.checksignal

-- loop:add_signal_handler(sig, fn, ...): fn(...) runs on the loop (like
-- call_soon) after signal 'sig' ("SIGUSR1", "USR1" or a number) arrives;
-- replaces an earlier handler of 'sig'. SIGINT stays the loop's own.
function EventLoop:add_signal_handler(sig, fn, ...)
  checkloop(self, "add_signal_handler")
  local num, name = checksignal(sig, "add_signal_handler")
  argcheck(type(fn) == "function", 2, "add_signal_handler", typeerror("function", fn))
  if name == "SIGINT" then
    raise("add_signal_handler: SIGINT is the loop's own (Ctrl-C raises KeyboardInterrupt)")
  end
  if name == "SIGKILL" or name == "SIGSTOP" then
    raise(("add_signal_handler: %s cannot be caught"):format(name))
  end
  if name == "SIGSEGV" or name == "SIGBUS" or name == "SIGFPE" or name == "SIGILL" then
    -- caught and returned from, the faulting instruction runs again for ever
    raise(("add_signal_handler: %s comes from a fault and cannot be handled on the loop"):format(name))
  end
  self._signals = self._signals or {}
  local old = self._signals[num]
  local h = newhandle(self, fn, ...)
  local box, ename, msg = core.signal_start(self._core, num, run_signal, h)
  if not box then raise(("add_signal_handler: %s: %s"):format(ename, msg)) end
  if old then old:_stop() end
  self._signals[num] = box
end

-- loop:remove_signal_handler(sig) -> true if a handler was removed.
function EventLoop:remove_signal_handler(sig)
  checkloop(self, "remove_signal_handler")
  local num = checksignal(sig, "remove_signal_handler")
  local box = self._signals and self._signals[num]
  if not box then return false end
  self._signals[num] = nil
  box:_stop()
  return true
end

-- A loop collected open is closed (its descriptors go back) and reported,
-- as CPython's "unclosed event loop" warning.
function EventLoop:__gc()
  local c = rawget(self, "_core")
  if c == nil or c:is_closed() or c:is_running() then return end
  pcall(c.close, c)
  pcall(rt.default_exception_handler, nil, {message = "unclosed event loop " ..
    "(close it with loop:close(), or use asyncio.run)"})
end

function EventLoop:__tostring()
  local state = self._core:is_closed() and "closed" or
    (self._core:is_running() and "running" or "idle")
  return ("<asyncio.EventLoop %s>"):format(state)
end

rt.EventLoop = EventLoop
return EventLoop
