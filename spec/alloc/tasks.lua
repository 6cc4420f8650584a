-- Allocation-failure scenario: tasks, futures, gather, time limits, a
-- task group, locks and events, cancellation and error values. Whatever
-- allocation fails, the run ends (no hang, no crash), a lock is never held
-- twice, and the library still works after.
local asyncio = require "asyncio"
local await = asyncio.await

local S = {}
local holders, max_holders

function S.run()
  holders, max_holders = 0, 0
  return asyncio.run(function()
    local lock, ev = asyncio.Lock(), asyncio.Event()
    local function worker(i)
      local _ <close> = await(lock:acquire())
      holders = holders + 1
      if holders > max_holders then max_holders = holders end
      await(asyncio.sleep(0))
      holders = holders - 1
      if i % 3 == 0 then error({code = i}) end
      return i
    end
    local tasks = {}
    for i = 1, 6 do tasks[i] = asyncio.create_task(worker, i) end
    await(asyncio.gather(tasks, {return_exceptions = true}))
    local slow = asyncio.create_task(function() await(ev:wait()); return "late" end)
    pcall(await, asyncio.wait_for(slow, 0.001))
    pcall(await, asyncio.task_group(function(tg)
      tg:create_task(function() await(asyncio.sleep(0)); error("child failed") end)
      tg:create_task(function() await(ev:wait()) end)
    end))
    local f = asyncio.Future()
    asyncio.get_running_loop():call_soon(function() f:set_result(1, 2, 3) end)
    await(f)
    ev:set()
    await(asyncio.wait({asyncio.create_task(function() return 7 end)}))
    return "done"
  end)
end

-- Out of memory in the middle of the library's own callbacks (a time
-- limit's expiry, a task group's abort) the run may end with a deadlock
-- error or a stray CancelledError: the work that failed is lost, but the
-- run ends and the loop is closed. Only that it ended is checked here.
function S.check(_, _)
  if max_holders and max_holders > 1 then return false, "the lock was held twice" end
  if require("asyncio.runtime").loop ~= nil then return false, "a loop is still marked running" end
  local r = asyncio.run(function()
    local t = asyncio.create_task(function() await(asyncio.sleep(0)); return 42 end)
    return await(asyncio.wait_for(t, 5))
  end)
  if r ~= 42 then return false, "the library no longer works: " .. tostring(r) end
  return true
end

return S
