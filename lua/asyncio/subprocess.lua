-- subprocess.lua: child processes. create_subprocess_exec and
-- create_subprocess_shell on process.c; a Process's pipes are the streams
-- of streams.lua, so reads, writes, drain and cancellation behave as on a
-- socket. What wait and communicate mean is here.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local streams = require "asyncio.streams"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw
local waiters = require "asyncio.waiters"

local argcheck, typeerror = util.argcheck, util.typeerror
local raise_cancel, await = task.raise_cancel, task.await
local setmetatable, error, type = setmetatable, error, type
local op, wait_object = streams.op, streams.wait_object

local M = {}

local KINDS = {inherit = 0, pipe = 1, devnull = 2, stdout = 3}
M.PIPE, M.DEVNULL, M.STDOUT, M.INHERIT = "pipe", "devnull", "stdout", "inherit"

local Process = {__name = "asyncio.Process"}
Process.__index = function(p, k)
  if k == "returncode" then
    local _, exited, status, sig = p._box:_status()
    if not exited then return nil end
    if sig ~= 0 then return -sig end
    return status
  end
  return Process[k]
end
M.Process = Process

local function checkproc(p, fname) util.checkself(Process, p, fname) end

local function wait_impl(p)
  local t = task.current("wait")
  if p.returncode == nil and t._loop ~= p._loop then
    raise(p._loop._core:is_closed() and
      "wait: the process belongs to an event loop that is closed (it is no longer watched)" or
      "wait: the process belongs to a different event loop")
  end
  while p.returncode == nil do
    -- one task waits in C, the others each on their own (waiters.lua)
    local refused = waiters.wait_c(p._waiters, t, "child process to exit", wait_object, t, p._box,
      p._waiters)
    if refused then raise(refused) end
    if t._must_cancel then raise_cancel(t) end
  end
  return p.returncode
end

-- process:wait(): an awaitable resulting in the return code (a negative
-- signal number for a process killed by a signal).
function Process:wait()
  checkproc(self, "wait")
  return op(wait_impl, self)
end

