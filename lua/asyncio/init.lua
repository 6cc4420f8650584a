-- asyncio: Python's asyncio model for Lua 5.4 coroutines. This file is the
-- public table and asyncio.run; the parts live in the modules beside it.

-- Before anything else (this file parses under any Lua): another Lua would
-- fail to load the C core with an undefined symbol that says nothing.
if _VERSION ~= "Lua 5.4" then
  error(("asyncio needs Lua 5.4, this is %s (busted: busted --lua=lua5.4)"):format(_VERSION), 2)
end

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local EventLoop = require "asyncio.loop"
local task = require "asyncio.task"
local gather = require "asyncio.gather"
local queue = require "asyncio.queue"
local util = require "asyncio.util"
local raise = util.raise
local timeouts = require "asyncio.timeouts"
local sync = require "asyncio.sync"
local taskgroup = require "asyncio.taskgroup"
local streams = require "asyncio.streams"
local subprocess = require "asyncio.subprocess"
local udp = require "asyncio.udp"
local files = require "asyncio.files"
local ssl = require "asyncio.ssl"
local dump = require "asyncio.dump"
local threads = require "asyncio.threads"

local argcheck, typeerror = util.argcheck, util.typeerror

local asyncio = {
  _VERSION = "lua-asyncio 0.1.0",
  async = task.async,
  await = task.await,
  iscoroutine = task.iscoroutine,
  iscoroutinefunction = task.iscoroutinefunction,
  pcall = task.pcall,
  xpcall = task.xpcall,
  create_task = task.create_task,
  ensure_future = function(aw) return task.ensure_future(aw, "ensure_future", 1) end,
  current_task = task.current_task,
  all_tasks = task.all_tasks,
  sleep = task.sleep,
  gather = gather.gather,
  wait = timeouts.wait,
  wait_for = timeouts.wait_for,
  timeout = timeouts.timeout,
  as_completed = timeouts.as_completed,
  shield = timeouts.shield,
  task_group = taskgroup.task_group,
  Event = sync.Event,
  Lock = sync.Lock,
  Semaphore = sync.Semaphore,
  BoundedSemaphore = sync.BoundedSemaphore,
  Condition = sync.Condition,
  Barrier = sync.Barrier,
  FIRST_COMPLETED = "FIRST_COMPLETED",
  FIRST_EXCEPTION = "FIRST_EXCEPTION",
  ALL_COMPLETED = "ALL_COMPLETED",
  Queue = queue.Queue,
  LifoQueue = queue.LifoQueue,
  PriorityQueue = queue.PriorityQueue,
  Task = task.Task,
  EventLoop = EventLoop,
  new_event_loop = function(opts) return rt.new_event_loop(opts) end,  -- (not its internal arguments)
  monotonic = require("asyncio.core").monotonic,
  open_connection = streams.open_connection,
  open_unix_connection = streams.open_unix_connection,
  start_server = streams.start_server,
  start_unix_server = streams.start_unix_server,
  getaddrinfo = streams.getaddrinfo,
  getnameinfo = streams.getnameinfo,
  StreamReader = streams.StreamReader,
  StreamWriter = streams.StreamWriter,
  Server = streams.Server,
  create_subprocess_exec = subprocess.create_subprocess_exec,
  create_subprocess_shell = subprocess.create_subprocess_shell,
  Process = subprocess.Process,
  open_udp = udp.open_udp,
  open_file = files.open_file,
  fs = files.fs,
  testing = require "asyncio.testing",
  dump_tasks = dump.dump_tasks,
  print_tasks = dump.print_tasks,
  ssl_context = ssl.ssl_context,
  to_thread = threads.to_thread,
  worker_pool = threads.worker_pool,
  WorkerPool = threads.WorkerPool,
  SSLContext = ssl.SSLContext,
  subprocess = {PIPE = "pipe", DEVNULL = "devnull", STDOUT = "stdout", INHERIT = "inherit"},
  cluster = require "asyncio.cluster",
}

for name, class in pairs(errors) do
  if type(class) == "table" then asyncio[name] = class end
end

-- Future(): a new pending future on the running loop (or bound on first use).
asyncio.Future = setmetatable({}, {
  __index = Future,
  __call = function() return Future._new(Future) end,
})

function asyncio.isfuture(x)
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__isfuture == true
end

function asyncio.get_running_loop()
  if rt.loop == nil then raise("no running event loop") end
  return rt.loop
end

-- Is 'x' the options of run (a plain table of loop options only)? For a
-- coroutine object, or a main function that takes no arguments, a plain
-- table can only be options: one with a key no loop knows (a typo) is refused.
local function run_options(x, main)
  if type(x) ~= "table" or getmetatable(x) ~= nil or next(x) == nil then return false end
  for k in pairs(x) do
    if not rt.LOOP_OPTIONS[k] then
      if task.iscoroutine(main) then util.checkopts(x, rt.LOOP_OPTIONS, 2, "run") end
      if type(main) == "function" then
        local info = debug.getinfo(main, "u")
        if info.nparams == 0 and not info.isvararg then
          util.checkopts(x, rt.LOOP_OPTIONS, 2, "run")
        end
      end
      return false
    end
  end
  return true
end

