-- util.lua: small helpers shared by the Lua modules.

local util = {}
local tonumber, type = tonumber, type

-- The library's own directory, as its files' debug sources begin.
local LIBSOURCE = "@" .. (debug.getinfo(1, "S").source:match("^@(.*)util%.lua$") or "\0")

-- The stack level (as error and debug.getinfo count from the function that
-- calls this one: 1 is that function) of the first frame that is neither
-- the library's nor a C function's: the program's own line.
local function program_level()
  local level = 2
  while true do
    local info = debug.getinfo(level + 1, "S")
    if info == nil then return level end
    if info.what ~= "C" and info.source:sub(1, #LIBSOURCE) ~= LIBSOURCE then return level end
    level = level + 1
  end
end

-- Give asyncio error object 'err' (a table of errors.lua) the place of the
-- program's call that it comes out of ('where', "file:line:", which its
-- tostring shows, as Lua's own errors show theirs) and the traceback of
-- where the library raised it ('traceback'). Once: an error awaited again
-- keeps its first place. Returns 'err'. With 'plain' the traceback names
-- no functions: debug.traceback looks each name up in package.loaded (70
-- us a time), and an outcome programs poll for (QueueEmpty, QueueFull)
-- must cost a few.
local function plain_traceback(level)
  local parts, n = {"stack traceback:"}, 1
  while true do
    local info = debug.getinfo(level, "Sl")
    if info == nil then return table.concat(parts) end
    n = n + 1
    parts[n] = info.what == "C" and "\n\t[C]: in ?" or
      ("\n\t%s:%d: in function <%s:%d>"):format(info.short_src, info.currentline, info.short_src,
        info.linedefined)
    level = level + 1
  end
end

function util.stamp(err, plain)
  if type(err) == "table" and rawget(err, "where") == nil and getmetatable(err) ~= nil then
    local info = debug.getinfo(program_level(), "Sl")
    err.where = info and info.currentline > 0 and ("%s:%d:"):format(info.short_src,
      info.currentline) or false
    err.traceback = plain and plain_traceback(3) or debug.traceback("", 2):sub(2)
  end
  return err
end

-- "file:line" of the program's line that called into the library, or nil.
function util.where()
  local info = debug.getinfo(program_level(), "Sl")
  if info and info.currentline > 0 then return ("%s:%d"):format(info.short_src, info.currentline) end
end

-- Raise asyncio error object 'err' from the library, stamped (see stamp).
function util.throw(err)
  error(util.stamp(err), 0)
end

-- Raise 'msg' at the program's own line that called into the library,
-- however deep inside the library the mistake is found: a string gets the
-- position in its text, an error object is stamped.
function util.raise(msg)
  if type(msg) == "table" then error(util.stamp(msg), 0) end
  error(msg, program_level())
end

-- Raise "bad argument #n to 'fname' (msg)" at the program's line.
function util.argcheck(cond, n, fname, msg)
  if not cond then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), program_level())
  end
end

-- Raise "bad argument #1 to 'fname' (<cls.__name> expected, got ...)" unless
-- 'self' is an instance of class 'cls' (its metatable), at the program's line.
-- Refuse string 's' (if not nil) with a NUL inside, where C takes a C
-- string (a path, a host, a name): cut short there, it would name
-- something else. 'what' names an option ("cafile"), or nil for the
-- argument itself.
function util.checknul(s, n, fname, what)
  if type(s) == "string" and s:find("\0", 1, true) then
    error(("bad argument #%d to '%s' (%sembedded null byte)"):format(n, fname,
      what and what .. " has an " or ""), program_level())
  end
end

function util.checkself(cls, self, fname)
  if getmetatable(self) ~= cls then
    error(("bad argument #1 to '%s' (%s)"):format(fname, util.typeerror(cls.__name, self)),
      program_level())
  end
end

-- The type of 'value' in Lua's words: its metatable's __name, or type().
function util.typename(value)
  local mt = getmetatable(value)
  return type(mt) == "table" and rawget(mt, "__name") or type(value)
end

-- Check argument 'n' of 'fname', an options table (nil allowed): a table
-- whose keys are all in the set 'known' ({name = true}). A typo ('sll' for
-- 'ssl') must not pass in silence. Returns the table, or {} for nil.
function util.checkopts(opts, known, n, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname,
      util.typeerror("table", opts)), program_level())
  end
  for k in pairs(opts) do
    if not known[k] then
      local what = type(k) == "string" and ("unknown option '%s'"):format(k) or
        ("options table expected, got a list (key %s)"):format(tostring(k))
      error(("bad argument #%d to '%s' (%s)"):format(n, fname, what), program_level())
    end
  end
  return opts
end

-- "number expected, got string" in Lua's words (with __name for userdata).
function util.typeerror(expected, value)
  return ("%s expected, got %s"):format(expected, util.typename(value))
end

-- Check that argument 'n' of 'fname' is a delay in seconds (nil allowed if 'opt').
function util.checkdelay(d, n, fname, opt)
  if d ~= nil and d == tonumber(d) then return d end  -- a number, not NaN: no type()
  if d == nil and opt then return nil end
  if type(d) ~= "number" then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname,
      util.typeerror("number", d)), program_level())
  end
  if d ~= d then
    error(("bad argument #%d to '%s' (%s is NaN)"):format(n, fname,
      fname == "call_at" and "time" or "delay"), program_level())
  end
  return d
end

-- tostring(v) for messages, reports and tracebacks, which must never
-- fail: an error value whose __tostring raises (or returns no string) is
-- described instead, so formatting an error cannot lose it.
function util.describe(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("(a %s whose __tostring failed)"):format(type(v))
end

util.pack = table.pack
util.unpack = table.unpack

-- Signal 'sig' ("SIGUSR1", "USR1" or a number) as argument #1 of 'fname':
-- its number and name, or an error naming the function.
function util.checksignal(sig, fname)
  util.checknul(sig, 1, fname)
  local num, name = require("asyncio.core").signal_number(sig)
  if num == nil then
    local t = type(sig)
    error(("bad argument #1 to '%s' (%s)"):format(fname,
      t == "string" and ("unknown signal '%s'"):format(sig) or
      t == "number" and ("unknown signal %s"):format(sig) or
      util.typeerror("signal name or number", sig)), program_level())
  end
  return num, name
end

return util
