-- ngx.lua: OpenResty's cosocket API (ngx.socket.tcp and the few ngx.*
-- functions drivers use) on the library's streams, so that lua-resty-*
-- drivers run unmodified inside tasks. Errors are cosocket's nil, err;
-- setkeepalive keeps idle connections in a per-loop, per-host pool.

local asyncio = require "asyncio"
local sockbuf = require "asyncio.sockbuf"
local task = require "asyncio.task"

local await, timed = asyncio.await, sockbuf.timed
local type, error, tostring, setmetatable, getmetatable, select = type, error, tostring,
  setmetatable, getmetatable, select
local concat, find, sub = table.concat, string.find, string.sub
local DONE = task.DONE

local M = {}

local DEFAULT_TIMEOUT = 60     -- seconds: nginx's lua_socket_*_timeout
local DEFAULT_IDLE = 60        -- seconds: lua_socket_keepalive_timeout
local DEFAULT_POOL_SIZE = 30   -- lua_socket_pool_size

-- What nginx's configuration would say: see M.configure.
local settings = {log_level = 4, log = nil, trusted_certificate = nil}

local argerror, typename, intask = sockbuf.argerror, sockbuf.typename, sockbuf.intask

-- The connection pools ---------------------------------------------------------

-- pools[loop][key] = {size = n, n = count, [1..n] = idle entries, oldest
-- first}. An entry is {reader, writer, reused = times, tls = bool, watch =
-- the task that watches it}. Connections belong to one loop: each loop
-- has its own pools.
local pools = setmetatable({}, {__mode = "k"})

