-- files.lua: files and the file system on libuv's thread pool (fs.c).
-- A File keeps its own position and reads and writes at it (pread,
-- pwrite), advancing it only when an answer is taken: a read cancelled
-- while in the pool leaves the position where the next read expects it.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local rt = require "asyncio.runtime"
local streams = require "asyncio.streams"
local task = require "asyncio.task"
local util = require "asyncio.util"

local argcheck, typeerror = util.argcheck, util.typeerror
local setmetatable, error, type, mtype, concat = setmetatable, error, type, math.type, table.concat
local op = streams.op

local OPEN, CLOSE, READ, WRITE, STAT, FSTAT, MKDIR, RMDIR, UNLINK, RENAME, SCANDIR =
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

local M = {}

-- Start fs operation 'code' in the pool: the request.
local function start(t, what, code, ...)
  local req, name, msg = core.fs(t._loop._core, code, ...)
  if not req then error(errors.oserror(name, msg, what), 0) end
  return req
end

-- Wait for request 'req': its answer, or its OSError raised.
local finish = streams.await_request

-- Run fs operation 'code' in the pool; its answer, or its OSError raised.
local function call(fname, what, code, ...)
  local t = task.current(fname)
  return finish(t, what, start(t, what, code, ...))
end

local File = {__name = "asyncio.File"}
File.__index = File
M.File = File

local function checkfile(f, fname)
  util.checkself(File, f, fname, 4)
  if f._fd == nil then error(("%s: the file is closed"):format(fname), 3) end
end

-- Reads ask the pool for BLOCK bytes at a time and are served from that
-- buffer; writes are gathered up to BLOCK and go to the pool as one, while
-- the program goes on (one write in the pool at a time). A copy loop of
-- 64 KiB reads and writes so makes 32 times fewer trips to the pool.
local BLOCK = 1 << 20

