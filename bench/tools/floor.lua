-- bench/tools/floor.lua: what the least a task and a coroutine object can
-- cost in stock Lua 5.4, counted: the floor under any design that keeps one
-- Lua coroutine per task and a Lua table per task or per coroutine object
-- (issue 20's bars are judged against it; see bench/README.md).
--   lua5.4 bench/tools/floor.lua            the table (runs itself under callgrind)
--   lua5.4 bench/tools/floor.lua MODE N     one run of N units
-- Modes, per unit:
--   thread  a coroutine created, started, yielding once, resumed to its end, collected
--   named   thread + a task table of seven named fields with a metatable
--   array   thread + the same seven fields in the array part
--   object  a five-slot table with a metatable whose __gc runs (a coroutine object)
--   plain   the same without __gc
local mode, n = arg[1], tonumber(arg[2])

local MODES = {"thread", "named", "array", "object", "plain"}

if not mode then
  local function ir(m, count)
    local p = assert(io.popen(("valgrind --tool=callgrind --callgrind-out-file=/dev/null " ..
      "lua5.4 %s %s %d 2>&1"):format(arg[0], m, count)))
    local out = p:read("a")
    p:close()
    return assert(tonumber(out:match("Collected : (%d+)")), out)
  end
  print("| unit | instructions (2N - N, N = 20000) |")
  print("| --- | --- |")
  for _, m in ipairs(MODES) do
    print(("| %s | %d |"):format(m, (ir(m, 40000) - ir(m, 20000)) // 20000))
  end
  return
end

local cocreate, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local setmetatable = setmetatable
local Task = {}
local Coro = {}
local CoroGC = {__gc = function(c) if c[1] then error("never awaited") end end}

if mode == "object" or mode == "plain" then
  local mt = mode == "object" and CoroGC or Coro
  local keep = {}  -- luacheck: ignore 241 (holds the newest objects, as a program would)
  for i = 1, n do
    local c = setmetatable({1, print, false, 0, i}, mt)
    c[1] = false  -- awaited: its finalizer finds nothing to say
    keep[i % 64] = c
  end
  collectgarbage()
  return
end

local function job(i) yield(); return i end
local cos, tasks = {}, {}  -- luacheck: ignore 241 (tasks: held until the end)
for i = 1, n do
  local co = cocreate(job)
  cos[i] = co
  if mode == "named" then
    tasks[i] = setmetatable({_state = "PENDING", _loop = Task, _co = co, _v = false,
      _callbacks = false, _must_cancel = false, _id = i}, Task)
  elseif mode == "array" then
    tasks[i] = setmetatable({"PENDING", Task, co, false, false, false, i}, Task)
  end
end
local sum = 0
for i = 1, n do resume(cos[i], i) end
for i = 1, n do
  local _, v = resume(cos[i])
  sum = sum + v
end
cos, tasks = nil, nil  -- luacheck: ignore 311 (dropped: collected below)
collectgarbage()
assert(sum == n * (n + 1) // 2)
