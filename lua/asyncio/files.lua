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
local setmetatable, error, type, mtype = setmetatable, error, type, math.type
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
  if getmetatable(f) ~= File then
    error(("bad argument #1 to '%s' (%s)"):format(fname, typeerror("asyncio.File", f)), 3)
  end
  if f._fd == nil then error(("%s: the file is closed"):format(fname), 3) end
end

local CHUNK = 65536

-- Take up to n bytes from the read-ahead buffer (lines fills it).
local function from_buffer(f, n)
  local buf = f._buf
  if buf == "" then return nil end
  if n < 0 or n >= #buf then f._buf = ""; return buf end
  f._buf = buf:sub(n + 1)
  return buf:sub(1, n)
end

-- A read of n bytes at the position, from the read-ahead if it matches.
-- A full read starts the next one at once (read-ahead), so that a copy
-- loop's write runs while the pool already reads on: the position moves
-- only when an answer is taken, whatever is in flight.
local function read_at(f, n)
  local t = task.current("read")
  local ahead, req = f._ahead
  if ahead and ahead.pos == f._pos and ahead.n == n then req = ahead.req
  else req = start(t, "read", READ, f._fd, n, f._pos) end
  f._ahead = {req = req, pos = f._pos, n = n}  -- what a cancelled wait leaves
  local data = finish(t, "read", req)
  f._pos = f._pos + #data
  f._ahead = nil
  if #data == n then
    f._ahead = {req = start(t, "read", READ, f._fd, n, f._pos), pos = f._pos, n = n}
  end
  return data
end

local function read_impl(f, n)
  local fd = f._fd
  if n == 0 then return "" end
  local got = from_buffer(f, n)
  if got then return got end
  if n > 0 then return read_at(f, n) end
  local parts = {}
  while true do
    local data = call("read", "read", READ, fd, CHUNK, f._pos)
    if data == "" then break end
    f._pos = f._pos + #data
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- file:read([n]): up to n bytes at the position ("" at the end); nil or -1:
-- the rest of the file.
function File:read(n)
  checkfile(self, "read")
  argcheck(n == nil or mtype(n) == "integer", 2, "read", typeerror("integer", n))
  return op(read_impl, self, n or -1)
end

local function write_impl(f, data)
  f._ahead = nil  -- what it read may be overwritten
  local done = 0
  while done < #data do
    local chunk = done == 0 and data or data:sub(done + 1)
    local n = call("write", "write", WRITE, f._fd, chunk, f._append and -1 or f._pos)
    done = done + n
    if not f._append then f._pos = f._pos + n end
  end
  return #data
end

-- file:write(data): an awaitable: writes all of 'data' at the position.
function File:write(data)
  checkfile(self, "write")
  argcheck(type(data) == "string", 2, "write", typeerror("string", data))
  return op(write_impl, self, data)
end

-- for line in file:lines([fmt]) do ... end, inside a task.
function File:lines(fmt)
  checkfile(self, "lines")
  argcheck(fmt == nil or fmt == "l" or fmt == "L", 2, "lines", "format must be \"l\" or \"L\"")
  local keep = fmt == "L"
  return function()
    while true do
      local i = self._buf:find("\n", 1, true)
      if i then
        local line = self._buf:sub(1, keep and i or i - 1)
        self._buf = self._buf:sub(i + 1)
        return line
      end
      local data = call("lines", "read", READ, self._fd, CHUNK, self._pos)
      if data == "" then
        local rest = self._buf
        self._buf = ""
        if rest == "" then return nil end
        return rest
      end
      self._pos = self._pos + #data
      self._buf = self._buf .. data
    end
  end
end

local function seek_impl(f, whence, offset)
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = f._pos - #f._buf
  else base = call("seek", "seek", FSTAT, f._fd).size end
  local pos = base + offset
  if pos < 0 then error(errors.oserror("EINVAL", "invalid argument", "seek"), 0) end
  f._pos, f._buf, f._ahead = pos, "", nil
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
  f._fd, f._ahead = nil, nil
  call("close", "close", CLOSE, fd)
end

-- file:close(): an awaitable (closing twice is fine). As a <close>
-- variable the descriptor is closed at once, without waiting.
function File:close()
  if getmetatable(self) ~= File then checkfile(self, "close") end
  return op(close_impl, self)
end

function File:__close()
  local fd = self._fd
  if fd == nil then return end
  self._fd, self._ahead = nil, nil
  local loop = rt.loop
  if loop and not loop._core:is_closed() then core.fs(loop._core, CLOSE, fd) end
end

function File:__tostring()
  return ("<asyncio.File %s>"):format(self._fd and ("fd " .. self._fd) or "closed")
end

local function open_impl(path, mode)
  local fd = call("open_file", ("open %s"):format(path), OPEN, path, mode)
  return setmetatable({_fd = fd, _pos = 0, _buf = "", _append = mode:sub(1, 1) == "a",
                       _path = path}, File)
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
