-- asyncio.cluster with real processes: examples/http_hello.lua --workers N
-- (and small programs of the spec's own) under curl, signals sent with
-- kill(1), and the processes looked up in /proc. Nothing is timed: each
-- wait polls, up to a generous number of times.
local asyncio = require "asyncio"
local support = require "spec.support"

local cluster = asyncio.cluster
local LUA = support.LUA

local function sleep(s) os.execute("sleep " .. s) end

-- Poll 'fn' every 50 ms until it returns a true value (at most 1,200
-- times: a minute, for a loaded machine); its value, or an error naming
-- 'what'.
local function poll(what, fn)
  for _ = 1, 1200 do
    local v = fn()
    if v then return v end
    sleep(0.05)
  end
  error("gave up waiting for " .. what)
end

-- /proc/PID/stat: state and parent of a process, or nil once it is gone.
local function stat(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return nil end
  local text = f:read("a") or ""
  f:close()
  local state, ppid = text:match("^%d+ %(.*%) (%u) (%d+)")
  return state, tonumber(ppid)
end

-- Is 'pid' running (there, and not a zombie waiting for its parent)?
local function alive(pid)
  local state = stat(pid)
  return state ~= nil and state ~= "Z"
end

-- The live children of 'ppid', sorted.
local function children(ppid)
  local kids = {}
  for name in support.sh("ls /proc"):gmatch("%d+") do
    local pid = tonumber(name)
    local state, parent = stat(pid)
    if parent == ppid and state ~= "Z" then kids[#kids + 1] = pid end
  end
  table.sort(kids)
  return kids
end

local function readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Start the shell command 'cmd' (SIGINT at its default, as in a terminal)
-- under a shell that writes its exit status to a file. Returns a handle:
-- .pid the command's process, .log its output (stdout and stderr).
local function start(cmd)
  local h = {log = os.tmpname(), status = os.tmpname(), script = os.tmpname()}
  os.remove(h.status)
  local f = assert(io.open(h.script, "w"))
  f:write(("env --default-signal=SIGINT %s\necho \"exit=$?\" >%s\n"):format(cmd, h.status))
  f:close()
  local sh = support.spawn("sh " .. h.script, h.log)
  -- its pid (nil if it has ended already: a quick program)
  local pid = poll("the command to start", function()
    return children(sh)[1] or (readfile(h.status) and -1)
  end)
  h.pid = pid > 0 and pid or nil
  return h
end

-- The command's exit status, once it has ended.
local function status(h)
  local text = poll("the command to end", function() return readfile(h.status) end)
  return tonumber(text:match("exit=(%d+)"))
end

local function output(h) return readfile(h.log) or "" end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local function cleanup(h)
  if h.pid and alive(h.pid) then support.kill(h.pid, "KILL") end
  for _, path in ipairs({h.log, h.status, h.script}) do os.remove(path) end
end

-- A certificate for localhost and 127.0.0.1, self-signed (curl trusts it
-- with --cacert).
local cert, key
local function make_cert()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local out, code = support.sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout %s " ..
    "-out %s -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"):format(key, cert))
  assert(code == 0, out)
  return dir
end

-- http_hello --workers 2 on a free port, once both workers listen: the
-- handle, the port and the two workers' pids.
local function hello(extra)
  local port = support.free_port()
  local h = start(("%s examples/http_hello.lua %d --workers 2 %s"):format(LUA, port, extra or ""))
  poll("both workers to listen", function()
    local out = output(h)
    return out:find("(worker 1)", 1, true) and out:find("(worker 2)", 1, true)
  end)
  local workers = children(h.pid)
  assert.equal(2, #workers)
  return h, port, workers
end

local function curl(args)
  local out, code = support.sh("curl -s --max-time 30 " .. args)
  return out, code
end

describe("asyncio.cluster with examples/http_hello.lua", function()
  it("--workers 2 --tls serves only TLS: every http:// request fails, every https:// one is answered", function()
    local dir = make_cert()
    local h, port = hello(("--tls %s %s"):format(cert, key))
    local plain, tls = 0, 0
    for _ = 1, 20 do
      local out, code = curl(("http://127.0.0.1:%d/"):format(port))
      if code == 0 and out:find("Hello", 1, true) then plain = plain + 1 end
      out, code = curl(("--cacert %s https://localhost:%d/"):format(cert, port))
      if code == 0 and out == "Hello, World!" then tls = tls + 1 end
    end
    local out = output(h)
    cleanup(h)
    os.execute("rm -r " .. dir)
    assert.equal(0, plain, out)
    assert.equal(20, tls, out)
    assert.equal(2, count(out, "https on 127%.0%.0%.1:%d+ %(worker %d%)"), out)
  end)

  for _, case in ipairs({
    {"TERM", "SIGTERM to the primary stops every worker, and the primary exits with 0"},
    {"INT", "SIGINT (Ctrl-C) to the primary is forwarded: every worker stops, exit status 0"},
  }) do
    it(case[2], function()
      local h, _, workers = hello()
      support.kill(h.pid, case[1])
      local code = status(h)
      local left = {}
      for _, pid in ipairs(workers) do
        if alive(pid) then left[#left + 1] = pid end
      end
      local out = output(h)
      cleanup(h)
      assert.same({}, left)
      assert.equal(0, code, out)
    end)
  end

  it("SIGKILL of the primary: the workers see their pipe close and exit", function()
    local h, port, workers = hello()
    support.kill(h.pid, "KILL")
    poll("the workers to exit", function() return not alive(workers[1]) and not alive(workers[2]) end)
    local _, code = curl(("http://127.0.0.1:%d/"):format(port))
    local out = output(h)
    cleanup(h)
    assert.are_not.equal(0, code)   -- nobody serves the port any more
    assert.equal(2, count(out, "cluster: worker %d: the primary process is gone; stopping"), out)
  end)

  it("a killed worker is replaced, and the new processes serve", function()
    local h, port, old = hello()
    support.kill(old[1], "KILL")
    support.kill(old[2], "KILL")
    local new = poll("two new workers", function()
      local kids = children(h.pid)
      return #kids == 2 and kids[1] ~= old[1] and kids[1] ~= old[2] and kids[2] ~= old[1] and
        kids[2] ~= old[2] and kids
    end)
    poll("the new workers to listen", function() return count(output(h), "%(worker %d%)") == 4 end)
    local answered = 0
    for _ = 1, 10 do
      if curl(("http://127.0.0.1:%d/"):format(port)) == "Hello, World!" then answered = answered + 1 end
    end
    local still = alive(old[1]) or alive(old[2])
    support.kill(h.pid, "TERM")
    local code = status(h)
    local out = output(h)
    cleanup(h)
    assert.is_false(still)
    assert.equal(10, answered, out)
    assert.equal(2, count(out, "cluster: worker %d %(pid %d+%) was killed by SIGKILL after [%d.]+ s; " ..
      "restarting it in [%d.]+ s"), out)
    for _, pid in ipairs(new) do
      assert.equal(1, count(out, "cluster: worker %d restarted as pid " .. pid .. "\n"), out)
    end
    assert.equal(0, code, out)
  end)
end)

-- Run the Lua source 'src' as a cluster program; its output and status.
local function program(src)
  return support.with_file(src, function(path)
    local h = start(("%s %s"):format(LUA, path))
    local code = status(h)
    local out = output(h)
    cleanup(h)
    return out, code
  end)
end

describe("asyncio.cluster after the review", function()
  -- a program whose workers each start a child ('sleep 300') and write its
  -- pid, and then wait for ever; the handle, the workers and the children
  local function with_children(extra)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local path = dir .. "/prog.lua"
    local f = assert(io.open(path, "w"))
    f:write(([[
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 2, stop_timeout = 5, main = function(id)
        local p = asyncio.await(asyncio.create_subprocess_exec("sleep", "300"))
        local out = io.open(%q .. "/child" .. id, "w")
        out:write(p.pid)
        out:close()
        %s
        asyncio.await(asyncio.Event():wait())
      end})
    ]]):format(dir, extra or ""))
    f:close()
    local h = start(("%s %s"):format(LUA, path))
    local kids = poll("both children", function()
      local a, b = readfile(dir .. "/child1"), readfile(dir .. "/child2")
      return a and b and a ~= "" and b ~= "" and {tonumber(a), tonumber(b)}
    end)
    local workers = children(h.pid)
    return h, workers, kids, dir
  end

  it("SIGTERM to the primary stops what the workers started too: no orphan", function()
    local h, workers, kids, dir = with_children()
    support.kill(h.pid, "TERM")
    local code = status(h)
    local out = output(h)
    local left = {}
    for _, pid in ipairs(kids) do if alive(pid) then left[#left + 1] = pid; support.kill(pid, "KILL") end end
    for _, pid in ipairs(workers) do if alive(pid) then left[#left + 1] = pid end end
    cleanup(h)
    os.execute("rm -r " .. dir)
    assert.same({}, left)
    assert.equal(0, code, out)
  end)

  it("a worker stopped by a SIGTERM of its own is restarted, not forgotten", function()
    local h, workers, kids, dir = with_children()
    support.kill(workers[1], "TERM")
    local out = poll("the restart", function()
      local o = output(h)
      return o:find("restarted as pid", 1, true) and o
    end)
    support.kill(h.pid, "TERM")
    local code = status(h)
    cleanup(h)
    for _, pid in ipairs(kids) do if alive(pid) then support.kill(pid, "KILL") end end
    os.execute("rm -r " .. dir)
    assert.matches("cluster: worker %d %(pid " .. workers[1] .. "%) exited with status 143", out)
    assert.equal(0, code, output(h))
  end)

  it("a worker whose main ignores its cancellation still exits when the primary is killed", function()
    local h, workers, kids, dir = with_children([[
        while true do pcall(asyncio.await, asyncio.sleep(0.05)) end]])
    support.kill(h.pid, "KILL")
    poll("the workers to exit", function() return not alive(workers[1]) and not alive(workers[2]) end)
    local out = output(h)
    cleanup(h)
    for _, pid in ipairs(kids) do if alive(pid) then support.kill(pid, "KILL") end end
    os.execute("rm -r " .. dir)
    assert.equal(2, count(out, "still running 5 s after its primary was gone; exiting"), out)
  end)

  it("exits with 1 when stopped while a crashed worker waits for its restart", function()
    -- quick deaths in a row double the back-off (0.1, 0.2, ... s): the stop
    -- comes once it is 1.6 s, long enough that no restart can come first
    -- however slow the machine (with 0.1 s it often did, under valgrind)
    local h = start(LUA .. [[ -e '
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 1, min_uptime = 60, max_restarts = 10,
        main = function() os.exit(1) end})']])
    poll("a 1.6 s back-off", function() return output(h):find("restarting it in 1.6 s", 1, true) end)
    support.kill(h.pid, "TERM")
    local c2 = status(h)
    local o2 = output(h)
    cleanup(h)
    assert.equal(1, c2, o2)
  end)

  it("workers inherit no descriptor but stdin, stdout and stderr", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      local held = io.open("/etc/hostname")   -- the primary's, without close-on-exec
      os.exit(asyncio.cluster.run{workers = 1, main = function()
        local p = asyncio.await(asyncio.create_subprocess_exec("ls", "/proc/self/fd", {stdout = "pipe"}))
        local fds = asyncio.await(p:communicate())
        print("fds: " .. fds:gsub("\n", " "))
      end})
    ]])
    assert.equal(0, code, out)
    -- ls's own: 0 1 2 and the directory it reads; the worker's pipe and the file are not there
    assert.matches("fds: 0 1 2 3 \n", out)
  end)

  it("http_hello refuses --workers with port 0 and a --tls without its key, with its usage", function()
    local out, code = support.sh(LUA .. " examples/http_hello.lua 0 --workers 2")
    assert.equal(2, code)
    assert.matches("usage: http_hello.lua [^\n]*\n%-%-workers needs a fixed port, not 0\n$", out)
    out, code = support.sh(LUA .. " examples/http_hello.lua 8080 --tls cert.pem")
    assert.equal(2, code)
    assert.matches("%-%-tls takes a certificate file and a key file\n$", out)
  end)

  it("a worker's stdin reads end of file at once, for its main and its children", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 1, main = function()
        print("main read: [" .. tostring(io.read("a")) .. "]")
        local p = asyncio.await(asyncio.create_subprocess_exec("cat", {stdout = "pipe"}))
        print("cat read: [" .. asyncio.await(p:communicate()) .. "]")
      end})
    ]])
    assert.equal(0, code, out)
    assert.matches("main read: %[%]\ncat read: %[%]\n", out)
  end)

  it("refuses argv with a NUL byte before anything starts", function()
    local ok, err = pcall(cluster.run, {workers = 1, main = print, argv = {"lua5.4", "a\0b"}})
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'cluster.run' %(argv%[2%] has an embedded null byte%)", err)
  end)
