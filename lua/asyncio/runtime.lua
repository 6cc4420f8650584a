-- runtime.lua: the state shared by the Lua modules: the running loop and the
-- default exception handler. One Lua state runs at most one loop at a time.

local rt = {
  loop = nil,  -- the running EventLoop, or nil
  repl = false,  -- the async REPL runs (its loop is rt.loop then)
}

local describe = require("asyncio.util").describe

-- Write an error report to stderr: the last resort, never raises.
function rt.default_exception_handler(_, ctx)
  local parts = {"asyncio: ", describe(ctx.message or "unhandled error")}
  if ctx.exception ~= nil or ctx.failed then
    parts[#parts + 1] = ": " .. describe(ctx.exception)
  end
  if ctx.task ~= nil then parts[#parts + 1] = " (in " .. describe(ctx.task) .. ")" end
  if ctx.traceback then parts[#parts + 1] = "\n" .. ctx.traceback end
  io.stderr:write(table.concat(parts), "\n")
end

return rt
