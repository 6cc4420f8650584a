-- cluster.lua: a program on N processes (a server past one core), as
-- Node's cluster: the primary runs the same program again N times with the
-- same arguments, marked as workers through an environment variable; each
-- worker runs 'main'. The primary forwards SIGINT and SIGTERM, restarts a
-- worker that dies (with a back-off; it gives up on one that keeps dying at
-- start) and ends when every worker has; a worker ends when its primary
-- does (it watches the pipe that is its stdin for EOF).

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local rt = require "asyncio.runtime"
local streams = require "asyncio.streams"
local util = require "asyncio.util"

local argcheck, typeerror = util.argcheck, util.typeerror
local type, tostring, math = type, tostring, math

local M = {}

local ENV = "ASYNCIO_CLUSTER_WORKER"
M.ENV = ENV
local SIZE_ENV = "ASYNCIO_CLUSTER_WORKERS"  -- how many workers the cluster has

local FIRST_BACKOFF, MAX_BACKOFF = 0.1, 5   -- seconds before a restart
local FNAME = "cluster.run"

local function report(fmt, ...)
  io.stderr:write(("cluster: " .. fmt .. "\n"):format(...))
  io.stderr:flush()
end

-- This process's worker id (1 to N), or nil in the primary.
function M.worker_id()
  local v = os.getenv(ENV)
  return v and math.tointeger(tonumber(v)) or nil
end

function M.is_worker()
  return M.worker_id() ~= nil
end

-- In a worker: how many workers its cluster has (nil in the primary).
function M.size()
  local v = M.worker_id() and os.getenv(SIZE_ENV)
  return v and math.tointeger(tonumber(v)) or nil
end

-- Options -------------------------------------------------------------------

local OPTIONS = {workers = true, main = true, argv = true, min_uptime = true,
                 max_restarts = true, stop_timeout = true}

local function positive(v) return type(v) == "number" and v > 0 and v < math.huge end

-- The command line that started this program: the interpreter, its own
-- options (-l, -e, ...), the script and the script's arguments; nil where
-- running it again would read stdin (the REPL, -i, a script from "-").
local function own_argv()
  local a = _G.arg
  if type(a) ~= "table" or type(a[0]) ~= "string" then return nil end
  local lo = 0
  while a[lo - 1] ~= nil do lo = lo - 1 end
  local script = lo < 0   -- lua.c puts the interpreter at arg[0] when there is no script
  local last_option = script and -1 or #a
  local has_e = false
  for i = script and lo + 1 or 1, last_option do
    if a[i] == "-i" or a[i] == "-" then return nil end
    if a[i] == "-e" then has_e = true end
  end
  if (script and a[0] == "-") or (not script and not has_e) then return nil end
  local argv = {}
  for i = lo, #a do argv[#argv + 1] = tostring(a[i]) end
  return argv
end

local function checkargv(argv)
  argcheck(type(argv) == "table" and #argv > 0, 1, FNAME,
    "argv must be a non-empty list of strings")
  for i = 1, #argv do
    argcheck(type(argv[i]) == "string" or type(argv[i]) == "number", 1, FNAME,
      ("argv[%d] must be a string, got %s"):format(i, util.typename(argv[i])))
    argcheck(not tostring(argv[i]):find("\0", 1, true), 1, FNAME,
      ("argv[%d] has an embedded null byte"):format(i))
  end
end

local function checkrunopts(opts)
  argcheck(type(opts) == "table", 1, FNAME, typeerror("table", opts))
  util.checkopts(opts, OPTIONS, 1, FNAME)
  local n = opts.workers
  argcheck(math.type(n) == "integer" and n > 0 and n <= 1024, 1, FNAME,
    ("workers must be an integer from 1 to 1024, got %s"):format(
      type(n) == "number" and tostring(n) or util.typename(n)))
  argcheck(type(opts.main) == "function", 1, FNAME,
    ("main must be a function, got %s"):format(util.typename(opts.main)))
  local o = {workers = n, main = opts.main, min_uptime = opts.min_uptime or 1,
             max_restarts = opts.max_restarts or 5, stop_timeout = opts.stop_timeout or 10}
  argcheck(positive(o.min_uptime), 1, FNAME, "min_uptime must be a positive number of seconds")
  argcheck(positive(o.stop_timeout), 1, FNAME, "stop_timeout must be a positive number of seconds")
  argcheck(math.type(o.max_restarts) == "integer" and o.max_restarts >= 0, 1, FNAME,
    "max_restarts must be a non-negative integer")
  if opts.argv ~= nil then checkargv(opts.argv) end
  o.argv = opts.argv
  return o
end

-- The primary ---------------------------------------------------------------

