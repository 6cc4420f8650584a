local asyncio = require "asyncio"
local support = require "spec.support"
local async, await = asyncio.async, asyncio.await

describe("asyncio.run", function()
  after_each(support.assert_clean)

  it("returns every result of main, nil included", function()
    local n = select("#", asyncio.run(function() return 1, nil, 3 end))
    assert.equal(3, n)
    assert.same({1, nil, 3}, {asyncio.run(function() return 1, nil, 3 end)})
  end)

  it("passes its extra arguments to a main function", function()
    assert.equal(5, asyncio.run(function(a, b) return a + b end, 2, 3))
  end)

  it("runs a coroutine object and an async function", function()
    local f = async(function(x) return x * 2 end)
    assert.equal(8, asyncio.run(f(4)))
    assert.equal(6, asyncio.run(f, 3))
  end)

  it("raises main's error value unchanged", function()
    local obj = {}
    local ok, err = pcall(asyncio.run, function() error(obj) end)
    assert.is_false(ok)
    assert.equal(obj, err)
    ok, err = pcall(asyncio.run, function() error("plain", 0) end)
    assert.is_false(ok)
    assert.equal("plain", err)
  end)

  it("works again and again", function()
    for i = 1, 5 do
      assert.equal(i, asyncio.run(function() await(asyncio.sleep(0)) return i end))
    end
  end)

  it("refuses to run inside a running loop", function()
    local ok, err = pcall(asyncio.run, function()
      return asyncio.run(function() end)
    end)
    assert.is_false(ok)
    assert.matches("asyncio.run%(%) cannot be called from a running event loop", err)
  end)

  it("cancels and drains the tasks main leaves behind", function()
    local cleaned = false
    local t
    asyncio.run(function()
      t = asyncio.create_task(function()
        local ok, err = pcall(await, asyncio.sleep(100))
        cleaned = not ok and asyncio.CancelledError:is(err)
        error(err, 0)
      end)
      await(asyncio.sleep(0))
    end)
    assert.is_true(cleaned)
    assert.is_true(t:cancelled())
  end)

  it("reports a deadlock instead of hanging", function()
    local ok, err = pcall(asyncio.run, function()
      await(asyncio.Future())
    end)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)

  it("checks its argument", function()
    assert.has_error(function() asyncio.run(42) end,
      "bad argument #1 to 'run' (coroutine object or function expected, got number)")
  end)
end)
