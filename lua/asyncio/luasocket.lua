-- luasocket.lua: LuaSocket's TCP client API on the library's streams, for
-- drivers written against LuaSocket. A call that would block suspends the
-- calling task instead; results and errors follow LuaSocket's conventions
-- (nil, "timeout" / "closed", partial). install() makes require "socket"
-- give these sockets inside a task and the real LuaSocket outside one.

local asyncio = require "asyncio"
local sockbuf = require "asyncio.sockbuf"
local task = require "asyncio.task"

local await, timed = asyncio.await, sockbuf.timed
local type, error, tostring, setmetatable, getmetatable = type, error, tostring, setmetatable,
  getmetatable
local min, sub, find = math.min, string.sub, string.find
local DONE = task.DONE

local M = {_VERSION = "LuaSocket 3.1.0 (asyncio.luasocket)"}

local argerror, typename, intask = sockbuf.argerror, sockbuf.typename, sockbuf.intask

-- The socket object --------------------------------------------------------

-- A socket is {_state = "master" | "client" | "closed", _reader, _writer,
-- _buf (received, not yet taken, from _pos on), _block / _total (seconds
-- or nil), _opts (setoption's values), _eof, _sent, _received, _born}.
local Tcp = {}
local Master = {__index = Tcp, __name = "tcp{master}"}
local Client = {__index = Tcp, __name = "tcp{client}"}

local function tostr(s)
  return ("tcp{%s}: %s"):format(s._state, s._id)
end
Master.__tostring, Client.__tostring = tostr, tostr

-- A client collected while open closes its stream, as LuaSocket's does
-- (the library would otherwise report an unclosed stream).
function Client.__gc(s)
  if s._state == "client" then pcall(s._writer.close, s._writer) end
end

local function new(family)
  local s = {_state = "master", _buf = "", _pos = 1, _opts = {["tcp-nodelay"] = true},
             _family = family, _sent = 0, _received = 0, _born = asyncio.monotonic()}
  s._id = tostring(s):match("0x%x+") or tostring(s)
  return setmetatable(s, Master)
end

-- Check that 's' is a socket in one of the states of 'states' (a set).
local function checksock(s, fname, states)
  local mt = getmetatable(s)
  if mt ~= Master and mt ~= Client then
    error(("bad argument #1 to '%s' (tcp object expected, got %s)"):format(fname, typename(s)), 3)
  end
  if not states[s._state] then
    error(("'%s' called on a tcp{%s} object"):format(fname, s._state), 3)
  end
end
local ANY = {master = true, client = true, closed = true}
local CONNECTED = {client = true, closed = true}
local UNCONNECTED = {master = true, closed = true}

-- Seconds the next wait of 's' may take: the block limit, and what is
-- left of the total limit of the call that started at 'start' (nil: none).
function Tcp._limit(s, start)
  local t = s._block
  if s._total then
    local left = s._total - (asyncio.monotonic() - start)
    if left < 0 then left = 0 end
    t = t and min(t, left) or left
  end
  return t
end

-- connect -------------------------------------------------------------------

-- (level 4: the program called the function that called this one)
-- (not a tail call: that would drop this level)
local function checkport(port, fname, n)
  local p = sockbuf.port(port, n or 2, fname, 4)
  return p
end

local FAMILY = {inet = 4, inet6 = 6}

-- master:connect(host, port): 1, or nil and the reason.
function Tcp:connect(host, port)
  checksock(self, "connect", UNCONNECTED)
  if type(host) ~= "string" then argerror(1, "connect", ("string expected, got %s"):format(typename(host))) end
  port = checkport(port, "connect")
  intask("connect")
  if self._state == "closed" then return nil, "closed" end
  local opts = {family = FAMILY[self._family], local_addr = self._local}
  local ok, reader, writer = timed(self:_limit(asyncio.monotonic()), function()
    return asyncio.open_connection(host, port, opts)
  end)
  if not ok then return nil, reader end
  self._reader, self._writer, self._state = reader, writer, "client"
  setmetatable(self, Client)  -- marked for collection after its stream: closed first
  return 1
end

-- master:bind(host, port): the local address connect binds to.
function Tcp:bind(host, port)
  checksock(self, "bind", {master = true})
  if type(host) ~= "string" then argerror(1, "bind", ("string expected, got %s"):format(typename(host))) end
  port = checkport(port, "bind")
  self._local = {host == "*" and "0.0.0.0" or host, port}
  return 1
end

local function unsupported(name, instead)
  return function()
    error(("'%s' is not supported by asyncio.luasocket (a TCP client API)%s"):format(name,
      instead and ": use " .. instead or ""), 2)
  end
end
local SERVERS = "asyncio.start_server for servers"
Tcp.listen, Tcp.accept, Tcp.setfd = unsupported("listen", SERVERS), unsupported("accept", SERVERS),
  unsupported("setfd")

-- receive ---------------------------------------------------------------------

local PATTERNS = {["*l"] = "l", l = "l", ["*a"] = "a", a = "a"}

local function receive(s, kind, prefix)
  if s._state == "closed" then return nil, "closed" end
  local start = asyncio.monotonic()
  if kind == "l" then return sockbuf.line(s, prefix, start)
  elseif kind == "a" then return sockbuf.all(s, prefix, start, true)
  end
  return sockbuf.count(s, kind, prefix, start)
end

local function done_with(turn, ok, ...)
  turn:release()
  if not ok then error((...), 0) end
  return ...
end

-- client:receive([pattern], [prefix]): "*l" (default) a line without its
-- end of line, "*a" everything until the peer closes, n bytes (the
-- prefix counted among them). Failing: nil, "closed" / "timeout" / ...,
-- and what was received (consumed), the prefix first.
function Tcp:receive(pattern, prefix)
  checksock(self, "receive", CONNECTED)
  pattern = pattern == nil and "l" or pattern
  local kind = PATTERNS[pattern]
  if not kind then  -- a count: a number or a numeric string, its fraction dropped (as LuaSocket)
    local n = (type(pattern) == "number" or type(pattern) == "string") and tonumber(pattern)
    if not n or n ~= n or n < 0 or n >= 2^53 then argerror(1, "receive", "invalid receive pattern") end
    kind = math.tointeger(math.floor(n))
  end
  if prefix ~= nil and type(prefix) ~= "string" and type(prefix) ~= "number" then
    argerror(2, "receive", ("string expected, got %s"):format(typename(prefix)))
  end
  prefix = prefix and tostring(prefix) or ""
  if self._state == "closed" then return nil, "closed" end
  intask("receive")
  -- one receive at a time, in the order they are made: a receive that
  -- waits holds the bytes it has taken so far, which the next one must
  -- not overtake
  local turn = self._turn
  if not turn then turn = asyncio.Lock(); self._turn = turn end
  await(turn:acquire())
  return done_with(turn, pcall(receive, self, kind, prefix))
end

-- send ------------------------------------------------------------------------

local function identity(x) return x end

-- client:send(data, [i], [j]): sends data:sub(i, j); returns the index of
-- the last byte sent, or nil, the reason and the index of the last byte
-- sent before it. Bytes are sent in order by the stream: a send that times
-- out waiting for a slow peer has handed its bytes over (the last index is
-- j) and they go out later, as a kernel's send buffer would send them.
function Tcp:send(data, i, j)
  checksock(self, "send", CONNECTED)
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then argerror(1, "send", ("string expected, got %s"):format(typename(data))) end
  if i ~= nil and not math.tointeger(i) then argerror(2, "send", ("number expected, got %s"):format(typename(i))) end
  if j ~= nil and not math.tointeger(j) then argerror(3, "send", ("number expected, got %s"):format(typename(j))) end
  local len = #data
  i, j = math.tointeger(i) or 1, math.tointeger(j) or -1
  if i < 0 then i = len + i + 1 end
  if i < 1 then i = 1 end
  if j < 0 then j = len + j + 1 end
  if j > len then j = len end
  if self._state == "closed" then return nil, "closed", i - 1 end
  intask("send")
  if i > j then return i - 1 end
  local w = self._writer
  if w:is_closing() or not pcall(w.write, w, sub(data, i, j)) then return nil, "closed", i - 1 end
  self._sent = self._sent + (j - i + 1)
  local d = w:drain()  -- DONE unless too much is queued or the connection failed
  if d == DONE then return j end
  local ok, err = timed(self:_limit(asyncio.monotonic()), identity, d)
  if ok then return j end
  if err == "timeout" then return nil, "timeout", j end
  return nil, err, i - 1
end

-- The rest of a client ---------------------------------------------------------

-- sock:settimeout(t, [mode]): mode "b" (default) limits each wait, "t"
-- the whole call; nil or a negative t: no limit.
function Tcp:settimeout(t, mode)
  checksock(self, "settimeout", ANY)
  if t ~= nil and type(t) ~= "number" then
    argerror(1, "settimeout", ("number expected, got %s"):format(typename(t)))
  end
  if t ~= nil and t ~= t then argerror(1, "settimeout", "timeout is not a number") end
  if t ~= nil and t < 0 then t = nil end
  mode = mode or "b"
  if mode == "b" or mode == "r" then self._block = t
  elseif mode == "t" then self._total = t
  else argerror(2, "settimeout", "invalid timeout mode") end
  return 1
end
Tcp.timeout = Tcp.settimeout

function Tcp:close()
  checksock(self, "close", ANY)
  if self._state == "client" then self._writer:close() end
  self._state = "closed"
  return 1
end

local SHUTDOWN = {both = true, send = true, receive = true}

-- client:shutdown([how]): "send" sends EOF, "receive" makes later receives
-- fail with "closed", "both" (default) does both and closes the stream.
function Tcp:shutdown(how)
  checksock(self, "shutdown", CONNECTED)
  how = how or "both"
  if not SHUTDOWN[how] then argerror(1, "shutdown", "invalid shutdown method") end
  if self._state == "closed" then return 1 end
  if how == "both" then
    self._writer:close()
    self._eof = true
  elseif how == "send" then
    pcall(self._writer.write_eof, self._writer)
  else
    self._eof = true
  end
  return 1
end

local function address(s, which)
  if s._state ~= "client" then return nil, s._state == "closed" and "closed" or "not connected" end
  local a = s._writer:get_extra_info(which)
  if type(a) ~= "table" then return nil, "closed" end
  return a[1], a[2], find(a[1], ":", 1, true) and "inet6" or "inet"
end

-- client:getpeername(), client:getsockname(): address, port, family.
function Tcp:getpeername()
  checksock(self, "getpeername", ANY)
  return address(self, "peername")
end

function Tcp:getsockname()
  checksock(self, "getsockname", ANY)
  if self._state == "master" then return "0.0.0.0", 0, self._family or "inet" end
  return address(self, "sockname")
end

-- Options LuaSocket knows. tcp-nodelay is always on in the library's
-- streams; the others are accepted and kept (getoption gives them back)
-- without reaching the socket.
local OPTIONS = {keepalive = true, linger = true, reuseaddr = true, reuseport = true,
  ["tcp-nodelay"] = true, ["tcp-keepidle"] = true, ["tcp-keepcnt"] = true, ["tcp-keepintvl"] = true,
  ["ipv6-v6only"] = true, ["tcp-defer-accept"] = true, ["tcp-fastopen"] = true,
  ["tcp-fastopen-connect"] = true}

function Tcp:setoption(name, value)
  checksock(self, "setoption", ANY)
  if not OPTIONS[name] then argerror(1, "setoption", ("unsupported option '%s'"):format(tostring(name))) end
  if self._state == "closed" then return nil, "closed" end
  self._opts[name] = value
  return 1
end

function Tcp:getoption(name)
  checksock(self, "getoption", ANY)
  if not OPTIONS[name] then argerror(1, "getoption", ("unsupported option '%s'"):format(tostring(name))) end
  if self._state == "closed" then return nil, "closed" end
  return self._opts[name]
end

-- client:dirty(): true when received bytes wait to be taken.
function Tcp:dirty()
  checksock(self, "dirty", ANY)
  return sockbuf.buffered(self) > 0
end

function Tcp:getfd()
  checksock(self, "getfd", ANY)
  if self._state ~= "client" then return -1 end
  return self._writer:get_extra_info("fd", -1)
end

-- sock:getstats(): bytes received, bytes sent, age in seconds.
function Tcp:getstats()
  checksock(self, "getstats", ANY)
  return self._received, self._sent, asyncio.monotonic() - self._born
end

function Tcp:setstats(received, sent, age)
  checksock(self, "setstats", ANY)
  self._received, self._sent = received or self._received, sent or self._sent
  if age then self._born = asyncio.monotonic() - age end
  return 1
end

-- The module ----------------------------------------------------------------

function M.tcp() return new(nil) end
function M.tcp4() return new("inet") end
function M.tcp6() return new("inet6") end

-- connect(host, port, [lhost], [lport], [family]): a connected client, or
-- nil and the reason.
function M.connect(host, port, lhost, lport, family)
  -- checked here too, so that an error names the program's line
  if type(host) ~= "string" then argerror(1, "connect", ("string expected, got %s"):format(typename(host))) end
  checkport(port, "connect")
  if lhost ~= nil and type(lhost) ~= "string" then
    argerror(3, "connect", ("string expected, got %s"):format(typename(lhost)))
  end
  if lhost and lport ~= nil then checkport(lport, "connect", 4) end
  local s = new(FAMILY[family] and family or nil)
  if lhost then s:bind(lhost, lport or 0) end
  local ok, err = s:connect(host, port)
  if not ok then return nil, err end
  return s
end
function M.connect4(host, port, lhost, lport) return M.connect(host, port, lhost, lport, "inet") end
function M.connect6(host, port, lhost, lport) return M.connect(host, port, lhost, lport, "inet6") end

-- sleep(t): suspends the calling task for t seconds.
function M.sleep(t)
  if type(t) ~= "number" then argerror(1, "sleep", ("number expected, got %s"):format(typename(t))) end
  intask("sleep")
  await(asyncio.sleep(t > 0 and t or 0))
end

-- gettime(): seconds since the epoch, with a fraction (see sockbuf.gettime).
M.gettime = sockbuf.gettime

M.select = unsupported("select", "tasks, which wait for their own sockets")
local UDP = "asyncio.open_udp"
M.udp, M.udp4, M.udp6 = unsupported("udp", UDP), unsupported("udp4", UDP), unsupported("udp6", UDP)

-- LuaSocket's small error helpers: try raises a wrapped error that
-- protect turns back into nil, err (other errors, a cancellation among
-- them, pass through).
local Wrapped = {}
function M.newtry(finalizer)
  return function(...)
    if not (...) then
      if finalizer then pcall(finalizer) end
      error(setmetatable({(select(2, ...))}, Wrapped), 0)
    end
    return ...
  end
end
M.try = M.newtry()

local function unwrap(ok, ...)
  if ok then return ... end
  local e = ...
  if getmetatable(e) == Wrapped then return nil, e[1] end
  error(e, 0)
end
function M.protect(fn)
  return function(...) return unwrap(pcall(fn, ...)) end
end

function M.skip(d, ...) return select(d + 1, ...) end

-- install() ------------------------------------------------------------------

-- Names whose meaning depends on where they are called: the shim's inside
-- a task, the real LuaSocket's outside.
local DISPATCH = {"tcp", "tcp4", "tcp6", "connect", "connect4", "connect6", "sleep", "select",
  "udp", "udp4", "udp6"}

local installed, previous

-- install(): require "socket" gives a module whose sockets (tcp, connect,
-- sleep, ...) are this module's inside a task and the real LuaSocket's
-- outside any task; everything else is the real module's. Without the
-- real LuaSocket (not installed), calls outside a task raise an error
-- saying so. Returns that module; calling again returns the same one.
function M.install()
  if installed then return installed end
  local ok, real = pcall(require, "socket")
  if not ok or type(real) ~= "table" then real = nil end
  previous = real
  local proxy = {}
  for _, name in ipairs(DISPATCH) do
    local mine = M[name]
    local theirs = real and real[name]
    proxy[name] = function(...)
      if asyncio.current_task() then return mine(...) end
      if theirs == nil then
        error(("socket.%s called outside a task, and the real LuaSocket is not installed"):format(name), 2)
      end
      return theirs(...)
    end
  end
  setmetatable(proxy, {__index = function(_, k)
    local v = real and real[k]
    if v == nil then v = M[k] end
    return v
  end})
  proxy.asyncio = M
  installed = proxy
  package.loaded.socket = proxy
  return proxy
end

-- uninstall(): require "socket" gives what it gave before install().
function M.uninstall()
  if not installed then return end
  package.loaded.socket = previous
  installed, previous = nil, nil
end

return M
