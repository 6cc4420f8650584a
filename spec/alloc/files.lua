-- Allocation-failure scenario: files written by two tasks at once, read
-- back, one closed by a <close> variable, one dropped open (the collector
-- closes it). Whatever allocation fails, what the file holds is a series
-- of whole records in the order they were written (nothing reordered,
-- nothing twice), every descriptor is closed once the state is, and the
-- library still works.
local asyncio = require "asyncio"
local await = asyncio.await

local S = {}
local path = os.tmpname()

function S.run()
  return asyncio.run(function()
    local f = await(asyncio.open_file(path, "w"))
    local writers = {}
    for w = 1, 2 do
      writers[w] = asyncio.create_task(function()
        for n = 1, 10 do await(f:write(("record %d-%02d;"):format(w, n))) end
      end)
    end
    await(asyncio.gather(writers, {return_exceptions = true}))
    await(f:close())
    do
      local g <close> = await(asyncio.open_file(path, "a"))
      await(g:write("tail;"))
    end
    local data = await(await(asyncio.open_file(path)):read())  -- dropped open: collected
    collectgarbage()
    return data
  end)
end

function S.check(_, _)
  local fh = io.open(path, "rb")
  local data = fh and fh:read("a") or ""
  if fh then fh:close() end
  os.remove(path)
  -- whole records only, each writer's in order, "tail;" at most once and last
  local rest = data:gsub("record (%d)%-(%d%d);", "")
  if rest ~= "" and rest ~= "tail;" then return false, ("torn or foreign bytes: %q"):format(data) end
  local last = {0, 0}
  for w, n in data:gmatch("record (%d)%-(%d%d);") do
    w, n = tonumber(w), tonumber(n)
    if n <= last[w] then return false, ("writer %d out of order: %q"):format(w, data) end
    last[w] = n
  end
  if data:find("tail;", 1, true) and data:sub(-5) ~= "tail;" then
    return false, "the tail is not last: " .. data
  end
  if require("asyncio.runtime").loop ~= nil then return false, "a loop is still marked running" end
  local r = asyncio.run(function()
    local f <close> = await(asyncio.open_file(path, "w+"))
    await(f:write("42"))
    await(f:seek("set"))
    return await(f:read())
  end)
  os.remove(path)
  if r ~= "42" then return false, "the library no longer works: " .. tostring(r) end
  return true
end

return S
