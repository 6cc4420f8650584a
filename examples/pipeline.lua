-- `sort | uniq -c`, driven from Lua: a task feeds sort a large input, a
-- task copies sort's output into uniq, and main reads uniq's counts. Every
-- pipe is a stream, so drain keeps each writer in step with its reader and
-- nothing deadlocks however large the input.
--
--   lua5.4 examples/pipeline.lua [lines]      (default 200000 lines)
--   > pipeline = require "examples.pipeline"
--   > asyncio.run(pipeline.main, {lines = 1000})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

local WORDS = {"apple", "banana", "cherry", "damson", "elder"}

function M.main(opts)
  opts = opts or {}
  local n = opts.lines or 200000
  local sort = await(asyncio.create_subprocess_exec("sort", {stdin = "pipe", stdout = "pipe"}))
  local uniq = await(asyncio.create_subprocess_exec("uniq", "-c", {stdin = "pipe", stdout = "pipe"}))
  local feeder = asyncio.create_task(function()
    for i = 1, n do
      sort.stdin:write(WORDS[i % #WORDS + 1] .. "\n")
      if i % 1000 == 0 then await(sort.stdin:drain()) end
    end
    sort.stdin:close()
  end)
  local copier = asyncio.create_task(function()
    while true do
      local chunk = await(sort.stdout:read(65536))
      if chunk == "" then break end
      uniq.stdin:write(chunk)
      await(uniq.stdin:drain())
    end
    uniq.stdin:close()
  end)
  local counts = {}
  for line in uniq.stdout:lines() do
    local count, word = line:match("^%s*(%d+) (%S+)$")
    counts[word] = tonumber(count)
    print(("%8d %s"):format(counts[word], word))
  end
  await(feeder)
  await(copier)
  assert(await(sort:wait()) == 0 and await(uniq:wait()) == 0, "sort or uniq failed")
  return counts
end

if (...) ~= "examples.pipeline" then
  asyncio.run(M.main, {lines = tonumber(arg and arg[1])})
end
return M
