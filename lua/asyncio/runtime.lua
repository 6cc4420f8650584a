-- runtime.lua: the state shared by the Lua modules: the running loop and the
-- default exception handler. One Lua state runs at most one loop at a time.

local rt = {
  loop = nil,  -- the running EventLoop, or nil
  current = false,  -- see running_task
  repl = false,  -- the async REPL runs (its loop is rt.loop then)
  -- awaitables whose loss would lose work (a put that waits, a drain, a
  -- gather), made and not awaited yet: asyncio.run's end reports those
  -- still there (report_dropped); the collector reports those dropped
  unawaited = setmetatable({}, {__mode = "k"}),
  -- the loop that ran last ([1], weak: it may be collected): a collection
  -- just after run_until_complete still reports to it
  recent = setmetatable({}, {__mode = "v"}),
}

local describe = require("asyncio.util").describe

-- rt.current is the task whose body runs, or false (not nil: the VM sets a
-- field that holds nil on its slow path, and a task sets this one three
-- times). A wait clears it before its task suspends and sets it again once
-- it resumes; a wait whose C call raises instead of suspending (out of
-- memory, a queue bound to another loop) leaves it cleared while the task
-- goes on. So where it is false, the loop is asked which task it runs (nil
-- between tasks and in callbacks). The answer is kept only where the task's
-- own code can yield: a finalizer or a debug hook run inside a wait's C
-- call sees the task, which is about to suspend, and must not leave it
-- behind as the current one.
local isyieldable = coroutine.isyieldable
function rt.running_task()
  local t = rt.current
  if not t then
    local loop = rt.loop
    if loop == nil or loop._core:is_closed() then return nil end
    t = loop._core:running_task()
    if t ~= nil and isyieldable() then rt.current = t end
  end
  return t
end

-- Write an error report to stderr: the last resort, never raises.
function rt.default_exception_handler(_, ctx)
  local parts = {"asyncio: ", describe(ctx.message or "unhandled error")}
  if ctx.exception ~= nil or ctx.failed then
    parts[#parts + 1] = ": " .. describe(ctx.exception)
  end
  if ctx.task ~= nil then parts[#parts + 1] = " (in " .. describe(ctx.task) .. ")" end
  if ctx.traceback then parts[#parts + 1] = "\n" .. ctx.traceback end
  io.stderr:write(table.concat(parts), "\n")
end

-- Report that an awaitable was dropped without being awaited (what was
-- lost: message), to 'loop' (default: the running one) on the loop, or to
-- stderr once there is none. Called from finalizers: it never raises.
function rt.report_unawaited(loop, message)
  local ctx = {message = message}
  loop = loop or rt.loop or rt.recent[1]
  if loop and not loop._core:is_closed() then
    if loop._core:is_running() then  -- report on the loop, not inside the collector
      pcall(loop._core.call_soon, loop._core, function() loop:call_exception_handler(ctx) end)
    else
      pcall(loop.call_exception_handler, loop, ctx)
    end
  else
    pcall(rt.default_exception_handler, nil, ctx)
  end
end

-- Report every awaitable of rt.unawaited not awaited by now (each says
-- what its loss means: its _unawaited method), once. At the end of
-- asyncio.run, nothing can await them any more.
function rt.report_dropped(loop)
  for obj in pairs(rt.unawaited) do
    rt.unawaited[obj] = nil
    if not obj._awaited then
      obj._awaited = true  -- reported: its finalizer says nothing more
      obj._dropped = true  -- nor does an error it gets now (a gather's children cancelled)
      rt.report_unawaited(loop, obj:_unawaited())
    end
  end
end

-- The event loop given as argument #n of 'fname' (nil: the running one,
-- or an error if none runs), checked.
function rt.checkloop(loop, n, fname)
  local util = require "asyncio.util"
  if loop == nil then
    loop = rt.loop
    if loop == nil then util.raise(("%s: no running event loop (pass the loop)"):format(fname)) end
    return loop
  end
  local mt = getmetatable(loop)
  util.argcheck(type(mt) == "table" and mt.__name == "asyncio.EventLoop", n, fname,
    util.typeerror("asyncio.EventLoop", loop))
  return loop
end

return rt
