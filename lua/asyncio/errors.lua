-- errors.lua: asyncio's error classes. An error is a table with 'name' and
-- 'message'; tostring gives "Name: message"; Class:is(err) tests membership,
-- subclasses included. Context (traceback, task) goes in fields beside.

local describe = require("asyncio.util").describe

local errors = {}

-- "Name: message", after the place of the program's call the library
-- raised it from, when it knows one ("app.lua:12: TimeoutError: ...").
local function message_of(e)
  local where = rawget(e, "where")
  local text = (e.message == nil or e.message == "") and e.name or e.name .. ": " .. describe(e.message)
  if where then return where .. " " .. text end
  return text
end

local function class(name, parent, default)
  local cls = {name = name, _parent = parent, _default = default}
  cls.__index = cls
  cls.__tostring = message_of
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, message, fields)
      local e = fields or {}
      e.name = name
      e.message = message
      if e.message == nil then e.message = c._default end
      return setmetatable(e, c)
    end,
    __tostring = function() return "asyncio." .. name end,
  })
end

errors.Error = class("Error", nil)
local Error = errors.Error

-- The metatable of 'x' itself (getmetatable would answer a __metatable
-- field instead: any error value must do, a locked one too).
local rawmetatable = debug.getmetatable

-- Class:is(err): is 'err' an instance of this class or of a subclass?
function Error.is(cls, err)
  if type(err) ~= "table" then return false end
  local mt = rawmetatable(err)
  while mt ~= nil do
    if mt == cls then return true end
    mt = rawget(mt, "_parent")
  end
  return false
end
errors.CancelledError = class("CancelledError", Error, "")
errors.TimeoutError = class("TimeoutError", Error, "the operation timed out")
errors.InvalidStateError = class("InvalidStateError", Error, "invalid state")
errors.QueueEmpty = class("QueueEmpty", Error, "queue is empty")
errors.QueueFull = class("QueueFull", Error, "queue is full")
errors.QueueShutDown = class("QueueShutDown", Error, "queue is shut down")
errors.BrokenBarrierError = class("BrokenBarrierError", Error, "barrier is broken")
errors.KeyboardInterrupt = class("KeyboardInterrupt", Error, "interrupted")

-- ExceptionGroup(message, errors_list): 'errors' holds every failure, and
-- errors.n their count (an error that is nil leaves a hole in the list).
errors.ExceptionGroup = class("ExceptionGroup", Error, "errors in task group")
local egroup_call = getmetatable(errors.ExceptionGroup).__call
getmetatable(errors.ExceptionGroup).__call = function(c, message, list)
  list = list or {}
  if list.n == nil then list.n = #list end
  local e = egroup_call(c, message, {errors = list})
  return e
end
function errors.ExceptionGroup.__tostring(e)
  local parts = {}
  for i = 1, e.errors.n or #e.errors do parts[i] = describe(e.errors[i]) end
  local where = rawget(e, "where")
  return ("%s%s: %s (%d sub-error%s: %s)"):format(where and where .. " " or "", e.name,
    describe(e.message), #parts, #parts == 1 and "" or "s", table.concat(parts, "; "))
end

-- An error raised by a function run on a worker thread (threads.lua):
-- 'message' is its text, 'value' the error value itself if it could be
-- copied back, 'worker_traceback' where it was raised in the worker.
errors.ThreadError = class("ThreadError", Error, "error in a worker thread")
function errors.ThreadError.__tostring(e)
  local tb = rawget(e, "worker_traceback")
  if tb == nil or tb == "" then return message_of(e) end
  return ("%s\nin the worker thread: %s"):format(message_of(e), tb)
end

-- OSError and its kinds: 'errno' is libuv's name ("ECONNREFUSED"),
-- 'strerror' its message. errors.oserror picks the class from the name.
errors.OSError = class("OSError", Error, "operating system error")
errors.ConnectionError = class("ConnectionError", errors.OSError, "connection error")
errors.ConnectionRefusedError = class("ConnectionRefusedError", errors.ConnectionError,
  "connection refused")
errors.ConnectionResetError = class("ConnectionResetError", errors.ConnectionError,
  "connection reset by peer")
errors.ConnectionAbortedError = class("ConnectionAbortedError", errors.ConnectionError,
  "connection aborted")
errors.BrokenPipeError = class("BrokenPipeError", errors.ConnectionError, "broken pipe")
errors.FileNotFoundError = class("FileNotFoundError", errors.OSError, "no such file or directory")
errors.PermissionError = class("PermissionError", errors.OSError, "permission denied")
errors.gaierror = class("gaierror", errors.OSError, "name resolution failed")
-- TLS failures: 'errno' is "ESSL", 'reason' OpenSSL's reason.
errors.SSLError = class("SSLError", errors.OSError, "TLS error")
errors.SSLCertVerificationError = class("SSLCertVerificationError", errors.SSLError,
  "certificate verify failed")

local KINDS = {
  ECONNREFUSED = errors.ConnectionRefusedError,
  ECONNRESET = errors.ConnectionResetError,
  ECONNABORTED = errors.ConnectionAbortedError,
  EPIPE = errors.BrokenPipeError,
  ENOENT = errors.FileNotFoundError,
  EACCES = errors.PermissionError,
  EPERM = errors.PermissionError,
}

-- An OSError of the right kind for libuv error 'name' with message
-- 'strerror'; 'what' says what failed ("connect to 127.0.0.1:1").
function errors.oserror(name, strerror, what)
  local cls = KINDS[name] or (name:sub(1, 4) == "EAI_" and errors.gaierror) or errors.OSError
  local msg = strerror or name
  if what then msg = ("%s (%s)"):format(msg, what) end
  if name == "ESSL" then
    cls = strerror and strerror:find("^certificate verify failed") and
      errors.SSLCertVerificationError or errors.SSLError
    return cls(msg, {errno = name, strerror = strerror, reason = strerror})
  end
  return cls(msg, {errno = name, strerror = strerror})
end

-- readexactly/readuntil met EOF first: 'partial' is what was read,
-- 'expected' the count asked for (nil for readuntil).
errors.IncompleteReadError = class("IncompleteReadError", Error, "")
local incomplete_call = getmetatable(errors.IncompleteReadError).__call
getmetatable(errors.IncompleteReadError).__call = function(c, partial, expected)
  local msg = ("%d bytes read on a total of %s expected bytes"):format(#partial,
    expected and tostring(expected) or "undefined")
  return incomplete_call(c, msg, {partial = partial, expected = expected})
end

-- The separator was not found within the reader's limit: 'consumed'
-- bytes are buffered still.
errors.LimitOverrunError = class("LimitOverrunError", Error, "")
local overrun_call = getmetatable(errors.LimitOverrunError).__call
getmetatable(errors.LimitOverrunError).__call = function(c, message, consumed)
  return overrun_call(c, message, {consumed = consumed})
end

return errors
