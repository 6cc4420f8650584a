-- files.lua: files and the file system on libuv's thread pool (fs.c).
-- A File keeps its own position and reads and writes at it (pread,
-- pwrite), advancing it only when an answer is taken: a read cancelled
-- while in the pool leaves the position where the next read expects it.
-- One task uses a File at a time (the others wait their turn), and a File
-- that is collected open is flushed, closed and reported.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local rt = require "asyncio.runtime"
local streams = require "asyncio.streams"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw
local waiters = require "asyncio.waiters"

local argcheck, typeerror, checknul = util.argcheck, util.typeerror, util.checknul
local setmetatable, error, type, mtype, concat = setmetatable, error, type, math.type, table.concat
local op = streams.op

local OPEN, CLOSE, READ, WRITE, STAT, FSTAT, MKDIR, RMDIR, UNLINK, RENAME, SCANDIR =
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

local M = {}

-- Start fs operation 'code' in the pool: the request.
local function start(t, what, code, ...)
  local req, name, msg = core.fs(t._loop._core, code, ...)
  if not req then throw(errors.oserror(name, msg, what)) end
  return req
end

-- Wait for request 'req': its answer, or its OSError raised. 'f', the
-- File whose turn the task holds, if any: handed on if the task is closed
-- by hand while it waits.
local await_request = streams.await_request
local function finish(t, what, req, f)
  return await_request(t, what, req, f and f._turn)
end

-- Run fs operation 'code' in the pool; its answer, or its OSError raised.
local function call(fname, what, code, ...)
  local t = task.current(fname)
  return finish(t, what, start(t, what, code, ...))
end

local File = {__name = "asyncio.File"}
File.__index = File
M.File = File

local function checkfile(f, fname)
  util.checkself(File, f, fname)
  if f._fd == nil then raise(("%s: the file is closed"):format(fname)) end
end

-- One task at a time uses a File: an operation of another task waits its
-- turn (waiters.lua) before it changes anything, so a cancelled wait did
-- nothing, and the File's buffers and its request in the pool are never
-- shared by two operations. Turns go in arrival order: a task that asks
-- again goes behind the tasks already waiting.
local function release(f, ok, ...)
  waiters.release(f._turn)
  if not ok then error((...), 0) end
  return ...
end

-- An Op body that runs fn(f, t, a, b) in the running task, alone on 'f'.
local function exclusive(fname, fn)
  return function(f, a, b)
    local t = task.current(fname)
    waiters.acquire(f._turn, t, "file another task is using")
    if f._fd == nil and fname ~= "close" then  -- closed while we waited
      return release(f, false, ("%s: the file is closed"):format(fname))
    end
    f._op = fname
    return release(f, pcall(fn, f, t, a, b))
  end
end

-- Reads ask the pool for BLOCK bytes at a time and are served from that
-- buffer; writes are gathered up to BLOCK and go to the pool as one, while
-- the program goes on (one write in the pool at a time). A copy loop of
-- 64 KiB reads and writes so makes 32 times fewer trips to the pool.
local BLOCK = 1 << 20
local MAX_READ = 1 << 30  -- the most one request asks of the pool

