-- Structured concurrency: "fetch" a few pages at once in a task group,
-- under an overall deadline. A fetch that fails cancels its siblings and
-- the group raises an ExceptionGroup; a deadline that passes raises
-- TimeoutError. Nothing is left running either way.
--
--   lua5.4 examples/task_group.lua [--fail NAME] [--deadline S] [--scale S]
--   > tg = require "examples.task_group"
--   > asyncio.run(tg.main, {fail = "b.example"})

local asyncio = require "asyncio"
local async, await = asyncio.async, asyncio.await

local M = {}

local PAGES = {
  {"a.example", 0.3}, {"b.example", 0.5}, {"c.example", 0.2}, {"d.example", 0.4},
}

-- A pretend network fetch: takes 'seconds', or fails halfway for 'fail'.
local fetch = async(function(name, seconds, opts)
  local scale = opts.scale or 1
  print(("fetching %s"):format(name))
  local ok, err = pcall(function()
    if name == opts.fail then
      await(asyncio.sleep(seconds * scale / 2))
      error(("%s: connection reset"):format(name), 0)
    end
    await(asyncio.sleep(seconds * scale))
  end)
  if not ok then
    if asyncio.CancelledError:is(err) then print(("cancelled %s"):format(name)) end
    error(err, 0)
  end
  print(("fetched %s"):format(name))
  return ("<%s: %d bytes>"):format(name, #name * 100)
end)

-- main(opts): opts.fail (a page name that fails), opts.deadline (seconds,
-- default 1), opts.scale. Returns the pages fetched, by name.
function M.main(opts)
  opts = opts or {}
  local scale = opts.scale or 1
  local pages = {}
  local ok, err = pcall(await, asyncio.timeout((opts.deadline or 1) * scale, function()
    return await(asyncio.task_group(function(tg)
      for _, p in ipairs(PAGES) do
        local name, seconds = p[1], p[2]
        tg:create_task(function() pages[name] = await(fetch(name, seconds, opts)) end)
      end
    end))
  end))
  if ok then
    local names = {}
    for name in pairs(pages) do names[#names + 1] = name end
    table.sort(names)
    print(("all %d pages fetched: %s"):format(#names, table.concat(names, ", ")))
  elseif asyncio.ExceptionGroup:is(err) then
    for _, e in ipairs(err.errors) do print("failed: " .. tostring(e)) end
  elseif asyncio.TimeoutError:is(err) then
    print("deadline passed: every fetch was cancelled")
  else
    error(err, 0)
  end
  return pages
end

function M.script(args)
  local opts, i = {}, 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "--fail" and v then opts.fail = v
    elseif a == "--deadline" and tonumber(v) then opts.deadline = tonumber(v)
    elseif a == "--scale" and tonumber(v) then opts.scale = tonumber(v)
    else error("usage: task_group.lua [--fail NAME] [--deadline S] [--scale S]", 0) end
    i = i + 2
  end
  asyncio.run(M.main, opts)
end

if (...) ~= "examples.task_group" then M.script(arg or {}) end
return M
