-- Allocation-failure scenario: worker threads. A pool with an init and its
-- arguments, calls whose arguments and results are tables (shared and
-- cyclic ones too), an error coming back, a call cancelled while queued,
-- to_thread on the default pool, and the loop's close joining the threads.
-- The failing allocator is the loop's state's (the workers' states have
-- the C library's): whatever allocation fails there, a call either gives
-- its right answer or raises, never a wrong one, and the library still
-- works afterwards (the harness also checks that no descriptor is left).
local asyncio = require "asyncio"
local await = asyncio.await

local S = {}
local wrong

local function call_body(t, k)
  local sum = 0
  for i = 1, #t.list do sum = sum + t.list[i] end
  return {sum = sum * k, same = t.a == t.b, back = t}
end

function S.run()
  wrong = nil
  return asyncio.run(function()
    local pool <close> = asyncio.worker_pool{size = 2, init = function(base) BASE = base end,  -- luacheck: ignore
      initargs = {1000}}
    local shared = {1, 2, 3}
    local calls = {}
    for i = 1, 8 do
      local t = {list = {i, i + 1}, a = shared, b = shared}
      t.self = t
      calls[i] = asyncio.create_task(pool:call(call_body, t, i))
    end
    local cancelled = asyncio.create_task(pool:call(function() return "never" end))
    cancelled:cancel()
    local failing = asyncio.create_task(pool:call(function() error({code = 5}) end))
    for i = 1, 8 do
      local ok, r = pcall(await, calls[i])
      if ok then
        if r.sum ~= (2 * i + 1) * i or not r.same or r.back.self ~= r.back then
          wrong = ("call %d came back wrong"):format(i)
        end
      end
    end
    local ok, e = pcall(await, failing)
    if ok or (asyncio.ThreadError:is(e) and e.value and e.value.code ~= 5) then
      wrong = "the failing call came back wrong"
    end
    local base = await(pool:call(function() return BASE end))  -- luacheck: ignore
    if base ~= 1000 then wrong = "init's argument came back as " .. tostring(base) end
    local n = await(asyncio.to_thread(function(x) return x * 2 end, 21))
    if n ~= 42 then wrong = "to_thread came back with " .. tostring(n) end
    return "done"
  end)
end

function S.check(ok, err)
  if not ok and type(err) == "string" and not err:find("not enough memory", 1, true) then
    if not err:find("ThreadError", 1, true) then return false, "run failed with: " .. err end
  end
  if wrong then return false, wrong end
  if require("asyncio.runtime").loop ~= nil then return false, "a loop is still marked running" end
  -- the library still works
  local r = asyncio.run(function()
    local pool <close> = asyncio.worker_pool{size = 1}
    return await(pool:call(function(t) return t[1] + t[2] end, {40, 2}))
  end)
  if r ~= 42 then return false, "the library no longer works: " .. tostring(r) end
  return true
end

return S
