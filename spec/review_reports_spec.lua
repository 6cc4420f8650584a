-- Defects a second hostile review found (session of 2026-12-06): each
-- spec here failed before its fix.
local asyncio = require "asyncio"
local support = require "spec.support"

describe("the second review", function()
  after_each(support.assert_clean)

  it("a Ctrl-C while asyncio.run cancels the stragglers raises KeyboardInterrupt, never a normal return", function()
    local out = support.lua_repl({
      'asyncio = require "asyncio"',
      'ok, err = pcall(asyncio.run, function() asyncio.create_task(function() while true do ' ..
        'pcall(asyncio.await, asyncio.sleep(0.05)) print("stubborn") end end) ' ..
        'asyncio.await(asyncio.sleep(0)) return 1 end)',
      '--SIGINT-- stubborn',
      'print("after", ok, tostring(err))',
    })
    assert.matches("after\tfalse\t[^\t\n]*KeyboardInterrupt: interrupted\n", out)
  end)

  it("a run that ended another way does not stop the next run with its stale callback", function()
    local loop = asyncio.new_event_loop()
    local fut = loop:create_future()
    loop:call_soon(function() fut:set_result(1); loop:stop() end)
    assert.equal(1, loop:run_until_complete(fut))
    local fired = false
    loop:call_later(0.01, function() fired = true; loop:stop() end)
    loop:run_forever()
    assert.is_true(fired)
    loop:close()
  end)

  it("an error escaping asyncio.run through a gather shows the failing child's frames", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      local function inner() await(asyncio.sleep(0)); error("boom") end   -- line 3
      local function child() inner() end                                  -- line 4
      asyncio.run(function()
        await(asyncio.gather(asyncio.async(child)(), asyncio.sleep(0.01))) -- line 6
      end)
    ]])
    assert.are_not.equal(0, code)
    assert.matches("the tasks it went through, first to last:\n" ..
      "  task Task%-2:\n    [^\n]*:3: in [^\n]*\n    [^\n]*:4: in [^\n]*\n" ..
      "  task Task%-1:\n    [^\n]*:6: in function", out)
    assert.matches(":3: boom", out)
  end)
end)