-- The pool 'key' of the running loop; made (with 'size' room, fixed
-- from then on, as OpenResty's) when 'create', else nil if there is none.
local function pool_of(key, size, create)
  local loop = asyncio.get_running_loop()
  local by_key = pools[loop]
  if not by_key then
    if not create then return nil end
    by_key = {}
    pools[loop] = by_key
  end
  local pool = by_key[key]
  if not pool and create then
    pool = {size = size or DEFAULT_POOL_SIZE}
    by_key[key] = pool
  end
  return pool
end

local function pool_remove(pool, entry)
  for i = 1, #pool do
    if pool[i] == entry then table.remove(pool, i) return true end
  end
  return false
end

-- An idle connection's watcher: the peer closing it, sending bytes
-- nobody asked for, or 'idle' seconds passing (nil: never) close it and
-- take it out of its pool. Cancelled because a connect took it, it does
-- nothing (the read it waited in loses nothing).
local function watch(pool, entry, idle)
  local ok, err = asyncio.pcall(function()
    if idle then return await(asyncio.wait_for(entry[1]:read(1), idle)) end
    return await(entry[1]:read(1))
  end)
  if entry.taken then return end
  pool_remove(pool, entry)
  entry[2]:close()
  -- a cancellation (asyncio.run ending) goes on, the connection closed
  if not ok and not asyncio.TimeoutError:is(err) and not asyncio.OSError:is(err) then error(err, 0) end
end

-- An entry out of its pool for good: its watcher stopped, closed.
local function drop(entry)
  entry.taken = true
  entry.watch:cancel()
  entry[2]:close()
end

-- Bytes the stream of 'reader' holds that nobody has read, and whether
-- its peer has closed.
local function stream_holds(reader)
  return reader._conn.box:_buffered()
end

-- Take the most recently used idle connection of 'pool', or nil. One that
-- got bytes or an EOF its watcher has not seen yet is closed instead: its
-- next user would read them as the reply to its own request.
local function pool_take(pool)
  while true do
    local entry = table.remove(pool)
    if not entry then return nil end
    local n, eof = stream_holds(entry[1])
    if n == 0 and not eof then
      entry.taken = true
      entry.watch:cancel()
      return entry
    end
    drop(entry)
  end
end

local function pool_put(pool, entry, idle)
  if #pool >= pool.size then drop(table.remove(pool, 1)) end  -- full: the least recently used goes
  pool[#pool + 1] = entry
  entry.watch = asyncio.create_task(watch, pool, entry, idle)
  entry.watch:set_name("ngx keepalive pool")
end

-- idle_connections(key): how many idle connections the running loop's
-- pool 'key' ("host:port", "unix:path" or a connect's pool option) holds.
function M.idle_connections(key)
  if type(key) ~= "string" then
    argerror(1, "idle_connections", ("string expected, got %s"):format(typename(key)))
  end
  local pool = pool_of(key, nil, false)
  return pool and #pool or 0
end

-- close_pools(): close every idle connection of the running loop's pools.
function M.close_pools()
  local by_key = pools[asyncio.get_running_loop()]
  if not by_key then return end
  for _, pool in pairs(by_key) do
    while pool[1] do drop(table.remove(pool)) end
  end
end

-- The cosocket object ------------------------------------------------------------

-- A socket is {_state = "new" | "connected" | "closed", _reader, _writer,
-- the receive buffer of sockbuf.lua, _ct / _st / _rt (seconds, nil: the
-- default), _reused, _tls, _key (its pool)}.
local Tcp = {}
local TcpMT = {__index = Tcp, __name = "tcpsock"}

function TcpMT.__tostring(s) return ("tcpsock (%s): %s"):format(s._state, s._id) end

-- A socket collected while connected (its task was cancelled in the
-- middle of a command, say) closes its connection, as the end of a
-- request closes nginx's cosockets: the library would otherwise report an
-- unclosed stream. A guard {writer} per connection does it: made after
-- the stream, it is finalized before it (Lua finalizes the objects marked
-- last first); a connection that goes to a pool is taken out of it.
local Guard = {__gc = function(g)
  local w = g[1]
  if w then pcall(w.close, w) end
end}

local function new()
  local s = {_state = "new", _buf = "", _pos = 1, _received = 0, _reused = 0, _tls = false}
  s._id = tostring(s):match("0x%x+") or tostring(s)
  return setmetatable(s, TcpMT)
end

local function checksock(s, fname)
  if getmetatable(s) ~= TcpMT then
    error(("bad argument #1 to '%s' (tcpsock expected, got %s)"):format(fname, typename(s)), 3)
  end
end

function Tcp._limit(s) return s._rt or DEFAULT_TIMEOUT end

local function attach(s, reader, writer, reused, tls, key)
  s._reader, s._writer, s._reused, s._tls, s._key = reader, writer, reused, tls, key
  s._buf, s._pos, s._eof, s._state = "", 1, false, "connected"
  s._guard = setmetatable({writer}, Guard)
end

local function detach(s)
  s._reader, s._writer, s._state = nil, nil, "closed"
  s._buf, s._pos, s._eof = "", 1, false
  s._guard[1], s._guard = nil, nil
end

-- The connection 'conn' (the writer an operation began on) failed
-- (anything but a time limit): closed, as cosockets do; but not a
-- connection the socket took meanwhile (another task's connect).
local function failed(s, err, conn)
  if err ~= "timeout" and s._state == "connected" and s._writer == conn then
    s._writer:close()
    detach(s)
  end
end

local function checkms(v, n, fname)
  if v ~= nil and type(v) ~= "number" then argerror(n, fname, ("number expected, got %s"):format(typename(v))) end
  if v ~= nil and v ~= v then argerror(n, fname, "timeout is not a number") end
  if v == nil or v <= 0 then return nil end
  return v / 1000
end

-- sock:settimeout(ms): the connect, send and read limits (0 or nil: the
-- default, 60 s).
function Tcp:settimeout(ms)
  checksock(self, "settimeout")
  local t = checkms(ms, 1, "settimeout")
  self._ct, self._st, self._rt = t, t, t
end

function Tcp:settimeouts(c, s, r)
  checksock(self, "settimeouts")
  self._ct, self._st, self._rt = checkms(c, 1, "settimeouts"), checkms(s, 2, "settimeouts"),
    checkms(r, 3, "settimeouts")
end

-- connect ------------------------------------------------------------------------

local CONNECT_OPTS = {pool = "string", pool_size = "number", backlog = "number"}

local function resolve_reason(host)
  return function(err)
    if asyncio.OSError:is(err) and type(err.errno) == "string" and err.errno:match("^EAI_") then
      return ("%s could not be resolved"):format(host)
    end
    return sockbuf.reason(err)
  end
end

-- sock:connect(host, port, [opts]) or sock:connect("unix:/path", [opts]):
-- 1, or nil and the reason. opts: pool (the pool's name; default
-- "host:port" or the path), pool_size, backlog (accepted, ignored). An
-- idle connection of the pool is taken first (getreusedtimes counts).
function Tcp:connect(host, port, opts)
  checksock(self, "connect")
  if type(host) ~= "string" then argerror(1, "connect", ("string expected, got %s"):format(typename(host))) end
  local path = host:match("^unix:(.+)$")
  if path then opts, port = port, nil
  else
    port = sockbuf.port(port, 2, "connect", 3)
  end
  local n = path and 2 or 3
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, "connect", ("table expected, got %s"):format(typename(opts)))
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if not CONNECT_OPTS[k] then argerror(n, "connect", ("unknown option '%s'"):format(tostring(k))) end
    if type(v) ~= CONNECT_OPTS[k] then
      argerror(n, "connect", ("option '%s' must be a %s"):format(k, CONNECT_OPTS[k]))
    end
  end
  if opts.pool_size and not (math.tointeger(opts.pool_size) and opts.pool_size > 0) then
    argerror(n, "connect", "pool_size must be a positive integer")
  end
  intask("connect")
  if self._state == "connected" then self:close() end
  local key = opts.pool or (path and "unix:" .. path) or (host .. ":" .. port)
  local pool = pool_of(key, opts.pool_size, opts.pool_size ~= nil)
  local entry = pool and pool_take(pool)
  if entry then
    attach(self, entry[1], entry[2], entry.reused + 1, entry.tls, key)
    return 1
  end
  local ok, reader, writer = timed(self._ct or DEFAULT_TIMEOUT, function()
    if path then return asyncio.open_unix_connection(path) end
    return asyncio.open_connection(host, port)
  end, nil, resolve_reason(host))
  if not ok then return nil, reader end
  attach(self, reader, writer, 0, false, key)
  return 1
end

-- sslhandshake -----------------------------------------------------------------------

local contexts = {}  -- [verify] = SSLContext, made once each

local function context(verify)
  local ctx = contexts[verify]
  if not ctx then
    ctx = asyncio.ssl_context{verify = verify, cafile = settings.trusted_certificate}
    contexts[verify] = ctx
  end
  return ctx
end

local function handshake_reason(err)
  if asyncio.SSLError:is(err) then return "handshake failed: " .. tostring(err.message) end
  return sockbuf.reason(err)
end

local Session = {__name = "ngx.ssl.session"}

-- sock:sslhandshake([reused_session], [server_name], [ssl_verify]): TLS
-- over the connection; a session value (true when reused_session is
-- false), or nil and the reason. ssl_verify checks the certificate
-- against configure{trusted_certificate = ...} (or the system's CAs) and
-- server_name. A pooled connection that is TLS already answers at once.
function Tcp:sslhandshake(reused, server_name, verify)
  checksock(self, "sslhandshake")
  if server_name ~= nil and type(server_name) ~= "string" then
    argerror(2, "sslhandshake", ("string expected, got %s"):format(typename(server_name)))
  end
  if self._state ~= "connected" then return nil, "closed" end
  intask("sslhandshake")
  if not self._tls then
    if self._pos <= #self._buf then return nil, "handshake failed: unread data before the handshake" end
    local ctx = context(verify and true or false)
    local w, t = self._writer, self._ct or DEFAULT_TIMEOUT
    local ok, err = timed(t, function()
      return w:start_tls(ctx, {server_hostname = server_name, ssl_handshake_timeout = t})
    end, nil, handshake_reason)
    if not ok then
      failed(self, "handshake", w)
      return nil, err
    end
    self._tls = true
  end
  if reused == false then return true end
  return setmetatable({}, Session)
end

-- send ------------------------------------------------------------------------------

-- Flatten the strings, numbers and booleans of the array 'v' (nested
-- arrays too) into 'parts'; 'open' holds the arrays being flattened (an
-- array inside itself is refused, not a stack overflow).
local function flatten(v, parts, open)
  open[v] = true
  for i = 1, #v do
    local x = v[i]
    local tx = type(x)
    if tx == "string" then parts[#parts + 1] = x
    elseif tx == "number" or tx == "boolean" then parts[#parts + 1] = tostring(x)
    elseif tx == "table" and not open[x] then
      local ok, bad = flatten(x, parts, open)
      if not ok then return false, bad end
    elseif tx == "table" then return false, "table (an array inside itself)"
    else return false, tx end
  end
  open[v] = nil
  return true
end

local function identity(x) return x end

-- sock:send(data): data a string, a number, a boolean or an array of
-- those (nested arrays too). The number of bytes sent, or nil and the
-- reason.
function Tcp:send(data)
  checksock(self, "send")
  local td = type(data)
  if td == "table" then
    local parts = {}
    local ok, bad = flatten(data, parts, {})
    if not ok then argerror(1, "send", ("bad data type %s in the table"):format(bad)) end
    data = concat(parts)
  elseif td == "number" or td == "boolean" then data = tostring(data)
  elseif td ~= "string" then
    argerror(1, "send", ("string, number, boolean or array table expected, got %s"):format(typename(data)))
  end
  if self._state ~= "connected" then return nil, "closed" end
  intask("send")
  local w = self._writer
  if w:is_closing() or not pcall(w.write, w, data) then
    failed(self, "closed", w)
    return nil, "closed"
  end
  local d = w:drain()
  if d ~= DONE then
    -- counted as _reading is (setkeepalive refuses a socket busy writing)
    self._writing = (self._writing or 0) + 1
    local done, ok, err = pcall(timed, self._st or DEFAULT_TIMEOUT, identity, d)
    self._writing = self._writing - 1
    if not done then error(ok, 0) end
    if not ok then
      failed(self, err, w)
      return nil, err
    end
  end
  return #data
end

-- receive -----------------------------------------------------------------------------

local PATTERNS = {["*l"] = "l", ["*a"] = "a"}

-- The results of a read on connection 'conn': on an error other than a
-- time limit, the connection is closed, as cosockets do.
local function result(s, conn, data, err, partial)
  if data ~= nil then return data end
  failed(s, err, conn)
  return nil, err, partial
end

-- sock:receive([pattern]): "*l" (default) a line without "\r" and "\n",
-- "*a" everything until the peer closes, a size (a number or a numeric
-- string). Failing: nil, the reason, and the partial data.
function Tcp:receive(pattern)
  checksock(self, "receive")
  local kind = pattern == nil and "l" or PATTERNS[pattern]
  if not kind then
    local n = (type(pattern) == "number" or type(pattern) == "string") and math.tointeger(tonumber(pattern))
    if not n or n < 0 then argerror(1, "receive", "bad pattern argument") end
    kind = n
  end
  if self._state ~= "connected" then return nil, "closed" end
  intask("receive")
  if (self._reading or 0) > 0 then return nil, "socket busy reading" end  -- as OpenResty
  local conn = self._writer
  if kind == "l" then return result(self, conn, sockbuf.line(self, "", nil))
  elseif kind == "a" then return result(self, conn, sockbuf.all(self, "", nil))
  end
  return result(self, conn, sockbuf.count(self, kind, "", nil))
end

-- sock:receiveany(max): up to 'max' bytes, as soon as any are there.
function Tcp:receiveany(max)
  checksock(self, "receiveany")
  local n = type(max) == "number" and math.tointeger(max)
  if not n or n <= 0 then argerror(1, "receiveany", "bad max argument") end
  if self._state ~= "connected" then return nil, "closed" end
  intask("receiveany")
  if (self._reading or 0) > 0 then return nil, "socket busy reading" end
  if sockbuf.buffered(self) == 0 then
    local conn = self._writer
    local ok, err = sockbuf.fill(self, nil)
    if not ok then return result(self, conn, nil, err) end
  end
  return sockbuf.take(self, self._pos, math.min(#self._buf, self._pos + n - 1))
end

-- The length of the longest end of s's buffered bytes that is a start
-- of 'pattern' (shorter than it): bytes that the next ones may make a match.
local function pattern_start(s, pattern)
  local buf, n = s._buf, sockbuf.buffered(s)
  for k = math.min(#pattern - 1, n), 1, -1 do
    if sub(buf, #buf - k + 1) == sub(pattern, 1, k) then return k end
  end
  return 0
end

-- sock:receiveuntil(pattern, [opts]): an iterator reading up to the next
-- 'pattern' (consumed; kept in the data with opts.inclusive). Called
-- without a size it returns all the data before the pattern; with a size,
-- chunks of at most that many bytes, then nil once the pattern is passed.
-- Failing: nil, the reason, and the partial data; after a time limit the
-- bytes that may be the start of the pattern stay for the next call, so
-- that it still sees the pattern whole.
function Tcp:receiveuntil(pattern, opts)
  checksock(self, "receiveuntil")
  if type(pattern) ~= "string" then
    argerror(1, "receiveuntil", ("string expected, got %s"):format(typename(pattern)))
  end
  if pattern == "" then argerror(1, "receiveuntil", "pattern is empty") end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "receiveuntil", ("table expected, got %s"):format(typename(opts)))
  end
  local inclusive = opts and opts.inclusive and true or false
  local plen = #pattern
  local skip = inclusive and 0 or plen  -- the bytes after a record's data: its pattern, or none
  local s = self
  local ended = false
  -- Once the pattern is found, 'left' is how many bytes of the record are
  -- still to be handed out (all buffered), valid while the socket is still
  -- at 'at' of the connection of 'conn' (another receive may come between).
  local left, conn, at
  local function position() return s._received - sockbuf.buffered(s) end
  -- The next piece of a record whose end is buffered ('size' nil: all of it).
  local function hand(size)
    if size == nil or left <= size then
      local r = sockbuf.take(s, s._pos, s._pos + left - 1, skip)
      left = nil
      if size == nil then return r end
      if r == "" then return nil end  -- an empty record: only the pattern, passed
      ended = true
      return r
    end
    left = left - size
    local r = sockbuf.take(s, s._pos, s._pos + size - 1)
    conn, at = s._writer, position()
    return r
  end
  return function(size)
    if size ~= nil and not (math.tointeger(size) and size > 0) then
      argerror(1, "receiveuntil's iterator", "size must be a positive integer")
    end
    if s._state ~= "connected" then return nil, "closed" end
    intask("receiveuntil's iterator")
    if (s._reading or 0) > 0 then return nil, "socket busy reading" end
    if ended then ended = false return nil end
    if left and (conn ~= s._writer or at ~= position()) then left = nil end
    if left then return hand(size) end
    local w = s._writer
    -- without a size, a long record is gathered in 'parts' (bytes that
    -- cannot start a match), not in the buffer, which each chunk copies
    local parts = {}
    local from = s._pos
    while true do
      local i = find(s._buf, pattern, from, true)
      if i then
        left = i - s._pos + (inclusive and plen or 0)
        if size == nil then
          parts[#parts + 1] = hand(nil)
          return concat(parts)
        end
        return hand(size)
      end
      -- (the bytes before the longest start of the pattern at the end are data)
      if size and sockbuf.buffered(s) - pattern_start(s, pattern) >= size then
        return sockbuf.take(s, s._pos, s._pos + size - 1)
      end
      local keep = plen - 1  -- the bytes a match may still start in
      if size == nil and sockbuf.buffered(s) > keep then
        parts[#parts + 1] = sockbuf.take(s, s._pos, #s._buf - keep)
      end
      local searched = math.max(0, sockbuf.buffered(s) - keep)
      local ok, err = sockbuf.gathering(s, parts, sockbuf.fill, nil)
      if not ok then
        -- (reconnected or closed meanwhile by another task: its buffer is not ours)
        if s._writer ~= w then return nil, err, concat(parts) end
        if err == "timeout" then
          local partial = concat(parts) .. sockbuf.take(s, s._pos, #s._buf - pattern_start(s, pattern))
          return nil, err, partial
        end
        return result(s, w, nil, err, concat(parts) .. sockbuf.rest(s))
      end
      from = s._pos + searched
    end
  end
end

-- The rest of a socket ---------------------------------------------------------------

function Tcp:close()
  checksock(self, "close")
  if self._state ~= "connected" then return nil, "closed" end
  self._writer:close()
  detach(self)
  return 1
end

-- sock:setkeepalive([timeout_ms], [size]): the connection goes to its
-- pool (at most 'size' idle ones, default 30; the least recently used
-- closed to make room), idle at most timeout_ms (0: no limit; nil: 60 s);
-- the socket is closed for its user. 1, or nil and the reason.
function Tcp:setkeepalive(timeout, size)
  checksock(self, "setkeepalive")
  if timeout ~= nil and type(timeout) ~= "number" then
    argerror(1, "setkeepalive", ("number expected, got %s"):format(typename(timeout)))
  end
  if size ~= nil and not (math.tointeger(size) and size > 0) then
    argerror(2, "setkeepalive", "size must be a positive integer")
  end
  if self._state ~= "connected" then return nil, "closed" end
  intask("setkeepalive")
  if (self._reading or 0) > 0 then return nil, "socket busy reading" end
  if (self._writing or 0) > 0 then return nil, "socket busy writing" end
  -- bytes not read yet, here or in the stream: a reply the next user
  -- would take for its own
  if sockbuf.buffered(self) > 0 or stream_holds(self._reader) > 0 then
    return nil, "connection in dubious state"
  end
  if self._eof or self._writer:is_closing() or self._reader:at_eof() then
    self:close()
    return nil, "closed"
  end
  local idle = DEFAULT_IDLE
  if timeout then idle = timeout > 0 and timeout / 1000 or nil end
  local pool = pool_of(self._key, size, true)
  pool_put(pool, {self._reader, self._writer, reused = self._reused, tls = self._tls}, idle)
  detach(self)
  return 1
end

function Tcp:getreusedtimes()
  checksock(self, "getreusedtimes")
  if self._state ~= "connected" then return nil, "closed" end
  return self._reused
end

local OPTIONS = {keepalive = true, reuseaddr = true, ["tcp-nodelay"] = true, sndbuf = true, rcvbuf = true}

-- sock:setoption(name, value): accepted and kept (tcp-nodelay is always
-- on in the library's streams; the others do not reach the socket).
function Tcp:setoption(name, value)
  checksock(self, "setoption")
  if not OPTIONS[name] then argerror(1, "setoption", ("unsupported option '%s'"):format(tostring(name))) end
  self._opts = self._opts or {["tcp-nodelay"] = true}
  self._opts[name] = value
  return true
end

function Tcp:getoption(name)
  checksock(self, "getoption")
  if not OPTIONS[name] then argerror(1, "getoption", ("unsupported option '%s'"):format(tostring(name))) end
  local v = (self._opts or {["tcp-nodelay"] = true})[name]
  if v == nil then return false end
  return v
end

-- The ngx table -------------------------------------------------------------------------

local null = setmetatable({}, {__name = "ngx.null", __tostring = function() return "userdata: NULL" end,
  __newindex = function() error("ngx.null is read-only", 2) end})

local LEVELS = {[0] = "stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}

local function log(level, ...)
  if math.tointeger(level) == nil or LEVELS[level] == nil then
    argerror(1, "log", "bad log level")
  end
  if level > settings.log_level then return end
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    parts[i] = v == nil and "nil" or tostring(v)
  end
  local msg = concat(parts)
  if settings.log then return settings.log(level, msg) end
  io.stderr:write(("%s [%s] %s\n"):format(os.date("%Y/%m/%d %H:%M:%S"), LEVELS[level], msg))
end

local function sleep(sec)
  if type(sec) ~= "number" or sec ~= sec then
    argerror(1, "sleep", ("number expected, got %s"):format(typename(sec)))
  end
  intask("sleep")
  await(asyncio.sleep(sec > 0 and sec or 0))
end

local function tcp() return new() end

-- ngx.socket.connect(host, port, [opts]): a connected socket, or nil, err.
local function connect(...)
  local s = new()
  local ok, err = s:connect(...)
  if not ok then return nil, err end
  return s
end

local function unsupported(name)
  return function()
    error(("%s is not supported by asyncio.ngx"):format(name), 2)
  end
end

-- ngx.timer.at(delay, fn, ...): fn(premature, ...) in a new task after
-- 'delay' seconds; premature is true when the loop shuts down first.
local function timer_at(delay, fn, ...)
  if type(delay) ~= "number" or delay ~= delay or delay < 0 then
    argerror(1, "at", "delay must be a non-negative number")
  end
  if type(fn) ~= "function" then argerror(2, "at", ("function expected, got %s"):format(typename(fn))) end
  local args = table.pack(...)
  asyncio.create_task(function()
    local ok, err = pcall(await, asyncio.sleep(delay))
    if not ok then
      if asyncio.CancelledError:is(err) then return fn(true, table.unpack(args, 1, args.n)) end
      error(err, 0)
    end
    return fn(false, table.unpack(args, 1, args.n))
  end)
  return true
end

M.ngx = {
  null = null,
  OK = 0, ERROR = -1, AGAIN = -2, DONE = -4, DECLINED = -5,
  STDERR = 0, EMERG = 1, ALERT = 2, CRIT = 3, ERR = 4, WARN = 5, NOTICE = 6, INFO = 7, DEBUG = 8,
  socket = {tcp = tcp, stream = tcp, connect = connect, udp = unsupported("ngx.socket.udp")},
  sleep = sleep,
  now = sockbuf.gettime,
  time = function() return os.time() end,
  update_time = function() end,
  log = log,
  timer = {at = timer_at},
  -- in an asyncio.cluster worker: its place among the cluster's, as
  -- nginx numbers its worker processes (from 0)
  worker = {exiting = function() return false end,
            id = function() return (require("asyncio.cluster").worker_id() or 1) - 1 end,
            count = function() return require("asyncio.cluster").size() or 1 end},
  config = {subsystem = "http", debug = false, ngx_lua_version = 10021, nginx_version = 1021004,
            prefix = function() return "" end},
}

-- configure{log_level = ngx.WARN, log = fn(level, msg), trusted_certificate
-- = "ca.pem"}: what nginx's error_log and lua_ssl_trusted_certificate
-- would say. ngx.log prints levels up to log_level (default ngx.ERR) to
-- stderr, or hands them to 'log'.
function M.configure(opts)
  if type(opts) ~= "table" then argerror(1, "configure", ("table expected, got %s"):format(typename(opts))) end
  for k, v in pairs(opts) do
    if k == "log_level" then
      if not (math.tointeger(v) and LEVELS[v]) then argerror(1, "configure", "bad log_level") end
      settings.log_level = v
    elseif k == "log" then
      if type(v) ~= "function" then argerror(1, "configure", "log must be a function") end
      settings.log = v
    elseif k == "trusted_certificate" then
      if type(v) ~= "string" then argerror(1, "configure", "trusted_certificate must be a path") end
      settings.trusted_certificate = v
      contexts = {}
    else
      argerror(1, "configure", ("unknown option '%s'"):format(tostring(k)))
    end
  end
end

local previous, installed = nil, false

-- install(): sets the global 'ngx' (the drivers read it when they are
-- loaded); returns it.
function M.install()
  if not installed then
    previous, installed = rawget(_G, "ngx"), true
    rawset(_G, "ngx", M.ngx)
  end
  return M.ngx
end

-- uninstall(): the global 'ngx' is what it was before install().
function M.uninstall()
  if not installed then return end
  rawset(_G, "ngx", previous)
  previous, installed = nil, false
end

return M