-- Would an error raised by asyncio.run now reach the host uncaught? Not if
-- a pcall or xpcall, or a coroutine's resumer, is up the stack: its caller
-- handles the error.
local function escapes()
  local level = 3
  while true do
    local info = debug.getinfo(level, "f")
    if info == nil then return not coroutine.isyieldable() end
    if info.func == pcall or info.func == xpcall then return false end
    level = level + 1
  end
end

-- The future whose error 't' failed with: the one it awaited (_awaited;
-- a gather's is only a mark, true), through a gather to the child whose
-- error it took.
local function failed_through(t)
  local nxt = t._awaited
  while type(nxt) == "table" and nxt._from do nxt = nxt._from end
  return type(nxt) == "table" and nxt or nil
end

-- main_task failed and its error escapes asyncio.run: say on stderr where
-- it came from, the tasks' own frames, from the task that raised it to main
-- through each task that awaited the next (CPython prints that chain). The
-- error itself goes on untouched.
local function report_chain(main_task)
  local chain, t, seen = {}, main_task, {}
  while t and not seen[t] and t._tb do
    seen[t] = true
    local lines = {("  %s:"):format(t._is_task and "task " .. t:get_name() or tostring(t))}
    for _, frame in ipairs(dump.program_frames(t._tb)) do
      if frame ~= t._tb:match("^[^\n]*") then lines[#lines + 1] = "    " .. frame end
    end
    table.insert(chain, 1, table.concat(lines, "\n"))
    t = failed_through(t)
  end
  if #chain == 0 then return end
  io.stderr:write("asyncio.run: an error escaped from the main task; the tasks it went " ..
    "through, first to last:\n", table.concat(chain, "\n"), "\n")
end

-- Run 'main_task' on 'loop' to its end: nothing, or how it ended
-- ("interrupted", "abandoned" after a second Ctrl-C, "deadlock" and the
-- task dump).
local function run_to_end(loop, main_task)
  local status = loop:_run_until(main_task, true)
  if status == "interrupted" then
    main_task:cancel("interrupted")
    status = loop:_run_until(main_task, true)
    return status == "interrupted" and "abandoned" or "interrupted"
  elseif status == "idle" and not main_task:done() then
    return "deadlock", dump.dump_tasks(loop)
  end
end

-- Everything asyncio.run does with its loop but close it: main's task,
-- how the run ended (see run_to_end), and how the cancellation of what was
-- left went (ok, err).
local function run_main(loop, opts, main, ...)
  local main_task
  if opts then main_task = loop:create_task(main) else main_task = loop:create_task(main, ...) end
  -- Ctrl-\ (SIGQUIT) prints the task dump while the loop runs
  local quit = core.signal_start(loop._core, core.signal_number("SIGQUIT"), function()
    dump.print_tasks(loop, io.stderr)
  end, nil, true)
  local ok, how, stuck = pcall(run_to_end, loop, main_task)
  if quit then quit:_stop() end
  rt.report_dropped(loop)  -- a put that waited, never awaited: said now, not at exit
  local cleanup_ok, cleanup_err = true, nil
  if how ~= "abandoned" then  -- a second Ctrl-C leaves the stragglers be
    local all_done, status
    cleanup_ok, all_done, status = pcall(loop._cancel_all, loop, true, true)
    if not cleanup_ok then
      cleanup_err = all_done
    elseif not all_done and status == "interrupted" and ok and how == nil then
      how = "interrupted"  -- a Ctrl-C while the stragglers were cancelled
    end
  end
  if not ok then error(how, 0) end
  return main_task, how, stuck, cleanup_ok, cleanup_err
end

-- run(main, ...): run 'main' (coroutine object or function called with '...')
-- as a task on a new loop; return its results or raise its error.
-- run(main, opts) with opts a table of loop options only ({clock =
-- "virtual"}, {debug = true}) gives them to the loop instead of main.
-- The loop is closed however the run ends (out of memory included).
function asyncio.run(main, ...)
  if rt.loop ~= nil then
    raise("asyncio.run() cannot be called from a running event loop" .. (rt.repl and
      " (the async REPL runs one: await the coroutine or task instead)" or ""))
  end
  argcheck(type(main) == "function" or task.iscoroutine(main), 1, "run",
           typeerror("coroutine object or function", main))
  local opts = select("#", ...) == 1 and run_options(..., main) and ... or nil
  -- (nil or an empty table: no options, as create_task(coro, opts) takes them)
  local extra = ...
  if not opts and task.iscoroutine(main) and (select("#", ...) > 1 or (extra ~= nil and
      not (type(extra) == "table" and getmetatable(extra) == nil and next(extra) == nil))) then
    task.forgo(main)  -- refused: not reported again as never awaited
    raise("bad argument #2 to 'run' (a coroutine object takes no arguments: options " ..
      "are a table of loop options)")
  end
  local loop = rt.new_event_loop(opts, "run", 2)
  local ok, main_task, how, stuck, cleanup_ok, cleanup_err = pcall(run_main, loop, opts, main, ...)
  loop:close()
  if not ok then error(main_task, 0) end
  if how == "interrupted" or how == "abandoned" then
    -- never a normal return: main may have caught the cancellation
    raise(EventLoop._interruption(main_task))
  end
  if how == "deadlock" then
    raise("asyncio.run: deadlock: main waits for something that no task, timer or I/O can " ..
      "complete\n" .. stuck)
  end
  if not cleanup_ok then error(cleanup_err, 0) end
  if main_task._failed and escapes() then pcall(report_chain, main_task) end
  return main_task:result()
end

return asyncio
