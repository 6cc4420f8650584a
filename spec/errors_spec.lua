local asyncio = require "asyncio"
local support = require "spec.support"

describe("error classes", function()
  after_each(support.assert_clean)

  it("build tables with name and message that print as 'Name: message'", function()
    local e = asyncio.QueueEmpty()
    assert.equal("QueueEmpty", e.name)
    assert.equal("queue is empty", e.message)
    assert.equal("QueueEmpty: queue is empty", tostring(e))
    assert.equal("TimeoutError: too slow", tostring(asyncio.TimeoutError("too slow")))
  end)

  it("print the bare name when there is no message", function()
    assert.equal("CancelledError", tostring(asyncio.CancelledError()))
  end)

  it("tell their instances apart with Class:is", function()
    local e = asyncio.CancelledError("stop")
    assert.is_true(asyncio.CancelledError:is(e))
    assert.is_false(asyncio.TimeoutError:is(e))
    assert.is_true(asyncio.Error:is(e))
    assert.is_false(asyncio.CancelledError:is("CancelledError"))
    assert.is_false(asyncio.CancelledError:is(nil))
  end)

  it("keep extra fields of an ExceptionGroup beside the message", function()
    local g = asyncio.ExceptionGroup("two failed", {"a", asyncio.TimeoutError()})
    assert.equal(2, #g.errors)
    assert.equal("ExceptionGroup: two failed (2 sub-errors: a; TimeoutError: the operation timed out)",
      tostring(g))
  end)
end)
