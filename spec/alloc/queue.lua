-- Allocation-failure scenario: producers and consumers on bounded queues
-- (FIFO and priority), with putters that wait, getters cancelled by time
-- limits and join. Whatever allocation fails, no item may be lost or
-- delivered twice, the counts must agree, and the library must still work.
local asyncio = require "asyncio"
local await = asyncio.await

local N = 40
local S = {}
-- The accounting is made before the run, at full size, so that recording
-- an outcome never allocates (a failure there would be the scenario's).
local put, got, queues

function S.run()
  put, got = {}, {}
  for id = 1, 2 * N do put[id], got[id] = false, 0 end
  queues = {asyncio.Queue(3), asyncio.PriorityQueue(2)}
  return asyncio.run(function()
    local tasks = {}
    for qi, q in ipairs(queues) do
      local base = (qi - 1) * N
      tasks[#tasks + 1] = asyncio.create_task(function()
        for id = base + 1, base + N do
          await(q:put(id))
          put[id] = true
        end
      end)
      for _ = 1, 2 do
        tasks[#tasks + 1] = asyncio.create_task(function()
          while true do
            local ok, id = pcall(await, asyncio.wait_for(q:get(), 0.002))
            if ok then
              got[id] = got[id] + 1
              q:task_done()
            elseif not asyncio.TimeoutError:is(id) then
              error(id, 0)
            end
            if put[base + N] and q:empty() then return end
          end
        end)
      end
    end
    await(asyncio.gather(tasks))
    for _, q in ipairs(queues) do await(asyncio.wait_for(q:join(), 5)) end
    return "done"
  end)
end

-- Every item whose put returned was got exactly once or is still queued;
-- none was got twice, or got without being put.
function S.check(ok, err)
  if not ok and type(err) == "string" and not err:find("not enough memory", 1, true) then
    return false, "run failed with: " .. err
  end
  if queues then
    for qi, q in ipairs(queues) do
      local left = {}
      while not q:empty() do
        local id = q:get_nowait()
        left[id] = true
      end
      for id = (qi - 1) * N + 1, qi * N do
        if got[id] > 1 then return false, ("item %d got %d times"):format(id, got[id]) end
        if got[id] == 1 and left[id] then return false, ("item %d got and still queued"):format(id) end
        if put[id] and got[id] == 0 and not left[id] then
          return false, ("item %d was put but is lost"):format(id)
        end
      end
      local g, p = q:_waiting()
      if g ~= 0 or p ~= 0 then return false, ("waiters left: %d getters, %d putters"):format(g, p) end
    end
  end
  if require("asyncio.runtime").loop ~= nil then return false, "a loop is still marked running" end
  -- the library still works
  local r = asyncio.run(function()
    local q = asyncio.Queue(1)
    local t = asyncio.create_task(function() return await(q:get()) end)
    await(q:put(42))
    return await(t)
  end)
  if r ~= 42 then return false, "the library no longer works: " .. tostring(r) end
  return true
end

return S
