-- testing.lua: helpers for tests of async code. asyncio.testing.advance
-- moves a virtual clock by hand (see new_event_loop{clock = "virtual"}).

local rt = require "asyncio.runtime"
local util = require "asyncio.util"

local argcheck, typeerror = util.argcheck, util.typeerror

local M = {}

-- advance(seconds, [loop]): move the virtual clock of 'loop' (default: the
-- running one) on by 'seconds'; the timers due by then fire on the loop's
-- next turn, in deadline order.
function M.advance(seconds, loop)
  argcheck(type(seconds) == "number", 1, "advance", typeerror("number", seconds))
  argcheck(seconds == seconds, 1, "advance", "seconds is NaN")
  argcheck(seconds >= 0, 1, "advance", "seconds must not be negative")
  argcheck(seconds < 1e9, 1, "advance", "seconds must be below 1e9")
  loop = rt.checkloop(loop, 2, "advance")
  argcheck(loop._core:is_virtual(), 2, "advance",
    "the loop's clock is not virtual (new_event_loop{clock = \"virtual\"})")
  loop._core:advance(seconds)
end

return M
