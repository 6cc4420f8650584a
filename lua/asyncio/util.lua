-- util.lua: small helpers shared by the Lua modules.

local util = {}
local tonumber, type = tonumber, type

-- Raise "bad argument #n to 'fname' (msg)" at the caller of the caller.
function util.argcheck(cond, n, fname, msg)
  if not cond then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
  end
end

-- Raise "bad argument #1 to 'fname' (<cls.__name> expected, got ...)" unless
-- 'self' is an instance of class 'cls' (its metatable), at 'level' (default
-- 3: the caller of the method that checks).
function util.checkself(cls, self, fname, level)
  if getmetatable(self) ~= cls then
    error(("bad argument #1 to '%s' (%s)"):format(fname, util.typeerror(cls.__name, self)),
      level or 3)
  end
end

-- "number expected, got string" in Lua's words (with __name for userdata).
function util.typeerror(expected, value)
  local mt = getmetatable(value)
  local got = type(mt) == "table" and rawget(mt, "__name") or type(value)
  return ("%s expected, got %s"):format(expected, got)
end

-- Check that argument 'n' of 'fname' is a delay in seconds (nil allowed if 'opt').
function util.checkdelay(d, n, fname, opt)
  if d ~= nil and d == tonumber(d) then return d end  -- a number, not NaN: no type()
  if d == nil and opt then return nil end
  if type(d) ~= "number" then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname,
      util.typeerror("number", d)), 3)
  end
  if d ~= d then
    error(("bad argument #%d to '%s' (delay is NaN)"):format(n, fname), 3)
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

return util