-- A File's fields: _fd; _pos, the position the program sees; _buf and
-- _off, the read buffer (the file's bytes from _pos on are _buf:sub(_off));
-- _ahead {req, pos, n}, a read in the pool (pos false: stale, its bytes
-- are not to be used); _wq and _wn, the writes gathered and their size,
-- _wpos, where the first goes; _wreq {req, data, off}, the write in the
-- pool; _req, a seek's fstat in the pool; _op, the name of the operation
-- holding the turn; _readable, _writable, what its mode allows.
--
-- At most one request on the descriptor is in the pool at a time (a new
-- one waits for the one before, settle), never forgotten there: so the
-- descriptor can be closed once that one is done (close_now hands the
-- close to it: fs.c's _then_close), never under a request still to run,
-- which would then read or write whatever file reuses the number.

local function buffered(f) return #f._buf - f._off + 1 end

local guard  -- guard(f): a new finalizer guard for f (see Guard below)

-- Forget what was read: the buffer, and the read in the pool, which is
-- kept (stale) until it is done.
local function drop_reads(f)
  f._buf, f._off = "", 1
  local a = f._ahead
  if a and (a.req:_result() == false) then a.pos = false else f._ahead = nil end
end

-- The operation holding the turn goes on after a wait in the pool only if
-- the File is still open (close_now, where nothing could wait, closed it
-- meanwhile).
local function alive(f)
  if f._fd == nil then error(("%s: the file is closed"):format(f._op), 0) end
end

-- Wait until no read of 'f' is in the pool, its answer dropped; cancelled,
-- it stays for the next wait.
local function settle(t, f)
  local a = f._ahead
  if not a then return end
  local ok, err = pcall(finish, t, "read", a.req, f)
  if not ok and errors.CancelledError:is(err) then error(err, 0) end
  f._ahead = nil
  alive(f)
end

local end_pos  -- (below flush, which it calls)

-- Add the next block of the file to the read buffer: false at the end.
-- A full read starts the next at once, so the pool reads on while the
-- program uses this block. Cancelled while waiting, nothing moves: the
-- read stays in _ahead for the next call.
-- A read or write the file's mode does not allow fails at once, as the
-- system would (EBADF), rather than at a later flush or close.
local function check_mode(allowed, what, only)
  if not allowed then
    throw(errors.oserror("EBADF", ("bad file descriptor: the file is open for %s only"):format(only),
      what))
  end
end

local function fill(t, f, want)
  check_mode(f._readable, "read", "writing")
  if f._at_end then
    f._pos, f._at_end = end_pos(t, f, "read"), nil
    drop_reads(f)
  end
  local pos = f._pos + buffered(f)
  local a, req = f._ahead
  local size = want > BLOCK and want or BLOCK
  if size > MAX_READ then size = MAX_READ end  -- read(1 << 40) reads on until the end
  if a and a.pos == pos then req, size = a.req, a.n
  else
    settle(t, f)
    req = start(t, "read", READ, f._fd, size, pos)
    f._ahead = {req = req, pos = pos, n = size}
  end
  local ok, data = pcall(finish, t, "read", req, f)
  if not ok then  -- failed, the read is over: forgotten (cancelled, it stays)
    if not errors.CancelledError:is(data) then f._ahead = nil end
    error(data, 0)
  end
  f._ahead = nil
  alive(f)
  if #data == size then
    f._ahead = {req = start(t, "read", READ, f._fd, BLOCK, pos + size), pos = pos + size, n = BLOCK}
  end
  if data == "" then return false end
  if f._off > #f._buf then f._buf = data else f._buf = f._buf:sub(f._off) .. data end
  f._off = 1
  return true
end

-- Take up to n buffered bytes.
local function take(f, n)
  local buf, off = f._buf, f._off
  local avail = #buf - off + 1
  if n > avail then n = avail end
  local s
  if off == 1 and n == #buf then s = buf; f._buf = ""
  else s = buf:sub(off, off + n - 1); f._off = off + n end
  if f._buf == "" then f._off = 1 end
  f._pos = f._pos + n
  return s
end

-- Wait for the write in the pool (a short write: its rest is written
-- next). Cancelled, the write stays for the next wait; failed, it is
-- forgotten and its error raised (once).
local function wait_write(t, f)
  local w = f._wreq
  while w do
    local ok, n = pcall(finish, t, "write", w.req, f)
    if not ok then
      if not errors.CancelledError:is(n) then f._wreq = nil end
      error(n, 0)
    end
    alive(f)
    if n < w.n then  -- rare: the rest goes next
      local rest, off = concat(w.data):sub(n + 1), w.off < 0 and -1 or w.off + n
      w = {req = start(t, "write", WRITE, f._fd, {rest}, off), data = {rest}, n = #rest, off = off}
      guard(f)
    else
      w = nil
    end
    f._wreq = w
  end
end

-- Send the gathered writes to the pool as one (the previous is done, and
-- no read is in the pool: settle); fs.c joins the list straight into its
-- request.
local function start_write(t, f)
  local list, n = f._wq, f._wn
  local off = f._append and -1 or f._wpos
  f._wq, f._wn, f._wpos = {}, 0, f._wpos + n
  f._wreq = {req = start(t, "write", WRITE, f._fd, list, off), data = list, n = n, off = off}
  guard(f)  -- newer than the request: see Guard
end

-- Everything written so far reaches the file.
local function flush(t, f)
  wait_write(t, f)
  if f._wn > 0 then
    settle(t, f)
    start_write(t, f)
    wait_write(t, f)
  end
end

-- The file's size, once the writes of 'f' are in, for 'fname'. After a
-- write in an append mode the position is the end (f._at_end): known
-- only to the file, so asked where it is needed (a read, seek("cur")).
end_pos = function(t, f, fname)
  flush(t, f)
  settle(t, f)
  f._req = start(t, fname, FSTAT, f._fd)
  local ok, st = pcall(finish, t, fname, f._req, f)
  f._req = nil
  if not ok then error(st, 0) end
  alive(f)
  return st.size
end


-- The pieces of an answer that spans blocks, taken from the buffer one
-- block at a time and joined once (joining the buffer with each new block
-- copied it all again: a 50 MB line took 8 s). A <close> variable: if the
-- operation ends without its answer (an error, a cancellation, its task's
-- coroutine closed by hand), the pieces go back and the position with them.
local Pieces = {__close = function(p)
  if p.given then return end
  local f, all = p.f, concat(p)
  f._buf, f._off, f._pos = all .. f._buf:sub(f._off), 1, f._pos - #all
end}

local read_impl = exclusive("read", function(f, t, n)
  if f._wn > 0 or f._wreq then flush(t, f) end
  if n == 0 then return "" end
  if n > 0 and buffered(f) >= n then return take(f, n) end
  local rest = n < 0  -- the rest of the file: a block at a time (not one read of MAX_READ)
  if rest then n = math.maxinteger end
  local parts <close> = setmetatable({f = f}, Pieces)
  local got = 0
  repeat
    if buffered(f) > 0 then
      local s = take(f, n - got)
      parts[#parts + 1], got = s, got + #s
    end
  until got >= n or not fill(t, f, (rest or n - got < BLOCK) and BLOCK or n - got)
  parts.given = true
  return parts[2] and concat(parts) or parts[1] or ""  -- one piece: no copy
end)

-- file:read([n]): up to n bytes at the position ("" at the end); nil, -1
-- or "a": the rest of the file; "l" and "L", as io's: the next line
-- (without or with its "\n"; nil at the end). read_line is below.
local read_line_impl
local LINE_FORMATS = {l = false, L = true, ["*l"] = false, ["*L"] = true}

function File:read(n)
  checkfile(self, "read")
  if n == nil or n == "a" or n == "*a" then return op(read_impl, self, -1) end
  local keep = LINE_FORMATS[n]
  if keep ~= nil then return op(read_line_impl, self, keep) end
  argcheck(mtype(n) == "integer", 2, "read", typeerror('integer or format "a", "l" or "L"', n))
  return op(read_impl, self, n)
end

local write_impl = exclusive("write", function(f, t, data)
  check_mode(f._writable, "write", "reading")
  if #data == 0 then return 0 end
  -- wait for the pool before anything changes: a cancelled write did nothing
  if f._wn + #data >= BLOCK then
    if f._wreq then wait_write(t, f) end
    settle(t, f)
  end
  if f._off <= #f._buf or f._ahead then drop_reads(f) end  -- they may be overwritten
  if f._wn == 0 then f._wpos = f._pos end
  local q = f._wq
  q[#q + 1] = data
  f._wn = f._wn + #data
  if f._append then f._at_end = true else f._pos = f._pos + #data end
  if f._wn >= BLOCK and not f._wreq then start_write(t, f) end
  return #data
end)

-- file:write(data): an awaitable resulting in #data. Writes are gathered
-- and go to the file in the background (flush, close and reads wait for
-- them); a failed write raises its error from the next write, flush or close.
function File:write(data)
  checkfile(self, "write")
  argcheck(type(data) == "string", 2, "write", typeerror("string", data))
  return op(write_impl, self, data)
end

-- file:flush(): an awaitable, done once everything written is in the file.
local flush_impl = exclusive("flush", function(f, t) flush(t, f) end)

function File:flush()
  checkfile(self, "flush")
  return op(flush_impl, self)
end

-- Take the line that ends at 'i' in the buffer (with its "\n" if 'keep').
local function take_line(f, i, keep)
  local buf, off = f._buf, f._off
  f._off, f._pos = i + 1, f._pos + (i - off + 1)
  return buf:sub(off, keep and i or i - 1)
end

-- for line in file:lines([fmt]) do ... end, inside a task. A line longer
-- than the buffer is gathered in pieces; each block is searched once.
local function read_line(f, t, keep)
  if f._wn > 0 or f._wreq then flush(t, f) end
  local i = f._buf:find("\n", f._off, true)
  if i then return take_line(f, i, keep) end
  local parts <close> = setmetatable({f = f}, Pieces)
  repeat
    if buffered(f) > 0 then parts[#parts + 1] = take(f, buffered(f)) end
    if not fill(t, f, BLOCK) then break end
    i = f._buf:find("\n", f._off, true)
    if i then parts[#parts + 1] = take_line(f, i, keep) end
  until i
  parts.given = true
  return parts[2] and concat(parts) or parts[1]
end
local next_line = exclusive("lines", read_line)
read_line_impl = exclusive("read", read_line)

function File:lines(fmt)
  checkfile(self, "lines")
  argcheck(fmt == nil or fmt == "l" or fmt == "L", 2, "lines", "format must be \"l\" or \"L\"")
  local keep = fmt == "L"
  return function() return next_line(self, keep) end
end

local seek_impl = exclusive("seek", function(f, t, whence, offset)
  flush(t, f)
  if whence == "cur" and f._at_end then whence = "end" end
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = f._pos
  else base = end_pos(t, f, "seek") end
  local pos = base + offset
  if pos < 0 then throw(errors.oserror("EINVAL", "invalid argument", "seek")) end
  f._pos, f._at_end = pos, nil
  drop_reads(f)
  return pos
end)

-- file:seek([whence], [offset]): an awaitable resulting in the new
-- position; whence "set", "cur" (default) or "end", as io's seek.
function File:seek(whence, offset)
  checkfile(self, "seek")
  whence = whence or "cur"
  argcheck(whence == "set" or whence == "cur" or whence == "end", 2, "seek",
    "whence must be \"set\", \"cur\" or \"end\"")
  argcheck(offset == nil or mtype(offset) == "integer", 3, "seek", typeerror("integer", offset))
  return op(seek_impl, self, whence, offset or 0)
end

-- Close 'f' where nothing can wait: what is gathered is written now, on
-- this thread, and the descriptor closed; if a write is still in the pool,
-- both happen when it ends, in that order (fs.c's _then_close), so an
-- appended tail never lands before it. Returns the error of a write that
-- failed, if one is known now.
-- What close_now writes: the gathered bytes, after the write in the pool
-- if there is one (then that request closes 'fd' once done: true). May
-- raise (out of memory): the caller closes 'fd' then.
local function write_rest(f, fd, w, r)
  local data, off = concat(f._wq), f._append and -1 or f._wpos
  if w and w.req:_then_close(fd, data, off) then return true end
  if r and r:_then_close(fd, data, off) then return true end  -- a read or fstat
  if w then  -- done in the pool, its answer not taken yet
    local n, name, msg = w.req:_result()
    if n == nil then return false, errors.oserror(name, msg, "write") end
    if n < w.n then  -- a short write: its rest goes first
      data = concat(w.data):sub(n + 1) .. data
      off = w.off < 0 and -1 or w.off + n
    end
  end
  if #data > 0 then
    local ok, name, msg = core.fs_now(WRITE, fd, data, off)
    if not ok then return false, errors.oserror(name, msg, "write") end
  end
  return false
end

-- Close 'f' where nothing can wait: what is gathered is written now, on
-- this thread, and the descriptor closed; if a write is still in the pool,
-- both happen when it ends, in that order (fs.c's _then_close), so an
-- appended tail never lands before it. The descriptor is closed whatever
-- fails. Returns the error of a write that failed, if one is known now.
local function close_now(f)
  local fd = f._fd
  if fd == nil then return end
  local w, r = f._wreq, f._ahead and f._ahead.req or f._req
  f._fd, f._ahead, f._wreq, f._guard = nil, nil, nil, nil  -- nils: nothing to allocate
  local ok, handed, err = pcall(write_rest, f, fd, w, r)
  f._wn = 0
  if not (ok and handed) then core.fs_now(CLOSE, fd) end
  if not ok then return handed end
  return err
end

-- Close 'fd' in the pool, or here if the request cannot even be made.
local function close_fd(t, f, fd)
  local ok, req = pcall(start, t, "close", CLOSE, fd)
  if not ok then
    core.fs_now(CLOSE, fd)
    error(req, 0)
  end
  finish(t, "close", req, f)
end

local close_impl = exclusive("close", function(f, t)
  local fd = f._fd
  if fd == nil then return end
  local ok, err = pcall(flush, t, f)
  if not ok and errors.CancelledError:is(err) then error(err, 0) end  -- still open: close again
  if f._fd == nil then  -- closed by close_now meanwhile
    if not ok then error(err, 0) end
    return
  end
  local ok2, err2 = pcall(settle, t, f)  -- no read left in the pool on the descriptor
  if not ok2 then
    if errors.CancelledError:is(err2) then error(err2, 0) end
    if f._fd == nil then return end
  end
  f._fd, f._ahead, f._wreq, f._guard, f._wn = nil, nil, nil, nil, 0
  close_fd(t, f, fd)
  if not ok then error(err, 0) end
end)

-- file:close(): an awaitable: flushes, then closes (closing twice is
-- fine). Another task's operation on the file finishes first.
function File:close()
  if getmetatable(self) ~= File then checkfile(self, "close") end
  return op(close_impl, self)
end

-- As a <close> variable: inside the File's task the close is awaited, as
-- file:close() is (so errors are raised, and a tail appended after a write
-- still in the pool lands after it). Where nothing can wait (the variable
-- of a task that failed, a coroutine of the program's own) the File is
-- closed at once (close_now).
function File:__close()
  if self._fd == nil then return end
  local t = rt.current or rt.running_task()
  if t and t._co == coroutine.running() and coroutine.isyieldable() then
    local ok, err = pcall(task.await, self:close())
    if ok then return end
    local err2 = close_now(self)  -- cancelled meanwhile: still closed on scope exit
    error(err2 or err, 0)
  end
  local err = close_now(self)
  if err then error(err, 0) end
end

-- A File that is collected open is flushed and closed (as Lua's io and
-- Python close theirs), and reported to its loop's exception handler as
-- "unclosed file". The finalizer is a guard object's, renewed with each
-- write handed to the pool: finalizers run newest first, so the guard's
-- runs while that write's request can still take the close (_then_close).
local Guard = {__gc = function(g)
  local f = g[1]
  if f._guard ~= g or f._fd == nil then return end
  local _, err = pcall(close_now, f)  -- an error here must not vanish in the collector
  local loop = f._loop
  local ctx = {message = ("unclosed file %s"):format(f._path), exception = err}
  if loop and loop._core:is_running() then  -- report on the loop, not inside the collector
    loop._core:call_soon(function() loop:call_exception_handler(ctx) end)
  elseif loop and not loop._core:is_closed() then
    pcall(loop.call_exception_handler, loop, ctx)
  else
    pcall(rt.default_exception_handler, nil, ctx)
  end
end}

guard = function(f)
  f._guard = setmetatable({f}, Guard)
end

function File:__tostring()
  return ("<asyncio.File %s>"):format(self._fd and ("fd " .. self._fd) or "closed")
end

-- Out of descriptors: Files the program dropped may still hold some until
-- they are collected (their finalizers close them): collect, try again once.
local function open_fd(path, mode)
  local what = ("open %s"):format(path)
  local ok, fd = pcall(call, "open_file", what, OPEN, path, mode)
  if ok then return fd end
  if type(fd) == "table" and (fd.errno == "EMFILE" or fd.errno == "ENFILE") then
    collectgarbage()
    collectgarbage()
    return call("open_file", what, OPEN, path, mode)
  end
  error(fd, 0)
end

-- The File is made whole before the open: once the descriptor exists,
-- nothing may fail (a memory error) and leave it with no File to close it.
local function open_impl(path, mode)
  local plus = mode:find("+", 1, true) ~= nil
  local f = setmetatable({_fd = false, _pos = 0, _buf = "", _off = 1, _wq = {}, _wn = 0,
                          _wpos = 0, _append = mode:sub(1, 1) == "a", _path = path,
                          _readable = plus or mode:sub(1, 1) == "r",
                          _writable = plus or mode:sub(1, 1) ~= "r",
                          _turn = {busy = false}, _loop = rt.loop, _guard = false,
                          _ahead = false, _wreq = false, _req = false, _op = false}, File)
  local g = setmetatable({f}, Guard)
  f._fd = open_fd(path, mode)
  f._guard = g
  return f
end

-- The modes open_file takes: io.open's ("r", "w", "a", with "+"), with a
-- "b" that means nothing here, before or after the "+" (C's and Python's
-- "rb+" as well as "r+b").
local MODES = {}
for _, m in ipairs({"r", "w", "a"}) do
  for _, form in ipairs({"%s", "%s+", "%sb", "%s+b", "%sb+"}) do MODES[form:format(m)] = true end
end

-- open_file(path, [mode]) -> awaitable: a File.
function M.open_file(path, mode)
  argcheck(type(path) == "string", 1, "open_file", typeerror("string", path))
  checknul(path, 1, "open_file")
  mode = mode or "r"
  argcheck(MODES[mode], 2, "open_file", "invalid mode")
  return op(open_impl, path, mode)
end

-- asyncio.fs: each function returns an awaitable.
local fs = {}
M.fs = fs

local function path_op(name, code, result)
  fs[name] = function(path, ...)
    argcheck(type(path) == "string", 1, name, typeerror("string", path))
    checknul(path, 1, name)
    local extra = {...}
    local function impl()
      local r = call(name, ("%s %s"):format(name, path), code, path, table.unpack(extra))
      if result then return result(r) end
    end
    streams.name_ops{[impl] = ("asyncio.fs.%s(%q)"):format(name, path)}
    return op(impl)
  end
end

path_op("stat", STAT, function(s) return s end)
path_op("rmdir", RMDIR)
path_op("unlink", UNLINK)
path_op("scandir", SCANDIR, function(list) return list end)
path_op("readdir", SCANDIR, function(list)
  local names = {}
  for i, e in ipairs(list) do names[i] = e.name end
  table.sort(names)
  return names
end)

-- fs.mkdir(path, [mode]) (mode default 0777, less the umask)
function fs.mkdir(path, mode)
  argcheck(type(path) == "string", 1, "mkdir", typeerror("string", path))
  checknul(path, 1, "mkdir")
  argcheck(mode == nil or mtype(mode) == "integer", 2, "mkdir", typeerror("integer", mode))
  argcheck(mode == nil or (mode >= 0 and mode <= 4095), 2, "mkdir", "mode out of range (0 to 07777)")
  local function impl() call("mkdir", "mkdir " .. path, MKDIR, path, mode or 511) end
  streams.name_ops{[impl] = ("asyncio.fs.mkdir(%q)"):format(path)}
  return op(impl)
end

-- fs.rename(from, to)
function fs.rename(from, to)
  argcheck(type(from) == "string", 1, "rename", typeerror("string", from))
  argcheck(type(to) == "string", 2, "rename", typeerror("string", to))
  checknul(from, 1, "rename")
  checknul(to, 2, "rename")
  local function impl() call("rename", ("rename %s"):format(from), RENAME, from, to) end
  streams.name_ops{[impl] = ("asyncio.fs.rename(%q, %q)"):format(from, to)}
  return op(impl)
end

streams.name_ops{[read_impl] = "file:read(...)", [read_line_impl] = "file:read(...)",
  [write_impl] = "file:write(...)",
  [flush_impl] = "file:flush()", [seek_impl] = "file:seek(...)", [close_impl] = "file:close()",
  [open_impl] = "asyncio.open_file(...)"}

return M