end)

describe("asyncio.cluster.run", function()
  it("gives up on a worker that always crashes at start, stops the others and exits with 1", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 2, max_restarts = 3, main = function(id)
        if id == 2 then error("no config for worker 2") end
        asyncio.await(asyncio.Event():wait())    -- worker 1 serves for ever
      end})
    ]])
    assert.equal(1, code, out)
    assert.equal(4, count(out, "cluster: worker 2: main failed: [^\n]*no config for worker 2"), out)
    assert.equal(3, count(out, "cluster: worker 2 %(pid %d+%) exited with status 1 after [%d.]+ s; " ..
      "restarting it in"), out)
    assert.matches("restarting it in 0.1 s (its 1st quick death in a row)", out, 1, true)
    assert.matches("restarting it in 0.4 s (its 3rd quick death in a row)", out, 1, true)
    assert.matches("cluster: worker 2 died 4 times in a row within 1 s of starting (last: it " ..
      "exited with status 1); giving up: stopping the cluster", out, 1, true)
    assert.equal(0, count(out, "worker 1[^\n]*restart"), out)
  end)

  it("ends with 0 when every worker's main returns; each ran once with its id", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      local cluster = asyncio.cluster
      os.exit(cluster.run{workers = 3, main = function(id)
        asyncio.await(asyncio.sleep(0))
        print(("main %d of %s, worker %s"):format(id, tostring(cluster.worker_id()),
          tostring(cluster.is_worker())))
      end})
    ]])
    assert.equal(0, code, out)
    for id = 1, 3 do
      assert.equal(1, count(out, ("main %d of %d, worker true\n"):format(id, id)), out)
    end
    assert.equal(0, count(out, "cluster:"), out)
  end)

  it("passes the interpreter's options and the script's arguments on", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      if not asyncio.cluster.is_worker() and #arg == 0 then  -- once more, with arguments
        os.exit(os.execute(("%s -W %s one 'two words'"):format(arg[-1], arg[0])) and 0 or 1)
      end
      os.exit(asyncio.cluster.run{workers = 2, main = function(id)
        print(("worker %d: %s|%s|%s"):format(id, arg[-1], arg[1], arg[2]))
      end})
    ]])
    assert.equal(0, code, out)
    assert.equal(1, count(out, "worker 1: %-W|one|two words\n"), out)
    assert.equal(1, count(out, "worker 2: %-W|one|two words\n"), out)
  end)

  it("kills a worker that does not stop within stop_timeout of SIGTERM, and exits with 1", function()
    support.with_file([[
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 2, stop_timeout = 0.5, main = function(id)
        print("ready " .. id)
        io.stdout:flush()
        while true do pcall(asyncio.await, asyncio.sleep(10)) end  -- swallows its cancellation
      end})
    ]], function(path)
      local h = start(("%s %s"):format(LUA, path))
      poll("both workers", function() return count(output(h), "ready %d") == 2 end)
      local workers = children(h.pid)
      support.kill(h.pid, "TERM")
      local code = status(h)
      local out = output(h)
      local left = alive(workers[1]) or alive(workers[2])
      cleanup(h)
      assert.equal(2, #workers)
      assert.is_false(left)
      assert.equal(1, code, out)
      assert.equal(2, count(out, "cluster: worker %d %(pid %d+%) still running 0%.5 s after SIGTERM; killing it"), out)
      assert.equal(2, count(out, "cluster: worker %d %(pid %d+%) was killed by SIGKILL while stopping"), out)
    end)
  end)

  it("stops at once, with 1, when the workers' program cannot be started", function()
    local out, code = program([[
      local asyncio = require "asyncio"
      os.exit(asyncio.cluster.run{workers = 2, argv = {"/nonexistent/lua5.4", "x.lua"}, main = print})
    ]])
    assert.equal(1, code, out)
    assert.matches("cluster: worker 1 could not be started: [^\n]*FileNotFoundError", out)
    assert.equal(0, count(out, "restart"), out)
  end)

  it("in this process: not a worker", function()
    assert.is_nil(cluster.worker_id())
    assert.is_false(cluster.is_worker())
  end)

  it("refuses bad options with a message naming the option", function()
    local function refused(opts, msg)
      local ok, err = pcall(cluster.run, opts)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'cluster.run' (" .. msg .. ")", err, 1, true)
    end
    refused(nil, "table expected, got nil")
    refused({main = print}, "workers must be an integer from 1 to 1024, got nil")
    refused({workers = 0, main = print}, "workers must be an integer from 1 to 1024, got 0")
    refused({workers = 1.5, main = print}, "workers must be an integer from 1 to 1024, got 1.5")
    refused({workers = "x", main = print}, "workers must be an integer from 1 to 1024, got string")
    refused({workers = 2}, "main must be a function, got nil")
    refused({workers = 2, main = print, wokers = 3}, "unknown option 'wokers'")
    refused({workers = 2, main = print, min_uptime = 0}, "min_uptime must be a positive number of seconds")
    refused({workers = 2, main = print, stop_timeout = -1}, "stop_timeout must be a positive number of seconds")
    refused({workers = 2, main = print, max_restarts = -1}, "max_restarts must be a non-negative integer")
    refused({workers = 2, main = print, argv = {}}, "argv must be a non-empty list of strings")
    refused({workers = 2, main = print, argv = {"lua5.4", {}}}, "argv[2] must be a string, got table")
  end)

  it("refuses to run inside a running loop", function()
    local ok, err = pcall(asyncio.run, function()
      return cluster.run{workers = 1, main = print}
    end)
    assert.is_false(ok)
    assert.matches("cluster.run() cannot be called from a running event loop", err, 1, true)
  end)
