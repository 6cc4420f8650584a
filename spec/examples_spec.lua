-- Every example runs as a script and as a module; what it prints is checked.
local support = require "spec.support"

local function lines_of(out, pattern)
  local t = {}
  for l in out:gmatch("[^\n]+") do if l:match(pattern) then t[#t + 1] = l end end
  return t
end

-- Check producer-consumer output: every item added is got exactly once.
local function check_items(out)
  local added, got = {}, {}
  for id in out:gmatch("added <(%x+)> to queue") do
    assert.is_nil(added[id], "item made twice: " .. id)
    added[id] = true
  end
  for id in out:gmatch("got element <(%x+)>") do
    assert.is_nil(got[id], "item consumed twice: " .. id)
    got[id] = true
  end
  assert.same(added, got)
  local n = 0
  for _ in pairs(added) do n = n + 1 end
  return n
end

describe("examples/chaining_coroutines.lua", function()
  it("runs the chains concurrently and reports each", function()
    local out, code = support.sh(support.LUA ..
      " examples/chaining_coroutines.lua --seed 4 --scale 0.001 1 2 3")
    assert.equal(0, code)
    assert.equal(3, #lines_of(out, "^%-%-> chain %d gives 'result%d%-2 derived from result%d%-1'"))
    -- every chain has started its first part before any part returns
    local first_return = out:find("returns")
    for n = 1, 3 do
      assert.is_true(out:find(("part1(%d) sleeps"):format(n), 1, true) < first_return)
    end
    assert.matches("Program finished in [%d.]+ seconds", out)
  end)

  it("is a module whose main returns each chain's time", function()
    local out, code = support.sh(support.LUA .. [[ -e '
      local asyncio = require "asyncio"
      local demo = require "examples.chaining_coroutines"
      local took = asyncio.run(demo.main, {chains = {1, 2}, scale = 0.0001, seed = 1})
      print("chains", took.n, type(took[1]))' ]])
    assert.equal(0, code)
    assert.matches("chains\t2\tnumber", out)
    assert.equal(2, #lines_of(out, "^%-%-> chain"))
  end)
end)

describe("examples/count.lua", function()
  it("is a module with main and sync", function()
    local out = support.sh(support.LUA .. [[ -e '
      local count = require "examples.count"
      require("asyncio").run(count.main, {scale = 0.001})
      count.sync({scale = 0.001})' ]])
    assert.equal("One\nOne\nOne\nTwo\nTwo\nTwo\nOne\nTwo\nOne\nTwo\nOne\nTwo\n", out)
  end)

  it("counts three times concurrently", function()
    local out, code = support.sh(support.LUA .. " examples/count.lua --scale 0.01")
    assert.equal(0, code)
    assert.matches("^One\nOne\nOne\nTwo\nTwo\nTwo\ncount %(async%) executed in", out)
  end)

  it("counts one after another with --sync", function()
    local out = support.sh(support.LUA .. " examples/count.lua --sync --scale 0.01")
    assert.matches("^One\nTwo\nOne\nTwo\nOne\nTwo\ncount %(sync%) executed in", out)
  end)
end)

describe("examples/producer_consumer.lua", function()
  it("consumes every produced item exactly once", function()
    local out, code = support.sh(support.LUA ..
      " examples/producer_consumer.lua -p 3 -c 5 --seed 7 --scale 0.001")
    assert.equal(0, code)
    local n = check_items(out)
    assert.is_true(n > 0)
    assert.matches(("Program completed in [%%d.]+ seconds %%(%d items produced, %d consumed%%)"):format(n, n), out)
    assert.matches("Producer 2 sleeping for %d+ seconds%.", out)
  end)

  it("rejects unknown options with its usage", function()
    local out, code = support.sh(support.LUA .. " examples/producer_consumer.lua --bogus 1")
    assert.is_not.equal(0, code)
    assert.matches("usage: producer_consumer.lua", out)
  end)

  it("runs through make demo", function()
    local out, code = support.sh("make --no-print-directory demo")
    assert.equal(0, code)
    assert.is_true(check_items(out) >= 0)
    assert.matches("Program completed in", out)
  end)
end)

describe("the Lua REPL", function()
  local function repl(lines)
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write(table.concat(lines, "\n"), "\n")
    h:close()
    local out = support.sh("bash spec/repl_helper.sh " .. f)
    os.remove(f)
    return out
  end

  it("runs the demo twice and still answers", function()
    local out = repl({
      'asyncio = require "asyncio"',
      'demo = require "examples.producer_consumer"',
      'stats = asyncio.run(demo.main, {producers = 3, consumers = 5, scale = 0.01, seed = 3})',
      'print("first", stats.produced, stats.consumed)',
      'stats = asyncio.run(demo.main, {producers = 3, consumers = 5, scale = 0.01, seed = 5})',
      'print("second", stats.produced, stats.consumed)',
      'print("still here", 6 * 7)',
    })
    local a1, b1 = out:match("first\t(%d+)\t(%d+)")
    local a2, b2 = out:match("second\t(%d+)\t(%d+)")
    assert.is_not_nil(a1, out)
    assert.equal(a1, b1)
    assert.equal(a2, b2)
    assert.equal(tonumber(a1) + tonumber(a2), check_items(out))
    assert.matches("still here\t42", out)
    assert.matches("exit status 0", out)
  end)

  it("stops the demo on Ctrl-C, leaves nothing running and keeps the REPL", function()
    local out = repl({
      'asyncio = require "asyncio"',
      'demo = require "examples.producer_consumer"',
      -- every sleep is 0 to 1000 seconds: only an interrupt ends this run
      'ok, err = pcall(asyncio.run, demo.main, {producers = 3, consumers = 5, scale = 100})',
      '--SIGINT-- sleeping for',
      'print("after", ok, tostring(err), require("asyncio.runtime").loop)',
      'print("again", asyncio.run(function() return 42 end))',
    })
    assert.matches("after\tfalse\tKeyboardInterrupt: interrupted\tnil", out)
    assert.matches("again\t42", out)
    assert.matches("exit status 0", out)
  end)

  it("abandons a task that refuses to be cancelled on a second Ctrl-C", function()
    local out = repl({
      'asyncio = require "asyncio"',
      'stubborn = function() while true do',
      '  if not pcall(asyncio.await, asyncio.sleep(1000)) then print("refusing") end end end',
      'ok, err = pcall(asyncio.run, function() print("started"); stubborn() end)',
      '--SIGINT-- started',
      '--SIGINT-- refusing',
      'print("after", ok, tostring(err))',
      'print("again", asyncio.run(function() return 42 end))',
    })
    assert.matches("after\tfalse\tKeyboardInterrupt: interrupted", out)
    assert.matches("again\t42", out)
  end)
end)
