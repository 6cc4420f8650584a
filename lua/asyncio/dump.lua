-- dump.lua: what every task of a loop is doing, as text: its name, where
-- it is (ready, running, suspended), what it awaits (a task, a gather, a
-- lock, a queue, a sleep and its time left, a socket read, ...), its Lua
-- traceback, and who awaits whom as a tree. For print_tasks, Ctrl-\
-- (SIGQUIT) while asyncio.run runs, and run's deadlock error.

local core = require "asyncio.core"
local rt = require "asyncio.runtime"
local util = require "asyncio.util"
local text_of = util.describe

local getmetatable, format, concat = core.metatable, string.format, table.concat
local traceback = debug.traceback

local M = {}

local STREAM_KINDS = {[0] = "a read on a stream", "room to write on a stream (drain)",
                      "a stream to connect or close"}
local OBJECTS = {["asyncio.Process"] = "a child process", ["asyncio.FsRequest"] = "a file request",
                 ["asyncio.Resolve"] = "a name lookup", ["asyncio.UDP"] = "a datagram"}

local function article(what)
  return (what:find("^[AEIOU]") and "an " or "a ") .. what
end

local function name_of(mt)
  return type(mt) == "table" and rawget(mt, "__name") or nil
end

-- What task 't' awaits, in words, and the tasks it awaits (for the tree).
local function awaits(t, loop)
  local where, deadline = loop._core:task_info(t._co)
  if where == nil then return "done", {} end
  if where ~= "suspended" then return where == "ready" and "ready to run" or "running", {} end
  if deadline == math.huge then return "sleep with no end (until cancelled)", {} end
  if deadline then return format("sleep, %.3f s left", deadline - loop:time()), {} end
  local w = t._waiting
  if not w then return "suspended (a sleep with no deadline, or a wake-up due)", {} end
  local mt = getmetatable(w)
  local name = name_of(mt)
  if name == "asyncio.Task" then return "task " .. w:get_name(), {w} end
  if name == "asyncio.Queue" then return "a queue", {} end
  if type(w) ~= "table" then return text_of(w), {} end
  if rawget(w, "_what") then return article(w._what), {} end  -- a sync primitive's waiter
  if rawget(w, "_children") then  -- a gather
    local kids = {}
    for i = 1, w._count or #w._children do
      local c = w._children[i]
      if name_of(getmetatable(c)) == "asyncio.Task" and c._state == "PENDING" then
        kids[#kids + 1] = c
      end
    end
    return format("gather of %d (%d pending)", w._count or #w._children, w._left or #kids), kids
  end
  if name == "asyncio.StreamWait" then return STREAM_KINDS[w[2]] or "a stream", {} end
  if name == "asyncio.ObjectWait" then
    return OBJECTS[name_of(getmetatable(w[1]))] or text_of(w[1]), {}
  end
  if rawget(w, "__isfuture") ~= nil or (type(mt) == "table" and mt.__isfuture) then
    return "a future", {}
  end
  return text_of(w), {}
end

-- The library's own files: their frames are left out of a task's traceback.
local LIBDIR = debug.getinfo(1, "S").short_src:gsub("dump%.lua$", "")

-- The program's frames in traceback text 'tb' (the library's and C's
-- left out), as a list of lines.
local function program_frames(tb)
  local out = {}
  for line in tb:gmatch("[^\n]+") do
    line = line:gsub("^%s+", "")
    if line ~= "stack traceback:" and line ~= "(...tail calls...)" and not line:find("^%[C%]")
       and line:sub(1, #LIBDIR) ~= LIBDIR then
      out[#out + 1] = line
    end
  end
  return out
end
M.program_frames = program_frames

-- The program's frames of task 't'.
local function frames(t)
  return program_frames(t._co and traceback(t._co, nil, 0) or "")
end
M.frames = frames

-- The text of one task: a header line and its traceback, indented.
local function describe(t, loop, depth, lines)
  local what, kids = awaits(t, loop)
  local pad = ("  "):rep(depth)
  lines[#lines + 1] = format("%s* %s: %s", pad, t:get_name(), what)
  for _, line in ipairs(frames(t)) do lines[#lines + 1] = pad .. "    " .. line end
  return kids
end

-- dump_tasks([loop]) -> text: every pending task of 'loop' (default: the
-- running one), as a tree of who awaits whom.
function M.dump_tasks(loop)
  return M._dump_tasks(rt.checkloop(loop, 1, "dump_tasks"))
end

function M._dump_tasks(loop)
  if loop._core:is_closed() then return "no tasks (the loop is closed)\n" end
  local tasks = loop._core:tasks()
  local awaited, kids_of = {}, {}
  for _, t in ipairs(tasks) do
    local _, kids = awaits(t, loop)
    kids_of[t] = kids
    for _, k in ipairs(kids) do awaited[k] = true end
  end
  local lines = {format("%d task%s on %s", #tasks, #tasks == 1 and "" or "s",
    loop._core:is_virtual() and format("a virtual clock at %.3f s", loop:time()) or "the loop")}
  local seen = {}
  local function walk(t, depth)
    if seen[t] then
      lines[#lines + 1] = ("  "):rep(depth) .. "* " .. t:get_name() .. " (shown above)"
      return
    end
    seen[t] = true
    describe(t, loop, depth, lines)
    for _, k in ipairs(kids_of[t] or {}) do walk(k, depth + 1) end
  end
  for _, t in ipairs(tasks) do
    if not awaited[t] then walk(t, 0) end
  end
  for _, t in ipairs(tasks) do  -- cycles: tasks that await each other
    if not seen[t] then walk(t, 0) end
  end
  return concat(lines, "\n") .. "\n"
end

-- print_tasks([loop], [file]): write dump_tasks to 'file' (default stdout).
function M.print_tasks(loop, file)
  local text = M._dump_tasks(rt.checkloop(loop, 1, "print_tasks"))
  util.argcheck(file == nil or io.type(file) == "file" or
    (type(file) == "table" and type(file.write) == "function"), 2, "print_tasks",
    util.typeerror("file", file))
  ;(file or io.stdout):write(text)
  ;(file or io.stdout):flush()
end

return M