local function communicate_impl(p, input)
  local parts = {}
  local function drain_to(i, reader)
    if not reader then return end
    parts[i] = await(reader:read())
  end
  local writer
  if p.stdin then
    writer = task.create_task(function()
      if input and input ~= "" then
        p.stdin:write(input)
        local ok, err = pcall(await, p.stdin:drain())
        if not ok and not errors.BrokenPipeError:is(err) and not errors.ConnectionResetError:is(err) then
          error(err, 0)
        end
      end
      p.stdin:close()
    end)
  end
  local out = task.create_task(drain_to, 1, p.stdout)
  local err = task.create_task(drain_to, 2, p.stderr)
  local ok, e = pcall(function()
    if writer then await(writer) end
    await(out)
    await(err)
    wait_impl(p)
  end)
  if not ok then
    -- cancelled (or failed): a read still going stops and leaves what it
    -- took in its reader (streams.lua's read to EOF); what a finished one
    -- read goes back in front of its reader, for the next read
    if writer then writer:cancel() end
    out:cancel()
    err:cancel()
    if parts[1] then streams.unread(p.stdout, parts[1]) end
    if parts[2] then streams.unread(p.stderr, parts[2]) end
    error(e, 0)
  end
  return parts[1], parts[2]
end

-- process:communicate([input]): an awaitable: send 'input' to stdin and
-- close it, read stdout and stderr to EOF (at the same time: no deadlock),
-- wait for the exit; results in stdout, stderr (nil where not a pipe).
function Process:communicate(input)
  checkproc(self, "communicate")
  argcheck(input == nil or type(input) == "string", 2, "communicate", typeerror("string", input))
  if input and not self.stdin then
    raise("communicate: input given but stdin is not a pipe")
  end
  return op(communicate_impl, self, input)
end

-- The number alone; 0 sends nothing but checks that the process exists.
local function signum(sig, fname)
  if sig == 0 then return 0 end
  return (util.checksignal(sig, fname))
end

-- A child whose loop was closed while it ran is no longer watched: whether
-- it still runs is not known here (another process may have its number by
-- now), so no signal can go to it. Refused, as its wait is.
local function checkwatched(p, fname)
  if p.returncode == nil and p._loop._core:is_closed() then
    raise(("%s: the process belongs to an event loop that is closed (it is no longer " ..
      "watched)"):format(fname))
  end
end

-- process:send_signal(sig): nothing if it has exited already. Returns
-- whether the child was there to get it (0: only that check).
function Process:send_signal(sig)
  checkproc(self, "send_signal")
  checkwatched(self, "send_signal")
  return self._box:_kill(signum(sig, "send_signal")) == true
end

-- process:send_signal_group(sig): to the process group the child leads
-- (started with start_new_session): its own children too, a shell's say.
function Process:send_signal_group(sig)
  checkproc(self, "send_signal_group")
  if not self._session then
    raise("send_signal_group: the process was not started with start_new_session")
  end
  local ok, name, msg = self._box:_kill(signum(sig, "send_signal_group"), true)
  if not ok and name ~= "ESRCH" then throw(errors.oserror(name, msg, "send_signal_group")) end
end

function Process:terminate()
  checkproc(self, "terminate")
  checkwatched(self, "terminate")
  self._box:_kill(signum("SIGTERM", "terminate"))
end

function Process:kill()
  checkproc(self, "kill")
  checkwatched(self, "kill")
  self._box:_kill(signum("SIGKILL", "kill"))
end

function Process:__tostring()
  local rc = self.returncode
  return ("<asyncio.Process %d %s>"):format(self.pid, rc == nil and "running" or
    ("returncode=" .. rc))
end

local function checkio(v, name, fname, n, allow_stdout)
  local ok = v == nil or v == "pipe" or v == "inherit" or v == "devnull" or
    (allow_stdout and v == "stdout")
  if not ok then
    argcheck(false, n, fname, ("%s must be %s, not %s"):format(name,
      allow_stdout and '"pipe", "inherit", "devnull" or "stdout"' or '"pipe", "inherit" or "devnull"',
      type(v) == "string" and ("%q"):format(v) or util.typename(v)))
  end
  return KINDS[v or "inherit"]
end

local function spawn_impl(fname, file, argv, opts)
  local t = task.current(fname)
  local loop = t._loop
  local env
  if opts.env then
    env = {}
    for k, v in pairs(opts.env) do env[#env + 1] = tostring(k) .. "=" .. tostring(v) end
    table.sort(env)
  end
  local box, si, so, se = core.spawn(loop._core, file, argv, env, opts.cwd,
    {opts._in, opts._out, opts._err}, opts.limit, opts.start_new_session)
  if not box then
    local what = ("%s %s"):format(fname, file)
    -- the child's chdir and exec fail alike (ENOENT): say which it was
    if opts.cwd and (si == "ENOENT" or si == "ENOTDIR") then
      local dir = io.open(opts.cwd .. "/.")  -- (only a directory has a ".")
      if dir then dir:close() else what = ("cwd %s of %s"):format(opts.cwd, what) end
    end
    throw(errors.oserror(si, so, what))
  end
  local p = setmetatable({_box = box, _loop = loop, _waiters = {busy = false},
                          _session = opts.start_new_session,
                          pid = (box:_status())}, Process)
  if si then p.stdin = select(2, streams.pair(streams.new_conn(si, loop, opts.limit))) end
  if so then p.stdout = (streams.pair(streams.new_conn(so, loop, opts.limit))) end
  if se then p.stderr = (streams.pair(streams.new_conn(se, loop, opts.limit))) end
  return p
end

-- A string the C side passes to exec: a NUL inside would cut it short.
local function nulfree(v) return not v:find("\0", 1, true) end

-- Check opts.env: a table of names to values (strings or numbers), each
-- as exec takes them (CPython raises TypeError and "embedded null byte").
local function checkenv(env, n, fname)
  argcheck(type(env) == "table", n, fname, "env must be a table of names to values")
  for k, v in pairs(env) do
    argcheck(type(k) == "string", n, fname,
      ("env names must be strings, got %s (a list? env is {NAME = value})"):format(type(k)))
    argcheck(k ~= "" and not k:find("=", 1, true) and nulfree(k), n, fname,
      ("env name %q is not valid"):format(k))
    argcheck(type(v) == "string" or type(v) == "number", n, fname,
      ("env value of %s must be a string or number, got %s"):format(k, util.typename(v)))
    argcheck(type(v) == "number" or nulfree(v), n, fname,
      ("env value of %s has an embedded null byte"):format(k))
  end
end

local OPTIONS = {stdin = true, stdout = true, stderr = true, cwd = true, env = true, limit = true,
                 start_new_session = true, process_group = true}

local function checkopts(opts, n, fname)
  opts = util.checkopts(opts, OPTIONS, n, fname)
  -- process_group = 0 (CPython's: a group of its own) is had the one way
  -- libuv can: setsid(), a session too; joining another group it cannot
  argcheck(opts.process_group == nil or opts.process_group == 0, n, fname,
    "process_group must be 0 (a group of the child's own); joining another group is not supported")
  local o = {cwd = opts.cwd, env = opts.env, limit = opts.limit,
             start_new_session = (opts.start_new_session or opts.process_group == 0) and true or false}
  argcheck(o.cwd == nil or type(o.cwd) == "string", n, fname, "cwd must be a string")
  argcheck(o.cwd == nil or nulfree(o.cwd), n, fname, "cwd has an embedded null byte")
  if o.env ~= nil then checkenv(o.env, n, fname) end
  argcheck(o.limit == nil or (math.type(o.limit) == "integer" and o.limit > 0), n, fname,
    "limit must be a positive integer")
  o._in = checkio(opts.stdin, "stdin", fname, n)
  o._out = checkio(opts.stdout, "stdout", fname, n)
  o._err = checkio(opts.stderr, "stderr", fname, n, true)
  return o
end

-- create_subprocess_exec(program, arg1, ..., [opts]) -> awaitable: a
-- Process. 'program' is looked up in PATH. opts: stdin, stdout, stderr
-- ("pipe", "inherit", "devnull"; stderr also "stdout"), cwd, env, limit.
function M.create_subprocess_exec(program, ...)
  argcheck(type(program) == "string", 1, "create_subprocess_exec", typeerror("string", program))
  argcheck(program ~= "" and nulfree(program), 1, "create_subprocess_exec",
    program == "" and "program name is empty" or "program name has an embedded null byte")
  local n = select("#", ...)
  local opts = n > 0 and select(n, ...) or nil
  local argv = {program}
  if type(opts) == "table" then n = n - 1 else opts = nil end
  for i = 1, n do
    local a = select(i, ...)
    argcheck(type(a) == "string" or type(a) == "number", i + 1, "create_subprocess_exec",
      typeerror("string", a))
    argcheck(type(a) == "number" or nulfree(a), i + 1, "create_subprocess_exec",
      "embedded null byte")
    argv[#argv + 1] = tostring(a)
  end
  opts = checkopts(opts, n + 2, "create_subprocess_exec")
  return op(spawn_impl, "create_subprocess_exec", program, argv, opts)
end

-- create_subprocess_shell(cmd, [opts]) -> awaitable: a Process running
-- /bin/sh -c cmd.
function M.create_subprocess_shell(cmd, opts)
  argcheck(type(cmd) == "string", 1, "create_subprocess_shell", typeerror("string", cmd))
  argcheck(nulfree(cmd), 1, "create_subprocess_shell", "embedded null byte")
  opts = checkopts(opts, 2, "create_subprocess_shell")
  return op(spawn_impl, "create_subprocess_shell", "/bin/sh", {"/bin/sh", "-c", cmd}, opts)
end

streams.name_ops{[wait_impl] = "process:wait()", [communicate_impl] = "process:communicate(...)",
  [spawn_impl] = "asyncio.create_subprocess_exec/shell(...)"}

return M
