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

describe("examples/task_group.lua", function()
  local PAGES = {"a.example", "b.example", "c.example", "d.example"}

  it("fetches every page when nothing fails", function()
    local out, code = support.sh(support.LUA .. " examples/task_group.lua --scale 0.2")
    assert.equal(0, code)
    for _, p in ipairs(PAGES) do
      assert.equal(1, #lines_of(out, "^fetched " .. p:gsub("%.", "%%.") .. "$"))
    end
    assert.matches("all 4 pages fetched: a.example, b.example, c.example, d.example\n$", out)
  end)

  it("cancels the siblings of a failing fetch and lists the failure", function()
    local out, code = support.sh(support.LUA .. " examples/task_group.lua --scale 0.2 --fail b.example")
    assert.equal(0, code)
    assert.same({"failed: b.example: connection reset"}, lines_of(out, "^failed"))
    assert.same({}, lines_of(out, "^fetched b"))
    -- d takes longest: it is still running when b fails, and is cancelled
    assert.same({"cancelled d.example"}, lines_of(out, "^cancelled d"))
    for _, p in ipairs(PAGES) do
      if p ~= "b.example" then
        local ended = #lines_of(out, "^fetched " .. p:gsub("%.", "%%.") .. "$")
          + #lines_of(out, "^cancelled " .. p:gsub("%.", "%%.") .. "$")
        assert.equal(1, ended, p .. " neither fetched nor cancelled exactly once")
      end
    end
  end)

  it("cancels every fetch when the deadline passes first", function()
    -- the deadline (0.1 * 0.2 s) is armed before any fetch starts and is
    -- shorter than the quickest fetch (0.2 * 0.2 s)
    local out, code = support.sh(support.LUA .. " examples/task_group.lua --scale 0.2 --deadline 0.1")
    assert.equal(0, code)
    assert.equal(4, #lines_of(out, "^cancelled "))
    assert.same({}, lines_of(out, "^fetched "))
    assert.matches("deadline passed: every fetch was cancelled\n$", out)
  end)

  it("is a module whose main returns the pages by name", function()
    local out, code = support.sh(support.LUA .. [[ -e '
      local asyncio = require "asyncio"
      local tg = require "examples.task_group"
      local pages = asyncio.run(tg.main, {scale = 0.05})
      print("c is", pages["c.example"])' ]])
    assert.equal(0, code)
    assert.matches("c is\t<c.example: 900 bytes>", out)
  end)

  it("rejects unknown options with its usage", function()
    local out, code = support.sh(support.LUA .. " examples/task_group.lua --nope 2>&1")
    assert.are_not.equal(0, code)
    assert.matches("usage: task_group.lua", out)
  end)
end)

describe("examples/producer_consumer.lua", function()
  it("consumes every produced item exactly once", function()
    local out, code = support.sh(support.LUA ..
      " examples/producer_consumer.lua -p 3 -c 5 --seed 7 --scale 0.001")
    assert.equal(0, code)
    local n = check_items(out)
    assert.is_true(n > 0)
    assert.matches(("Program completed in [%%d.]+ seconds %%([%%d.]+ demo seconds at " ..
      "%%-%%-scale [%%d.]+%%) %%(%d items produced, %d consumed%%)"):format(n, n), out)
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

describe("README.md", function()
  it("tells the truth in its tour", function()
    local readme = assert(io.open("README.md")):read("a")
    local tour = readme:match("\n## A tour\n(.-)\n## ")
    local code = {}
    for block in tour:gmatch("```lua\n(.-)```") do code[#code + 1] = block end
    assert.equal(4, #code)
    local out, status = support.with_file(table.concat(code, "\n"), function(f)
      return support.sh(support.LUA .. " " .. f)
    end)
    assert.equal(0, status, out)
    assert.equal("result1\tresult2\tresult3\t3\n5050\nfalse\ttrue\n6\nhello\n1229\n", out)
  end)
end)

describe("README.md's testing section", function()
  it("is a busted spec that passes, run by busted", function()
    local readme = assert(io.open("README.md")):read("a")
    local section = readme:match("\n## Testing your async code\n(.-)\n## ")
    local code = section:match("```lua\n(.-)```")
    local f = os.tmpname() .. "_spec.lua"
    local h = assert(io.open(f, "w"))
    h:write(code)
    h:close()
    local out, status = support.sh("busted -o plainTerminal " .. f)
    os.remove(f)
    assert.equal(0, status, out)
    assert.matches("2 successes / 0 failures / 0 errors", out)
  end)
end)

describe("the Lua REPL", function()
  local repl = support.lua_repl

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
      -- seed 1: producer 1 first sleeps 1 "second", 100 s at this scale:
      -- only an interrupt ends this run (unseeded, all three producers could
      -- have nothing to do and the run end before the Ctrl-C)
      'ok, err = pcall(asyncio.run, demo.main, {producers = 3, consumers = 5, scale = 100, seed = 1})',
      '--SIGINT-- Producer 1 sleeping for 1 seconds',
      'print("after", ok, tostring(err), require("asyncio.runtime").loop)',
      'print("again", asyncio.run(function() return 42 end))',
    })
    assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\tnil", out)
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
    assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted", out)
    assert.matches("again\t42", out)
  end)
end)

describe("examples/echo.lua", function()
  it("as a script: a server and a client in one process", function()
    local out, code = support.sh(support.LUA .. " examples/echo.lua")
    assert.equal(0, code)
    assert.matches("serving on 127%.0%.0%.1:%d+", out)
    assert.matches('sent "hello", got back "hello"', out, 1, true)
    assert.matches('sent "echo", got back "echo"', out, 1, true)
  end)

  it("as a module: main returns what came back", function()
    local echo = require "examples.echo"
    local asyncio = require "asyncio"
    assert.same({"a b", "", "ü"}, asyncio.run(echo.main, {lines = {"a b", "", "ü"}}))
  end)
end)

describe("examples/chat.lua", function()
  it("as a script: every client hears every other one", function()
    local out, code = support.sh(support.LUA .. " examples/chat.lua --demo 3")
    assert.equal(0, code)
    assert.equal(6, #lines_of(out, "^user%d heard \"user%d: hello from %d\"$"))
  end)

  it("as a module: main returns what each client heard", function()
    local chat = require "examples.chat"
    local heard = require("asyncio").run(chat.main, {clients = 4})
    assert.equal(4, #heard)
    for i = 1, 4 do
      local expect = {}
      for j = 1, 4 do
        if j ~= i then expect[#expect + 1] = ("user%d: hello from %d"):format(j, j) end
      end
      assert.same(expect, heard[i])
    end
  end)
end)

describe("examples/http_hello.lua", function()
  it("as a module: main makes keep-alive requests", function()
    local http = require "examples.http_hello"
    local bodies = require("asyncio").run(http.main, {requests = 5})
    assert.equal(5, #bodies)
    for i = 1, 5 do assert.equal("Hello, World!", bodies[i]) end
  end)
end)

describe("examples/pipeline.lua", function()
  it("as a script: sort | uniq -c over 200,000 lines", function()
    local out, code = support.sh(support.LUA .. " examples/pipeline.lua")
    assert.equal(0, code, out)
    assert.equal("   40000 apple\n   40000 banana\n   40000 cherry\n   40000 damson\n   40000 elder\n", out)
  end)

  it("as a module: main returns the counts", function()
    local pipeline = require "examples.pipeline"
    local counts = require("asyncio").run(pipeline.main, {lines = 12})
    assert.same({apple = 2, banana = 3, cherry = 3, damson = 2, elder = 2}, counts)
  end)
end)

describe("examples/udp_echo.lua", function()
  it("as a script and as a module", function()
    local out, code = support.sh(support.LUA .. " examples/udp_echo.lua")
    assert.equal(0, code, out)
    assert.equal('sent "hello", got back "hello"\nsent "udp", got back "udp"\n', out)
    local udp = require "examples.udp_echo"
    assert.same({"x", "", "y"}, require("asyncio").run(udp.main, {messages = {"x", "", "y"}}))
  end)
end)
