-- busted.lua: async tests for busted.
--
--   local async = require "asyncio.busted"
--   it("times out after 30 s", async(function()
--     local ok, err = pcall(asyncio.await, asyncio.wait_for(never(), 30))
--     assert.is_true(asyncio.TimeoutError:is(err))
--   end))
--
-- Each test body runs as the main task of a fresh loop, on a virtual clock
-- unless {clock = "real"}. The test fails on an error, on a deadline (5 s
-- of loop time unless {timeout = s}), on a task error nobody retrieved,
-- and on tasks left running when the body returns (named, with what they
-- await); those are cancelled and the loop closed either way.

local asyncio = require "asyncio"
local dump = require "asyncio.dump"
local rt = require "asyncio.runtime"
local util = require "asyncio.util"
local raise = util.raise

local argcheck, typeerror, pack, unpack = util.argcheck, util.typeerror, util.pack, util.unpack

local M = {defaults = {clock = "virtual", timeout = 5}}

-- What an exception-handler context says, on one line.
local function context_text(ctx)
  local s = util.describe(ctx.message)
  if ctx.exception ~= nil or ctx.failed then s = s .. ": " .. util.describe(ctx.exception) end
  return s
end

-- Run fn(...) as the main task of a fresh loop with 'opts'; returns its
-- results, or raises why the test fails.
function M.run(opts, fn, ...)
  opts = opts or {}
  local clock = opts.clock or M.defaults.clock
  local timeout = opts.timeout or M.defaults.timeout
  if rt.loop ~= nil then raise("asyncio.busted: a test cannot run inside a running loop") end
  local loop = asyncio.new_event_loop{clock = clock}
  local reports = {}
  loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  local args = pack(...)
  local body = loop:create_task(fn, unpack(args, 1, args.n))
  body:set_name("test body")
  local late
  local guard = loop:call_later(timeout, function()
    late = dump.dump_tasks(loop)
    body:cancel()
  end)
  local results = pack(pcall(loop.run_until_complete, loop, body))
  guard:cancel()
  local left = {}
  for _, t in ipairs(loop._core:tasks()) do
    if not t:done() then left[#left + 1] = t end
  end
  local leftover = #left > 0 and dump.dump_tasks(loop) or nil
  pcall(loop._cancel_all, loop, false, true)
  collectgarbage()
  collectgarbage()  -- unretrieved task errors are reported when collected
  loop:close()
  if late then
    error(("test did not finish within %g s of loop time (%s clock); where the tasks were:\n%s")
      :format(timeout, clock, late), 0)
  end
  if not results[1] then error(results[2], 0) end
  local unretrieved = {}
  for _, ctx in ipairs(reports) do unretrieved[#unretrieved + 1] = context_text(ctx) end
  if #unretrieved > 0 then
    error("the loop reported errors nobody retrieved:\n  " .. table.concat(unretrieved, "\n  "), 0)
  end
  if leftover then
    error(("%d task%s still running when the test body returned (cancelled now):\n%s")
      :format(#left, #left == 1 and " was" or "s were", leftover), 0)
  end
  return unpack(results, 2, results.n)
end

-- async(fn, [opts]) -> a function for busted's it(): runs fn as the main
-- task of a fresh loop. opts: clock ("virtual", the default, or "real"),
-- timeout (seconds of loop time, default 5).
local function async(fn, opts)
  argcheck(type(fn) == "function", 1, "async", typeerror("function", fn))
  util.checkopts(opts, {clock = true, timeout = true}, 2, "async")
  if opts then
    argcheck(opts.clock == nil or opts.clock == "real" or opts.clock == "virtual", 2, "async",
      "clock must be \"real\" or \"virtual\"")
    argcheck(opts.timeout == nil or (type(opts.timeout) == "number" and opts.timeout > 0), 2,
      "async", "timeout must be a positive number of seconds")
  end
  return function(...) return M.run(opts, fn, ...) end
end

return setmetatable(M, {__call = function(_, fn, opts) return async(fn, opts) end})