-- A File's fields: _fd; _pos, the position the program sees; _buf and
-- _off, the read buffer (the file's bytes from _pos on are _buf:sub(_off));
-- _ahead {req, pos, n}, a read in the pool; _wq and _wn, the writes
-- gathered and their size, _wpos, where the first goes; _wreq {req,
-- data, off}, the write in the pool.

local function buffered(f) return #f._buf - f._off + 1 end

local function drop_reads(f)
  f._buf, f._off, f._ahead = "", 1, nil
end

-- Add the next block of the file to the read buffer: false at the end.
-- A full read starts the next at once, so the pool reads on while the
-- program uses this block. Cancelled while waiting, nothing moves: the
-- read stays in _ahead for the next call.
local function fill(t, f, want)
  local pos = f._pos + buffered(f)
  local a, req = f._ahead
  local size = want > BLOCK and want or BLOCK
  if a and a.pos == pos then req, size = a.req, a.n
  else
    req = start(t, "read", READ, f._fd, size, pos)
    f._ahead = {req = req, pos = pos, n = size}
  end
  local data = finish(t, "read", req)
  f._ahead = nil
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
    local ok, n = pcall(finish, t, "write", w.req)
    if not ok then
      if not errors.CancelledError:is(n) then f._wreq = nil end
      error(n, 0)
    end
    if n < w.n then  -- rare: the rest goes next
      local rest, off = concat(w.data):sub(n + 1), w.off < 0 and -1 or w.off + n
      w = {req = start(t, "write", WRITE, f._fd, {rest}, off), data = {rest}, n = #rest, off = off}
    else
      w = nil
    end
    f._wreq = w
  end
end

-- Send the gathered writes to the pool as one (the previous is done);
-- fs.c joins the list straight into its request.
local function start_write(t, f)
  local list, n = f._wq, f._wn
  local off = f._append and -1 or f._wpos
  f._wq, f._wn, f._wpos = {}, 0, f._wpos + n
  f._wreq = {req = start(t, "write", WRITE, f._fd, list, off), data = list, n = n, off = off}
end

-- Everything written so far reaches the file.
local function flush(t, f)
  wait_write(t, f)
  if f._wn > 0 then
    start_write(t, f)
    wait_write(t, f)
  end
end

local function read_impl(f, n)
  local t = task.current("read")
  if f._wn > 0 or f._wreq then flush(t, f) end
  if n == 0 then return "" end
  if n > 0 then
    while buffered(f) < n and fill(t, f, n - buffered(f)) do end
    return take(f, n)
  end
  -- the rest of the file; cancelled, what was taken goes back
  local parts = {}
  local ok, err = pcall(function()
    repeat parts[#parts + 1] = take(f, buffered(f)) until not fill(t, f, BLOCK)
  end)
  local all = concat(parts)
  if not ok then
    f._buf, f._off, f._pos = all .. f._buf:sub(f._off), 1, f._pos - #all
    error(err, 0)
  end
  return all
end

-- file:read([n]): up to n bytes at the position ("" at the end); nil or -1:
-- the rest of the file.
function File:read(n)
  checkfile(self, "read")
  argcheck(n == nil or mtype(n) == "integer", 2, "read", typeerror("integer", n))
  return op(read_impl, self, n or -1)
end

local function write_impl(f, data)
  local t = task.current("write")
  if #data == 0 then return 0 end
  -- wait for the pool before anything changes: a cancelled write did nothing
  if f._wreq and f._wn + #data >= BLOCK then wait_write(t, f) end
  if f._off <= #f._buf or f._ahead then drop_reads(f) end  -- they may be overwritten
  if f._wn == 0 then f._wpos = f._pos end
  local q = f._wq
  q[#q + 1] = data
  f._wn = f._wn + #data
  if not f._append then f._pos = f._pos + #data end
  if f._wn >= BLOCK and not f._wreq then start_write(t, f) end
  return #data
end

-- file:write(data): an awaitable resulting in #data. Writes are gathered
-- and go to the file in the background (flush, close and reads wait for
-- them); a failed write raises its error from the next write, flush or close.
function File:write(data)
  checkfile(self, "write")
  argcheck(type(data) == "string", 2, "write", typeerror("string", data))
  return op(write_impl, self, data)
end

-- file:flush(): an awaitable, done once everything written is in the file.
function File:flush()
  checkfile(self, "flush")
  return op(function(f) flush(task.current("flush"), f) end, self)
end

-- for line in file:lines([fmt]) do ... end, inside a task.
function File:lines(fmt)
  checkfile(self, "lines")
  argcheck(fmt == nil or fmt == "l" or fmt == "L", 2, "lines", "format must be \"l\" or \"L\"")
  local keep = fmt == "L"
  return function()
    local t = task.current("lines")
    if self._wn > 0 or self._wreq then flush(t, self) end
    while true do
      local buf, off = self._buf, self._off
      local i = buf:find("\n", off, true)
      if i then
        self._off, self._pos = i + 1, self._pos + (i - off + 1)
        return buf:sub(off, keep and i or i - 1)
      end
      if not fill(t, self, BLOCK) then
        if buffered(self) == 0 then return nil end
        return take(self, buffered(self))
      end
    end
  end
end

local function seek_impl(f, whence, offset)
  local t = task.current("seek")
  flush(t, f)
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = f._pos
  else base = call("seek", "seek", FSTAT, f._fd).size end
  local pos = base + offset
  if pos < 0 then error(errors.oserror("EINVAL", "invalid argument", "seek"), 0) end
  f._pos = pos
  drop_reads(f)
  return pos
end

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

local function close_impl(f)
  local fd = f._fd
  if fd == nil then return end
  local ok, err = pcall(flush, task.current("close"), f)
  if not ok and errors.CancelledError:is(err) then error(err, 0) end  -- still open: close again
  f._fd, f._ahead, f._wq, f._wn, f._wreq = nil, nil, {}, 0, nil
  call("close", "close", CLOSE, fd)
  if not ok then error(err, 0) end
end

-- file:close(): an awaitable: flushes, then closes (closing twice is
-- fine). As a <close> variable it cannot wait: what is gathered is
-- written at once, and the descriptor closed once the pool is done with it.
function File:close()
  if getmetatable(self) ~= File then checkfile(self, "close") end
  return op(close_impl, self)
end

function File:__close()
  local fd = self._fd
  if fd == nil then return end
  local loop = rt.loop
  local lc = loop and not loop._core:is_closed() and loop._core
  local data, off = concat(self._wq, "", 1, #self._wq), self._append and -1 or self._wpos
  local w = self._wreq
  self._fd, self._ahead, self._wq, self._wn, self._wreq = nil, nil, {}, 0, nil
  if not lc then return end
  local err
  while #data > 0 do
    local n, name, msg = core.fs_now(lc, WRITE, fd, data, off)
    if not n then err = errors.oserror(name, msg, "write"); break end
    data, off = data:sub(n + 1), off < 0 and -1 or off + n
  end
  if not (w and w.req:_close_after(fd)) then core.fs(lc, CLOSE, fd) end
  if err then error(err, 0) end
end

function File:__tostring()
  return ("<asyncio.File %s>"):format(self._fd and ("fd " .. self._fd) or "closed")
end

local function open_impl(path, mode)
  local fd = call("open_file", ("open %s"):format(path), OPEN, path, mode)
  return setmetatable({_fd = fd, _pos = 0, _buf = "", _off = 1, _wq = {}, _wn = 0, _wpos = 0,
                       _append = mode:sub(1, 1) == "a", _path = path}, File)
end

-- open_file(path, [mode]) -> awaitable: a File. mode as io.open's ("r"
-- default, "w", "a", with "+"; "b" is accepted and means nothing here).
function M.open_file(path, mode)
  argcheck(type(path) == "string", 1, "open_file", typeerror("string", path))
  mode = mode or "r"
  argcheck(type(mode) == "string" and mode:match("^[rwa]%+?b?%+?$") ~= nil, 2, "open_file",
    "invalid mode")
  return op(open_impl, path, mode)
end

-- asyncio.fs: each function returns an awaitable.
local fs = {}
M.fs = fs

local function path_op(name, code, result)
  fs[name] = function(path, ...)
    argcheck(type(path) == "string", 1, name, typeerror("string", path))
    local extra = {...}
    return op(function()
      local r = call(name, ("%s %s"):format(name, path), code, path, table.unpack(extra))
      if result then return result(r) end
    end)
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
  argcheck(mode == nil or mtype(mode) == "integer", 2, "mkdir", typeerror("integer", mode))
  return op(function() call("mkdir", "mkdir " .. path, MKDIR, path, mode or 511) end)
end

-- fs.rename(from, to)
function fs.rename(from, to)
  argcheck(type(from) == "string", 1, "rename", typeerror("string", from))
  argcheck(type(to) == "string", 2, "rename", typeerror("string", to))
  return op(function() call("rename", ("rename %s"):format(from), RENAME, from, to) end)
end

return M
