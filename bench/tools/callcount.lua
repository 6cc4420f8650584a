-- bench/tools/callcount.lua PROGRAM WORKLOAD N: run a benchmark program
-- with a call hook on every thread and print "calls N c_calls M" (every
-- Lua and C function call, counted).
local program, workload, n = ...
local total, ctotal = 0, 0
local getinfo = debug.getinfo
local function hook()
  total = total + 1
  if getinfo(2, "S").what == "C" then ctotal = ctotal + 1 end
end
local cocreate, sethook = coroutine.create, debug.sethook
coroutine.create = function(f)  -- luacheck: ignore 122
  local co = cocreate(f)
  sethook(co, hook, "c")
  return co
end
coroutine.wrap = function(f)  -- luacheck: ignore 122
  local co = coroutine.create(f)
  return function(...)
    local r = table.pack(coroutine.resume(co, ...))
    if not r[1] then error(r[2], 2) end
    return table.unpack(r, 2, r.n)
  end
end
-- lua-asyncio makes its tasks' coroutines in C: a new thread inherits the
-- hook's mask but not the Lua hook function (debug.sethook keeps that per
-- thread), so hook each one as it is made. The wrapper's own two calls
-- (itself and sethook) are taken back out of the count.
local ok, core = pcall(require, "asyncio.core")
if ok and core.loop_methods then
  local spawn = core.loop_methods.spawn
  core.loop_methods.spawn = function(...)
    local co = spawn(...)
    sethook(co, hook, "c")
    total, ctotal = total - 2, ctotal - 1
    return co
  end
end
local chunk = assert(loadfile(program))
arg = {[0] = program, workload, n}  -- luacheck: ignore 121
-- the program's own report goes to stdout; ours to stderr, after it
local exit = os.exit
os.exit = function(...)  -- luacheck: ignore 122
  sethook()
  io.stderr:write(("calls %d c_calls %d\n"):format(total, ctotal))
  return exit(...)
end
sethook(hook, "c")
chunk(workload, n)
sethook()
io.stderr:write(("calls %d c_calls %d\n"):format(total, ctotal))
