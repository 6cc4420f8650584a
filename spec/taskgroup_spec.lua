local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await
local ticks = support.ticks

describe("task_group", function()
  after_each(support.assert_clean)

  it("waits for every child and returns fn's results", function()
    local r = {support.run(function()
      local done = {}
      local a, b = await(asyncio.task_group(function(tg, x)
        for i = 1, 3 do
          tg:create_task(function() await(asyncio.sleep(0.001 * i)); done[#done + 1] = i end)
        end
        return x, "fn"
      end, "arg"))
      return a, b, #done
    end)}
    assert.same({"arg", "fn", 3}, r)
  end)

  it("cancels the rest on the first failure and raises an ExceptionGroup of failures", function()
    local r = support.run(function()
      local sibling
      local ok, eg = pcall(await, asyncio.task_group(function(tg)
        tg:create_task(function() await(asyncio.sleep(0)); error("first", 0) end)
        tg:create_task(function() await(asyncio.sleep(0)); error("second", 0) end)
        sibling = tg:create_task(function() await(asyncio.sleep(10)) end)
        await(asyncio.sleep(10))  -- fn itself is cancelled too
      end))
      table.sort(eg.errors)
      return {ok, eg.name, eg.errors, sibling:cancelled(), asyncio.current_task():cancelling()}
    end)
    assert.same({false, "ExceptionGroup", {"first", "second", n = 2}, true, 0}, r)
  end)

  it("adds an error of fn itself to the group", function()
    local r = support.run(function()
      local ok, eg = pcall(await, asyncio.task_group(function(tg)
        tg:create_task(function() await(asyncio.sleep(0.001)) end)
        error("fn failed", 0)
      end))
      return {ok, eg.errors}
    end)
    assert.same({false, {"fn failed", n = 1}}, r)
  end)

  it("cancels the children when the parent is cancelled", function()
    local r = support.run(function()
      local child
      local parent = asyncio.create_task(function()
        await(asyncio.task_group(function(tg)
          child = tg:create_task(function() await(asyncio.sleep(10)) end)
        end))
      end)
      ticks(3)
      parent:cancel()
      local ok, err = pcall(await, parent)
      return {ok, asyncio.CancelledError:is(err), child:cancelled()}
    end)
    assert.same({false, true, true}, r)
  end)

  it("nests", function()
    local r = support.run(function()
      local log = {}
      await(asyncio.task_group(function(outer)
        outer:create_task(function()
          await(asyncio.task_group(function(inner)
            inner:create_task(function() await(asyncio.sleep(0)); log[#log + 1] = "inner child" end)
          end))
          log[#log + 1] = "inner group"
        end)
      end))
      log[#log + 1] = "outer group"
      return log
    end)
    assert.same({"inner child", "inner group", "outer group"}, r)
  end)

  it("nests: a failing inner group fails the outer one, which cancels its other children", function()
    local r = support.run(function()
      local other
      local ok, err = pcall(await, asyncio.task_group(function(outer)
        other = outer:create_task(function() await(asyncio.sleep(10)) end)
        outer:create_task(function()
          await(asyncio.task_group(function(inner)
            inner:create_task(function() await(asyncio.sleep(0)); error("deep", 0) end)
          end))
        end)
      end))
      local inner_group = err.errors[1]
      return {ok, asyncio.ExceptionGroup:is(err), #err.errors,
              asyncio.ExceptionGroup:is(inner_group), inner_group.errors[1], other:cancelled()}
    end)
    assert.same({false, true, 1, true, "deep", true}, r)
  end)

  it("refuses new children while cancelling them after a failure", function()
    local r = support.run(function()
      local msg
      pcall(await, asyncio.task_group(function(tg)
        tg:create_task(function() error("boom", 0) end)
        local ok = pcall(await, asyncio.sleep(10))  -- cancelled by the failure
        local ok2, e = pcall(tg.create_task, tg, function() end)
        msg = not ok and not ok2 and e
      end))
      return msg
    end)
    assert.matches("the task group is shutting down", r)
  end)

  it("refuses new children once finished, and checks its arguments", function()
    local ok, err = pcall(asyncio.run, function()
      local saved
      await(asyncio.task_group(function(tg) saved = tg end))
      saved:create_task(function() end)
    end)
    assert.is_false(ok)
    assert.matches("the task group is finished", err)
    assert.has_error(function() asyncio.task_group(42) end,
      "bad argument #1 to 'task_group' (function expected, got number)")
  end)
end)
