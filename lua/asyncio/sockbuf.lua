-- sockbuf.lua: what the LuaSocket and cosocket shims (luasocket.lua,
-- ngx.lua) share: a receive buffer over a StreamReader, the line / count /
-- until-EOF reads with partial results, and the mapping of the library's
-- errors to those APIs' words ("timeout", "closed", "connection refused").
-- A socket here is a table with _reader, _buf (bytes received and not yet
-- taken, from _pos on), _pos, _eof, _received, and a method _limit(start):
-- the seconds the next wait of a call that began at 'start' may take.

local asyncio = require "asyncio"

local await, TimeoutError, OSError = asyncio.await, asyncio.TimeoutError, asyncio.OSError
local error, sub, find, gsub, concat, min = error, string.sub, string.find, string.gsub, table.concat,
  math.min

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
-- helper, 2 the shim's function, 3 the program's call of it (one more
-- for each helper between: 'level').
function M.argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

-- A port (a number or a numeric string, as both APIs take it) for
-- argument 'n' of 'fname'; 'level' as argerror's, counted from here.
function M.port(port, n, fname, level)
  local p = (type(port) == "number" or type(port) == "string") and math.tointeger(tonumber(port))
  if not p then M.argerror(n, fname, ("number expected, got %s"):format(M.typename(port)), level + 1) end
  if p < 0 or p > 65535 then M.argerror(n, fname, "port out of range", level + 1) end
  return p
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

local function readchunk(s) return s._reader:read(s._want) end

-- One more chunk of at most 'max' bytes from the stream: the bytes, or
-- nil and the reason. At the end of the stream the reason is "closed" and
-- s._eof is "eof"; a connection reset is "closed" too, but s._eof is
-- "reset": what came before it is not a whole reply. Cancelled, nothing is
-- lost: the bytes stay in the reader. A socket reconnected or closed
-- meanwhile (by another task) is left alone: its new connection's bytes
-- are not this read's.
function M.chunk(s, start, max)
  if s._eof then return nil, "closed" end
  local reader = s._reader
  -- s._reading counts the waits in progress (setkeepalive refuses a busy
  -- socket); a cancellation passes through timed, so it is counted here
  s._reading = (s._reading or 0) + 1
  s._want = max
  local done, ok, data = pcall(timed, s:_limit(start), readchunk, s)
  s._reading = s._reading - 1
  if not done then error(ok, 0) end
  if s._reader ~= reader then return nil, "closed" end
  if not ok then
    if data == "closed" then s._eof = "reset" end
    return nil, data
  end
  if data == "" then
    s._eof = "eof"
    return nil, "closed"
  end
  s._received = s._received + #data
  return data
end
local chunk = M.chunk

-- Take one more chunk from the stream into s._buf: true, or nil and the
-- reason (see chunk).
function M.fill(s, start)
  local data, err = chunk(s, start, CHUNK)
  if not data then return nil, err end
  if s._pos > #s._buf then s._buf, s._pos = data, 1
  else s._buf = sub(s._buf, s._pos) .. data; s._pos = 1 end
  return true
end

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
local function buffered(s) return #s._buf - s._pos + 1 end
M.buffered = buffered

-- The reads below gather a long reply in 'parts' (a list of strings)
-- rather than in s._buf, which each chunk would copy again: a 32 MiB
-- read took 50 s that way. The bytes gathered go back to the front of the
-- buffer if the task is cancelled (or anything raises) in the middle.
local function unread(s, parts)
  s._buf, s._pos = concat(parts) .. sub(s._buf, s._pos), 1
end

-- fn(s, a, b) for a read that has gathered 'parts': what it returns; if
-- it raises, the parts go back first (not into the buffer of a connection
-- the socket took meanwhile).
function M.gathering(s, parts, fn, a, b)
  local reader = s._reader
  local ok, r1, r2 = pcall(fn, s, a, b)
  if ok then return r1, r2 end
  if s._reader == reader then unread(s, parts) end
  error(r1, 0)
end
local gathering = M.gathering

local function more(s, parts, start, max) return gathering(s, parts, chunk, start, max) end

local function nocr(line)
  if find(line, "\r", 1, true) then return (gsub(line, "\r", "")) end
  return line
end

-- A line without its "\n" and without any "\r"; failing: nil, the
-- reason, and the partial line (taken).
function M.line(s, prefix, start)
  local nl = find(s._buf, "\n", s._pos, true)
  if nl then return prefix .. nocr(take(s, s._pos, nl - 1, 1)) end  -- a whole line is buffered
  local parts = {rest(s)}
  while true do
    local data, err = more(s, parts, start, CHUNK)
    if not data then return nil, err, prefix .. nocr(concat(parts)) end
    nl = find(data, "\n", 1, true)
    if nl then
      parts[#parts + 1] = sub(data, 1, nl - 1)
      if nl < #data then s._buf, s._pos = data, nl + 1 end  -- (the buffer was empty)
      return prefix .. nocr(concat(parts))
    end
    parts[#parts + 1] = data
  end
end

-- 'n' bytes counting the prefix, as LuaSocket's (a prefix of n bytes or
-- more is returned as it is); failing: nil, the reason, and what came
-- (taken).
function M.count(s, n, prefix, start)
  local want = n - #prefix
  if want <= 0 then return prefix end
  if buffered(s) >= want then return prefix .. take(s, s._pos, s._pos + want - 1) end
  local parts = {rest(s)}
  local got = #parts[1]
  while got < want do
    local data, err = more(s, parts, start, min(CHUNK, want - got))
    if not data then return nil, err, prefix .. concat(parts) end
    parts[#parts + 1] = data
    got = got + #data
  end
  return prefix .. concat(parts)
end

-- Everything until the peer closes; failing otherwise (a reset among
-- them): nil, the reason, and what came (taken). The end of the stream
-- seen before the call is "closed", as both APIs say (a loop reading
-- until it fails ends); so is an end with nothing at all before it when
-- 'empty_closed' (LuaSocket's rule).
function M.all(s, prefix, start, empty_closed)
  if s._eof and buffered(s) == 0 then return nil, "closed", prefix end
  local parts = {rest(s)}
  while true do
    local data, err = more(s, parts, start, CHUNK)
    if not data then
      local body = concat(parts)
      if s._eof == "eof" and not (empty_closed and body == "") then return prefix .. body end
      return nil, err, prefix .. body
    end
    parts[#parts + 1] = data
  end
end

-- Seconds since the epoch, with a fraction: os.time() when this module
-- loaded plus the monotonic clock's progress since (Lua has no finer
-- wall clock; the library's own clock is monotonic).
local EPOCH, MONO = os.time(), asyncio.monotonic()
function M.gettime() return EPOCH + (asyncio.monotonic() - MONO) end

return M
