-- spec/support.lua: helpers the specs share.
local asyncio = require "asyncio"
local rt = require "asyncio.runtime"

local support = {}

-- Run 'fn' as the main task of a fresh loop and return its results, with
-- the checks of asyncio.busted (an error nobody retrieved, a task left
-- running, fail the spec), on a real clock: these specs talk to real
-- programs. No deadline: under make check's GC stress the 10,000-connection
-- spec alone has taken more than 600 s; the specs that talk to other
-- programs set their own with run_within.
local busted_run = require("asyncio.busted").run
function support.run(fn, ...)
  return busted_run({clock = "real", timeout = math.huge}, fn, ...)
end

-- The same with a deadline of 'seconds': a broken peer program fails the
-- spec (with a dump of where the tasks were) instead of hanging it.
function support.run_within(seconds, fn, ...)
  return busted_run({clock = "real", timeout = seconds}, fn, ...)
end

-- Write 'text' to a new temporary file, return fn(path), remove the file.
function support.with_file(text, fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local res = table.pack(pcall(fn, path))
  os.remove(path)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The world is clean: no loop running, no task pending anywhere.
function support.assert_clean()
  assert(rt.loop == nil, "an event loop is still running")
  assert(asyncio.current_task() == nil, "a task is still current")
end

-- Capture the exception-handler contexts of 'loop' into a list.
function support.capture(loop)
  local got = {}
  loop:set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
  return got
end

-- Let the loop run 'n' iterations (await sleep(0) n times).
function support.ticks(n)
  for _ = 1, n or 1 do asyncio.await(asyncio.sleep(0)) end
end

-- Command line for a lua5.4 that loads this checkout.
support.LUA = 'LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;" lua5.4'

-- Child processes run without the sanitizer runtimes that make check
-- preloads into busted (curl hangs with them): they load the plain build.
local CLEAN = "env -u LD_PRELOAD "

-- Run a shell command; return its stdout, and its exit status.
function support.sh(cmd)
  local p = assert(io.popen(CLEAN .. "sh -c '" .. cmd:gsub("'", "'\\''") .. "' 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Run Lua source 'src' in a child lua5.4 that loads this checkout (the
-- plain build); 'prefix' goes before the command (a ulimit, say). Returns
-- what it printed (stdout and stderr) and its exit status: a crash or a
-- signal is a status, not the end of the spec run.
function support.lua_run(src, prefix)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  local out, code = support.sh(("%s%s %s"):format(prefix or "", support.LUA, path))
  os.remove(path)
  return out, code
end

-- Drive a real interactive lua5.4 -i with 'lines' (spec/repl_helper.sh:
-- a line "--SIGINT-- PATTERN" sends Ctrl-C once the output shows PATTERN);
-- returns everything it printed, ending with "exit status N".
function support.lua_repl(lines)
  return support.with_file(table.concat(lines, "\n") .. "\n", function(f)
    return (support.sh("bash spec/repl_helper.sh " .. f))
  end)
end

-- Act out 'actions' on the async REPL (lua5.4 -l asyncio.repl) in a real
-- terminal (spec/pty_helper.py: line, ctrl-c, ctrl-d, expect); returns
-- what the terminal showed, ending with "exit status N".
function support.async_repl(actions)
  return support.with_file(table.concat(actions, "\n") .. "\n", function(f)
    return (support.sh(("env %s python3 spec/pty_helper.py %s lua5.4 -l asyncio.repl")
      :format(support.LUA:match("^(.*) lua5.4"), f)))
  end)
end

-- Run Lua source 'src' as a script (with 'args', a string) in a real
-- terminal, acting out 'actions' as async_repl does; returns what the
-- terminal showed, ending with "exit status N".
function support.terminal_run(src, args, actions)
  return support.with_file(src, function(script)
    return support.with_file(table.concat(actions, "\n") .. "\n", function(f)
      return (support.sh(("env %s python3 spec/pty_helper.py %s lua5.4 %s %s")
        :format(support.LUA:match("^(.*) lua5.4"), f, script, args)))
    end)
  end)
end

-- A certificate for 'cn' (with 'san') in 'dir', signed by the CA 'ca' or
-- self-signed as a CA; returns the paths of its PEM and key.
function support.make_cert(dir, name, cn, san, ca)
  local p = dir .. "/" .. name
  local cmds = {("openssl req -newkey rsa:2048 -nodes -keyout %s.key -out %s.csr -subj '/CN=%s'")
    :format(p, p, cn)}
  if ca then
    cmds[2] = ("printf 'subjectAltName=%s\\n' > %s.ext"):format(san, p)
    cmds[3] = ("openssl x509 -req -in %s.csr -CA %s/%s.pem -CAkey %s/%s.key -CAcreateserial " ..
      "-out %s.pem -days 2 -extfile %s.ext"):format(p, dir, ca, dir, ca, p, p)
  else
    cmds[2] = ("printf 'basicConstraints=critical,CA:TRUE\\n' > %s.ext"):format(p)
    cmds[3] = ("openssl x509 -req -in %s.csr -signkey %s.key -out %s.pem -days 2 -extfile %s.ext")
      :format(p, p, p, p)
  end
  for _, c in ipairs(cmds) do
    local out, code = support.sh(c)
    assert(code == 0, out)
  end
  return p .. ".pem", p .. ".key"
end

-- The process id of this Lua process.
function support.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return math.tointeger(pid)
end

-- How many of this process's descriptors point at something matching
-- 'pattern' (any descriptor when nil). A full collection first: garbage of
-- earlier specs (a loop, a File, a stream left open) closes its
-- descriptors in its finalizer, and must not do so between two counts of
-- a spec (the flaky "13 after 12" of the streams spec).
local function count_fds(pattern)
  collectgarbage()
  collectgarbage()
  local out = support.sh("ls -l /proc/" .. support.pid() .. "/fd")
  local n = 0
  for target in out:gmatch("%d+ %-> ([^\n]*)") do
    if not pattern or target:find(pattern) then n = n + 1 end
  end
  return n
end

-- How many descriptors this process has open.
function support.fd_count() return count_fds(nil) end

-- How many sockets this process has open.
function support.socket_count() return count_fds("^socket:%[") end

-- A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
function support.free_port()
  return asyncio.run(function()
    local srv = asyncio.await(asyncio.start_server(function() end, "127.0.0.1", 0))
    local port = srv:sockets()[1]:getsockname()[2]
    srv:close()
    return port
  end)
end

-- Inside a task: a server of the spec's own on 127.0.0.1, 'handler(reader,
-- writer)' per connection. Returns the server, its port, and a table whose
-- 'accepted' counts the connections.
function support.serve(handler)
  local count = {accepted = 0}
  local srv = asyncio.await(asyncio.start_server(function(r, w)
    count.accepted = count.accepted + 1
    return handler(r, w)
  end, "127.0.0.1", 0))
  return srv, srv:sockets()[1]:getsockname()[2], count
end

-- Inside a task: close 'srv' (and its connections when 'clients') and wait
-- until each connection it accepted has ended.
function support.finish_server(srv, clients)
  srv:close()
  if clients then srv:close_clients() end
  asyncio.await(srv:wait_closed())
end

-- Start 'cmd' in the background (its output to 'log' or /dev/null);
-- returns its pid.
function support.spawn(cmd, log)
  local out = support.sh(("%s >%s 2>&1 & echo $!"):format(cmd, log or "/dev/null"))
  return assert(math.tointeger(tonumber(out:match("%d+"))), out)
end

function support.kill(pid, sig)
  os.execute(("kill -%s %d 2>/dev/null; sleep 0.05"):format(sig or "TERM", pid))
end

-- Inside a task: connect to 'port' once something accepts connections
-- there (a program just started); returns reader, writer.
function support.connect_retry(port, host)
  local last
  for _ = 1, 400 do
    local ok, r, w = pcall(asyncio.await, asyncio.open_connection(host or "127.0.0.1", port))
    if ok then return r, w end
    last = r
    asyncio.await(asyncio.sleep(0.025))
  end
  error("nothing listens on port " .. port .. ": " .. tostring(last))
end

-- Inside a task: wait until something accepts connections on 'port'.
function support.wait_port(port, host)
  local r, w = support.connect_retry(port, host)
  w:close()
  return r
end

return support