end)

describe("core.pipe_open (a worker's watch on its stdin)", function()
  it("reads a pipe given as stdin to its end, and refuses the same descriptor twice", function()
    local out, code = support.sh("printf 'from the primary' | " .. LUA .. [[ -e '
      local asyncio = require "asyncio"
      local core, streams = require "asyncio.core", require "asyncio.streams"
      asyncio.run(function()
        local loop = asyncio.get_running_loop()
        local box = assert(core.pipe_open(loop._core, 0))
        print("again", core.pipe_open(loop._core, 0))
        local reader, writer = streams.pair(streams.new_conn(box, loop))
        print("read", asyncio.await(reader:read()))
        print("eof", reader:at_eof())
        writer:close()
      end)
      asyncio.run(function()
        print("not open", core.pipe_open(asyncio.get_running_loop()._core, 999))
      end)
      local loop = asyncio.new_event_loop()
      print(pcall(core.pipe_open, loop._core, "x"))
      loop:close()' ]])
    assert.equal(0, code, out)
    assert.matches("again\tnil\tEEXIST", out, 1, true)
    assert.matches("read\tfrom the primary\neof\ttrue\n", out, 1, true)
    assert.matches("not open\tnil\tEBADF", out, 1, true)
    assert.matches("false\t[^\n]*bad argument #2 to '[%w.]*pipe_open' %(number expected, got string%)", out)
  end)
end)