-- This process's environment (Linux), to hand on with the worker's mark
-- added: exec's env is the whole environment. Nil where /proc is not.
local function environment()
  local f = io.open("/proc/self/environ", "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local env = {}
  for name, value in text:gmatch("([^%z=]+)=([^%z]*)") do env[name] = value end
  env[ENV], env[SIZE_ENV] = nil, nil
  return env
end

-- How a worker ended, in words.
local function ending(rc)
  if rc < 0 then
    local _, name = core.signal_number(-rc)
    return ("was killed by %s"):format(name or ("signal " .. -rc))
  end
  return ("exited with status %d"):format(rc)
end

-- Start worker 'id': the program again, its stdin a pipe that only closes
-- when this process ends, in a session of its own (a terminal's Ctrl-C
-- reaches the primary alone, which forwards it once).
local function spawn(c, id)
  local asyncio = require "asyncio"
  local argv, prog = c.argv, c.argv[1]
  local opts = {stdin = "pipe", start_new_session = true}
  if c.env then
    local env = {}
    for k, v in pairs(c.env) do env[k] = v end
    env[ENV] = id
    env[SIZE_ENV] = c.workers
    opts.env = env
  else  -- no /proc: let env(1) add the marks
    argv = {ENV .. "=" .. id, SIZE_ENV .. "=" .. c.workers, table.unpack(argv)}
    prog = "env"
  end
  local args = {table.unpack(argv, 2)}
  args[#args + 1] = opts
  return asyncio.await(asyncio.create_subprocess_exec(prog, table.unpack(args)))
end

-- Signal worker 'w' and the processes it started: it leads a process
-- group of its own (start_new_session), as a terminal's Ctrl-C reaches a
-- program's children too.
local function signal_worker(w, sig)
  pcall(w.proc.send_signal_group, w.proc, sig)
end

-- Kill every worker still running, with what it started.
local function kill_all(c, why)
  for id, w in pairs(c.running) do
    report("worker %d (pid %d) %s; killing it", id, w.proc.pid, why)
    c.failed = true
    signal_worker(w, "SIGKILL")
  end
end

-- Stop every worker with 'sig' (a name); after stop_timeout, kill those
-- still there.
local function stop(c, sig)
  local asyncio = require "asyncio"
  if c.stopping then return end
  c.stopping = sig
  c.wake:set()
  for _, w in pairs(c.running) do signal_worker(w, sig) end
  c.killer = asyncio.get_running_loop():call_later(c.stop_timeout, kill_all, c,
    ("still running %g s after %s"):format(c.stop_timeout, sig))
end

-- A worker's exit after a stop: fine if it exited with 0, with 128 + the
-- signal's number (a worker stopped by it says so), or by the signal.
local function stopped_well(c, rc)
  local num = core.signal_number(c.stopping)
  return rc == 0 or rc == -num or rc == 128 + num
end

local function ordinal(n)
  local suffix = (n % 100 >= 11 and n % 100 <= 13) and "th" or
    ({"st", "nd", "rd"})[n % 10] or "th"
  return n .. suffix
end

-- Keep worker 'id' running until the cluster stops or gives up.
local function keep(c, id)
  local asyncio = require "asyncio"
  local await = asyncio.await
  local loop = asyncio.get_running_loop()
  local quick = 0   -- deaths in a row within min_uptime of the start
  local restart = false
  while not c.stopping do
    local ok, p = pcall(spawn, c, id)
    if not ok then
      if errors.CancelledError:is(p) then error(p, 0) end
      report("worker %d could not be started: %s", id, tostring(p))
      c.failed = true
      return stop(c, "SIGTERM")
    end
    if restart then report("worker %d restarted as pid %d", id, p.pid) end
    local started = loop:time()
    c.running[id] = {proc = p}
    if c.stopping then signal_worker(c.running[id], c.stopping) end  -- a stop came while it started
    local rc = await(p:wait())
    c.running[id] = nil
    p.stdin:close()
    if c.stopping then
      if not stopped_well(c, rc) then
        report("worker %d (pid %d) %s while stopping", id, p.pid, ending(rc))
        c.failed = true
      end
      return
    end
    if rc == 0 then return end   -- it finished its work: not restarted
    local lived = loop:time() - started
    quick = lived < c.min_uptime and quick + 1 or 0
    if quick > c.max_restarts then
      report("worker %d died %d times in a row within %g s of starting (last: it %s); " ..
        "giving up: stopping the cluster", id, quick, c.min_uptime, ending(rc))
      c.failed = true
      return stop(c, "SIGTERM")
    end
    local delay = math.min(FIRST_BACKOFF * 2 ^ math.max(quick - 1, 0), MAX_BACKOFF)
    report("worker %d (pid %d) %s after %.1f s; restarting it in %.1f s%s", id, p.pid,
      ending(rc), lived, delay, quick > 0 and (" (its %s quick death in a row)"):format(ordinal(quick)) or "")
    restart = true
    -- the back-off, cut short by a stop (asyncio.pcall: a cancellation of
    -- this task goes through)
    asyncio.pcall(await, asyncio.wait_for(c.wake:wait(), delay))
  end
  if restart then c.failed = true end  -- stopped in its back-off: its last end was a failure
end

local function primary(o)
  local asyncio = require "asyncio"
  local argv = o.argv or own_argv()
  if not argv then
    util.raise(("%s: cannot tell which program the workers should run (no script in arg); " ..
      "give argv"):format(FNAME))
  end
  local c = {workers = o.workers, argv = argv, env = environment(), min_uptime = o.min_uptime,
             max_restarts = o.max_restarts, stop_timeout = o.stop_timeout,
             running = {}, stopping = false, failed = false}
  local ok, err = pcall(asyncio.run, function()
    local loop = asyncio.get_running_loop()
    c.wake = asyncio.Event()
    loop:add_signal_handler("SIGTERM", stop, c, "SIGTERM")
    local left, all_done = o.workers, asyncio.Event()
    for id = 1, o.workers do
      asyncio.create_task(function()
        local ok2, e = pcall(keep, c, id)
        left = left - 1
        if left == 0 then all_done:set() end
        if not ok2 then error(e, 0) end
      end)
    end
    -- Ctrl-C cancels this task: forward it, and wait for the workers still
    local done
    repeat
      done = pcall(asyncio.await, all_done:wait())
      if not done then stop(c, "SIGINT") end
    until done
    if c.killer then c.killer:cancel() end
    loop:remove_signal_handler("SIGTERM")
  end)
  if not ok and not (errors.KeyboardInterrupt:is(err) and c.stopping) then error(err, 0) end
  -- a second Ctrl-C abandoned the run while workers were still stopping:
  -- none may outlive the primary
  if next(c.running) then kill_all(c, "still running at a second Ctrl-C") end
  return c.failed and 1 or 0
end

-- A worker ------------------------------------------------------------------

-- The pipe from the primary, on stdin: watched on a descriptor of its own,
-- and stdin becomes /dev/null (a read of it, the program's or a child's,
-- ends at once). Done before main starts. Nil if there is none.
local function primary_pipe(loop)
  if core.guess_handle(0) ~= "pipe" then return nil end  -- not started by a primary
  local box, _, msg = core.pipe_open(loop._core, 0, nil, true)
  if not box then report("worker %d cannot watch its primary: %s", M.worker_id(), msg) end
  return box
end

-- Cancel 'main' when the primary is gone: its pipe reads EOF. A main that
-- does not end within stop_timeout then (it swallows the cancellation)
-- ends with the process.
local function watch_primary(loop, box, main, stop_timeout)
  local asyncio = require "asyncio"
  if not box then return end
  local reader, writer = streams.pair(streams.new_conn(box, loop))
  local ok = pcall(asyncio.await, reader:read())
  writer:close()
  if ok then
    report("worker %d: the primary process is gone; stopping", M.worker_id())
    main:cancel("the cluster's primary process is gone")
    loop:call_later(stop_timeout, function()
      report("worker %d: still running %g s after its primary was gone; exiting", M.worker_id(),
        stop_timeout)
      os.exit(1)
    end)
  end
end

local function worker(o, id)
  local asyncio = require "asyncio"
  local failed, stopped_by
  local ok, err = pcall(asyncio.run, function()
    local loop = asyncio.get_running_loop()
    local pipe = primary_pipe(loop)
    local main = asyncio.create_task(o.main, id)
    local watcher = asyncio.create_task(watch_primary, loop, pipe, main, o.stop_timeout)
    loop:add_signal_handler("SIGTERM", function()
      stopped_by = core.signal_number("SIGTERM")
      main:cancel("SIGTERM")
    end)
    local done, e = pcall(asyncio.await, main)
    watcher:cancel()
    loop:remove_signal_handler("SIGTERM")
    -- a cancellation is a stop: SIGTERM, SIGINT (asyncio.run cancels this
    -- task, and the await main) or the primary gone
    if not done and not errors.CancelledError:is(e) then
      failed = true
      report("worker %d: main failed: %s", id, main:traceback() or tostring(e))
    end
  end)
  if not ok and not errors.KeyboardInterrupt:is(err) then error(err, 0) end
  if not ok then stopped_by = core.signal_number("SIGINT") end
  -- stopped by a signal: 128 + its number, as a shell says it, so that a
  -- primary that did not send it restarts this worker
  return failed and 1 or stopped_by and 128 + stopped_by or 0
end

-- cluster.run{workers = N, main = fn, ...} -> an exit status for os.exit.
-- In the primary: starts and keeps N workers until they have all ended;
-- 0 when each ended well, 1 otherwise. In a worker: runs main(id) on a
-- fresh loop (as asyncio.run); 0 when it returned or was stopped, 1 when
-- it failed (its error and traceback on stderr).
function M.run(opts)
  local o = checkrunopts(opts)
  if rt.loop ~= nil then
    util.raise(("%s() cannot be called from a running event loop"):format(FNAME))
  end
  local id = M.worker_id()
  if id then return worker(o, id) end
  return primary(o)
end

return M
