-- sockbuf.lua: what the LuaSocket and cosocket shims (luasocket.lua,
-- ngx.lua) share: a receive buffer over a StreamReader, the line / count /
-- until-EOF reads with partial results, and the mapping of the library's
-- errors to those APIs' words ("timeout", "closed", "connection refused").
-- A socket here is a table with _reader, _buf (bytes received and not yet
-- taken, from _pos on), _pos, _eof, _received, and a method _limit(start):
-- the seconds the next wait of a call that began at 'start' may take.

local asyncio = require "asyncio"

local await, TimeoutError, OSError = asyncio.await, asyncio.TimeoutError, asyncio.OSError
local error, sub, find, gsub = error, string.sub, string.find, string.gsub

local M = {}

local CHUNK = 65536  -- the most one read takes from the stream

-- The word for what went wrong in 'err': "timeout", "closed",
-- "connection refused", or the system's message. Anything but a time
-- limit or an OSError is a bug, not an outcome: raised again.
function M.reason(err)
  if TimeoutError:is(err) then return "timeout" end
  if not OSError:is(err) then error(err, 0) end
  local errno = err.errno
  if errno == "ECONNREFUSED" then return "connection refused"
  elseif errno == "ECONNRESET" or errno == "ECONNABORTED" or errno == "EPIPE" then return "closed"
  elseif errno == "ETIMEDOUT" then return "timeout"
  elseif errno == "EAI_NONAME" then return "host or service not provided, or not known"
  elseif errno and errno:match("^EAI_") then return "host not found"
  end
  return err.strerror or err.message or "unknown error"
end
local reason = M.reason

-- Await the awaitable 'mk(a)' makes, within 't' seconds (nil: no limit).
-- Returns true and its results, or false and the reason ('why(err)',
-- default M.reason). A cancellation of the task goes through, raised.
local function await_made(mk, a) return await(mk(a)) end
local function await_within(t, mk, a) return await(asyncio.timeout(t, await_made, mk, a)) end

function M.timed(t, mk, a, why)
  local ok, r1, r2
  if t == nil then ok, r1, r2 = asyncio.pcall(await_made, mk, a)
  else ok, r1, r2 = asyncio.pcall(await_within, t, mk, a) end
  if ok then return true, r1, r2 end
  return false, (why or reason)(r1)
end
local timed = M.timed

-- What both shims check their arguments with. The levels: 1 is the
-- helper, 2 the shim's function, 3 the program's call of it.
function M.argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

function M.typename(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__name) == "string" and mt.__name or type(v)
end

function M.intask(fname)
  if asyncio.current_task() == nil then
    error(("'%s' called outside a running task"):format(fname), 3)
  end
end

local function readchunk(reader) return reader:read(CHUNK) end

-- Take one more chunk from the stream into s._buf: true, or nil and the
-- reason ("closed" at EOF, "timeout", ...). Cancelled, nothing is lost:
-- the bytes stay in the reader.
function M.fill(s, start)
  if s._eof then return nil, "closed" end
  -- s._reading counts the waits in progress (setkeepalive refuses a busy
  -- socket); a cancellation passes through timed, so it is counted here
  s._reading = (s._reading or 0) + 1
  local done, ok, data = pcall(timed, s:_limit(start), readchunk, s._reader)
  s._reading = s._reading - 1
  if not done then error(ok, 0) end
  if not ok then
    if data == "closed" then s._eof = true end
    return nil, data
  end
  if data == "" then
    s._eof = true
    return nil, "closed"
  end
  s._received = s._received + #data
  if s._pos > #s._buf then s._buf, s._pos = data, 1
  else s._buf = sub(s._buf, s._pos) .. data; s._pos = 1 end
  return true
end
local fill = M.fill

-- Take bytes 'i' to 'j' (positions in s._buf) and move past 'j', and
-- past 'skip' more bytes (a line's "\n").
function M.take(s, i, j, skip)
  local r = sub(s._buf, i, j)
  s._pos = j + 1 + (skip or 0)
  if s._pos > #s._buf then s._buf, s._pos = "", 1 end
  return r
end
local take = M.take

-- Everything buffered, taken.
function M.rest(s) return take(s, s._pos, #s._buf) end
local rest = M.rest

-- How many bytes are buffered.
function M.buffered(s) return #s._buf - s._pos + 1 end

-- A line without its "\n" and without any "\r"; failing: nil, the
-- reason, and the partial line (taken).
function M.line(s, prefix, start)
  local nl = find(s._buf, "\n", s._pos, true)
  if nl then  -- the common case: a whole line is buffered
    local line = take(s, s._pos, nl - 1, 1)
    if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
    return prefix .. line
  end
  local from = #s._buf + 1
  while true do
    from = from - (s._pos - 1)  -- where the search goes on once fill moved the bytes
    local ok, err = fill(s, start)
    if not ok then return nil, err, prefix .. (gsub(rest(s), "\r", "")) end
    nl = find(s._buf, "\n", from, true)
    if nl then return prefix .. (gsub(take(s, s._pos, nl - 1, 1), "\r", "")) end
    from = #s._buf + 1
  end
end

-- Exactly 'n' bytes; failing: nil, the reason, and what came (taken).
function M.count(s, n, prefix, start)
  while #s._buf - s._pos + 1 < n do
    local ok, err = fill(s, start)
    if not ok then return nil, err, prefix .. rest(s) end
  end
  return prefix .. take(s, s._pos, s._pos + n - 1)
end

-- Everything until the peer closes; failing otherwise: nil, the reason,
-- and what came (taken).
function M.all(s, prefix, start)
  while true do
    local ok, err = fill(s, start)
    if not ok then
      if err == "closed" then return prefix .. rest(s) end
      return nil, err, prefix .. rest(s)
    end
  end
end

-- Seconds since the epoch, with a fraction: os.time() when this module
-- loaded plus the monotonic clock's progress since (Lua has no finer
-- wall clock; the library's own clock is monotonic).
local EPOCH, MONO = os.time(), asyncio.monotonic()
function M.gettime() return EPOCH + (asyncio.monotonic() - MONO) end

return M
