-- spec/support.lua: helpers the specs share.
local asyncio = require "asyncio"
local rt = require "asyncio.runtime"

local support = {}

-- Run 'fn' as the main task of a fresh asyncio.run and return its results.
function support.run(fn, ...)
  return asyncio.run(fn, ...)
end

-- The world is clean: no loop running, no task pending anywhere.
function support.assert_clean()
  assert(rt.loop == nil, "an event loop is still running")
  assert(asyncio.current_task() == nil, "a task is still current")
end

-- Capture the exception-handler contexts of 'loop' into a list.
function support.capture(loop)
  local got = {}
  loop:set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
  return got
end

-- Let the loop run 'n' iterations (await sleep(0) n times).
function support.ticks(n)
  for _ = 1, n or 1 do asyncio.await(asyncio.sleep(0)) end
end

-- Command line for a lua5.4 that loads this checkout.
support.LUA = 'LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;" lua5.4'

-- Run a shell command; return its stdout, and its exit status.
function support.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

return support
