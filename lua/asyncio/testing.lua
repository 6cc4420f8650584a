-- testing.lua: helpers for tests of async code. asyncio.testing.advance
-- moves a virtual clock by hand (see new_event_loop{clock = "virtual"}).

local rt = require "asyncio.runtime"
local util = require "asyncio.util"
local raise = util.raise

local argcheck, typeerror = util.argcheck, util.typeerror

local M = {}

-- advance(seconds, [loop]): move the virtual clock of 'loop' (default: the
-- running one) on by 'seconds'; the timers due by then fire on the loop's
-- next turn, in deadline order.
function M.advance(seconds, loop)
  argcheck(type(seconds) == "number" and seconds >= 0 and seconds == seconds, 1, "advance",
    type(seconds) == "number" and "seconds must not be negative" or typeerror("number", seconds))
  loop = loop or rt.loop
  if loop == nil then raise("advance: no running event loop (pass the loop)") end
  argcheck(loop._core:is_virtual(), 2, "advance",
    "the loop's clock is not virtual (new_event_loop{clock = \"virtual\"})")
  loop._core:advance(seconds)
end

return M
