local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await
local ticks = support.ticks

local function raises(cls, fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok and cls:is(err)
end

describe("Event", function()
  after_each(support.assert_clean)

  it("wakes every waiter when set, and wait returns true", function()
    local r = support.run(function()
      local ev, got = asyncio.Event(), {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = asyncio.create_task(function()
          local v = await(ev:wait())
          got[#got + 1] = tostring(v) .. i
        end)
      end
      ticks(2)
      assert.is_false(ev:is_set())
      ev:set()
      await(asyncio.gather(table.unpack(ts)))
      return got
    end)
    assert.same({"true1", "true2", "true3"}, r)
  end)

  it("returns at once when already set, and clear makes it wait again", function()
    local r = support.run(function()
      local ev = asyncio.Event()
      ev:set()
      local first = await(ev:wait())
      ev:clear()
      local t = asyncio.create_task(function() return await(ev:wait()) end)
      ticks(2)
      local waiting = not t:done()
      ev:set()
      return {first, waiting, await(t)}
    end)
    assert.same({true, true, true}, r)
  end)

  it("drops a cancelled waiter", function()
    local r = support.run(function()
      local ev = asyncio.Event()
      local t = asyncio.create_task(function() await(ev:wait()) end)
      ticks(2)
      t:cancel()
      local c = raises(asyncio.CancelledError, await, t)
      return {c, #ev._waiters}
    end)
    assert.same({true, 0}, r)
  end)
end)

describe("Lock", function()
  after_each(support.assert_clean)

  it("lets one holder in at a time, in FIFO order", function()
    local log = support.run(function()
      local lock, log = asyncio.Lock(), {}
      local function worker(name)
        await(lock:acquire())
        log[#log + 1] = name .. " in"
        await(asyncio.sleep(0))
        log[#log + 1] = name .. " out"
        lock:release()
      end
      local ts = {}
      for i, n in ipairs({"a", "b", "c"}) do ts[i] = asyncio.create_task(worker, n) end
      await(asyncio.gather(table.unpack(ts)))
      return log
    end)
    assert.same({"a in", "a out", "b in", "b out", "c in", "c out"}, log)
  end)

  it("is released at scope exit when held with <close>, errors included", function()
    local r = support.run(function()
      local lock = asyncio.Lock()
      local function critical(fail)
        local held <close> = await(lock:acquire())  -- luacheck: ignore held (released by <close>)
        assert(lock:locked())
        if fail then error("inside", 0) end
        return "ok"
      end
      local a = critical(false)
      local ok, err = pcall(critical, true)
      return {a, ok, err, lock:locked()}
    end)
    assert.same({"ok", false, "inside", false}, r)
  end)

  it("gives the lock to the next waiter when a woken one is cancelled", function()
    local r = support.run(function()
      local lock = asyncio.Lock()
      await(lock:acquire())
      local a = asyncio.create_task(function() await(lock:acquire()); return "a" end)
      local b = asyncio.create_task(function() await(lock:acquire()); lock:release(); return "b" end)
      ticks(2)
      lock:release()  -- wakes a ...
      a:cancel()      -- ... which is cancelled before it runs
      local a_cancelled = raises(asyncio.CancelledError, await, a)
      return {a_cancelled, await(b), lock:locked()}
    end)
    assert.same({true, "b", false}, r)
  end)

  it("does not let a newcomer barge past a woken waiter", function()
    local log = support.run(function()
      local lock, log = asyncio.Lock(), {}
      await(lock:acquire())
      local a = asyncio.create_task(function() await(lock:acquire()); log[#log + 1] = "a"; lock:release() end)
      ticks(2)
      lock:release()
      local c = asyncio.create_task(function() await(lock:acquire()); log[#log + 1] = "c"; lock:release() end)
      await(asyncio.gather(a, c))
      return log
    end)
    assert.same({"a", "c"}, log)
  end)

  it("refuses to release an unlocked lock", function()
    local lock = asyncio.Lock()
    assert.has_error(function() lock:release() end, "Lock.release: lock is not acquired")
    assert.has_error(function() asyncio.Lock.release(42) end,
      "bad argument #1 to 'release' (asyncio.Lock expected, got number)")
  end)
end)

describe("Semaphore", function()
  after_each(support.assert_clean)

  it("lets n holders in at once", function()
    local peak = support.run(function()
      local sem, inside, peak = asyncio.Semaphore(2), 0, 0
      local function worker()
        await(sem:acquire())
        inside = inside + 1
        peak = math.max(peak, inside)
        await(asyncio.sleep(0))
        inside = inside - 1
        sem:release()
      end
      local ts = {}
      for i = 1, 6 do ts[i] = asyncio.create_task(worker) end
      await(asyncio.gather(table.unpack(ts)))
      return peak
    end)
    assert.equal(2, peak)
  end)

  it("wakes in FIFO order and passes a cancelled wake-up on", function()
    local r = support.run(function()
      local sem = asyncio.Semaphore(0)
      local order = {}
      local a = asyncio.create_task(function() await(sem:acquire()); order[#order + 1] = "a" end)
      local b = asyncio.create_task(function() await(sem:acquire()); order[#order + 1] = "b" end)
      local c = asyncio.create_task(function() await(sem:acquire()); order[#order + 1] = "c" end)
      ticks(2)
      sem:release()  -- wakes a
      a:cancel()     -- before a runs: b must get it
      sem:release()  -- and c this one
      pcall(await, a)
      await(asyncio.gather(b, c))
      return order
    end)
    assert.same({"b", "c"}, r)
  end)

  it("checks its value", function()
    assert.has_error(function() asyncio.Semaphore(-1) end,
      "bad argument #1 to 'Semaphore' (value must be a non-negative integer)")
    assert.has_error(function() asyncio.Semaphore("2") end,
      "bad argument #1 to 'Semaphore' (integer expected, got string)")
  end)
end)

describe("BoundedSemaphore", function()
  it("refuses to be released above its initial value", function()
    local sem = asyncio.BoundedSemaphore(1)
    assert.has_error(function() sem:release() end, "BoundedSemaphore.release: released too many times")
    support.run(function() await(sem:acquire()) end)
    sem:release()
    assert.is_false(sem:locked())
  end)
end)

describe("Condition", function()
  after_each(support.assert_clean)

  it("wakes waiters with notify and notify_all, lock held again", function()
    local r = support.run(function()
      local cond, log = asyncio.Condition(), {}
      local function waiter(name)
        await(cond:acquire())
        await(cond:wait())
        log[#log + 1] = name .. (cond:locked() and " locked" or " unlocked")
        cond:release()
      end
      local ts = {}
      for i, n in ipairs({"a", "b", "c"}) do ts[i] = asyncio.create_task(waiter, n) end
      ticks(3)
      await(cond:acquire()); cond:notify(1); cond:release()
      ticks(3)
      local after_one = #log
      await(cond:acquire()); cond:notify_all(); cond:release()
      await(asyncio.gather(table.unpack(ts)))
      return {after_one, log}
    end)
    assert.same({1, {"a locked", "b locked", "c locked"}}, r)
  end)

  it("wait_for waits until the predicate holds", function()
    local r = support.run(function()
      local cond, value = asyncio.Condition(), 0
      local t = asyncio.create_task(function()
        await(cond:acquire())
        local v = await(cond:wait_for(function() return value >= 3 and value end))
        cond:release()
        return v
      end)
      for i = 1, 3 do
        ticks(2)
        await(cond:acquire()); value = i; cond:notify_all(); cond:release()
      end
      return await(t)
    end)
    assert.equal(3, r)
  end)

  it("re-acquires the lock when a waiter is cancelled", function()
    local r = support.run(function()
      local cond = asyncio.Condition()
      local t = asyncio.create_task(function()
        await(cond:acquire())
        local ok, err = pcall(await, cond:wait())
        local locked = cond:locked()
        cond:release()
        return {ok, err.name, locked}
      end)
      ticks(2)
      t:cancel()
      return await(t)
    end)
    assert.same({false, "CancelledError", true}, r)
  end)

  it("refuses wait and notify without the lock", function()
    local cond = asyncio.Condition()
    assert.has_error(function() cond:notify() end, "Condition.notify: cannot notify on an un-acquired lock")
    local ok, err = pcall(asyncio.run, function() await(cond:wait()) end)
    assert.is_false(ok)
    assert.matches("cannot wait on an un%-acquired lock", err)
    assert.has_error(function() asyncio.Condition(42) end,
      "bad argument #1 to 'Condition' (asyncio.Lock expected, got number)")
  end)
end)

describe("Barrier", function()
  after_each(support.assert_clean)

  it("releases all parties at once with distinct indices, round after round", function()
    local r = support.run(function()
      local b, log = asyncio.Barrier(3), {}
      local function party(name)
        for round = 1, 2 do
          log[#log + 1] = name .. round .. " arrives"
          local i = await(b:wait())
          log[#log + 1] = ("%s%d leaves %d"):format(name, round, i)
        end
      end
      local ts = {}
      for i, n in ipairs({"a", "b", "c"}) do ts[i] = asyncio.create_task(party, n) end
      await(asyncio.gather(table.unpack(ts)))
      return log
    end)
    -- nobody leaves round 1 before all three arrived
    local first_leave
    for i, l in ipairs(r) do if l:match("leaves") then first_leave = first_leave or i end end
    assert.equal(4, first_leave)
    local indices = {}
    for _, l in ipairs(r) do
      local round, i = l:match("(%d) leaves (%d)")
      if round == "1" then indices[#indices + 1] = tonumber(i) end
    end
    table.sort(indices)
    assert.same({0, 1, 2}, indices)
    assert.equal(12, #r)
  end)

  it("breaks waiters with abort, and stays broken", function()
    local r = support.run(function()
      local b = asyncio.Barrier(2)
      local t = asyncio.create_task(function() return await(b:wait()) end)
      ticks(2)
      assert.equal(1, b:n_waiting())
      b:abort()
      local broke = raises(asyncio.BrokenBarrierError, await, t)
      local again = raises(asyncio.BrokenBarrierError, await, b:wait())
      return {broke, again, b:broken()}
    end)
    assert.same({true, true, true}, r)
  end)

  it("breaks waiters with reset, then works again", function()
    local r = support.run(function()
      local b = asyncio.Barrier(2)
      local t = asyncio.create_task(function() return await(b:wait()) end)
      ticks(2)
      await(b:reset())
      local broke = raises(asyncio.BrokenBarrierError, await, t)
      local u = asyncio.create_task(function() return await(b:wait()) end)
      local mine = await(b:wait())
      return {broke, mine + await(u), b:broken()}
    end)
    assert.same({true, 1, false}, r)
  end)

  it("lets a cancelled waiter leave without breaking the barrier", function()
    local r = support.run(function()
      local b = asyncio.Barrier(2)
      local t = asyncio.create_task(function() return await(b:wait()) end)
      ticks(2)
      t:cancel()
      local c = raises(asyncio.CancelledError, await, t)
      return {c, b:n_waiting(), b:broken()}
    end)
    assert.same({true, 0, false}, r)
  end)

  it("checks its parties", function()
    assert.has_error(function() asyncio.Barrier(0) end,
      "bad argument #1 to 'Barrier' (parties must be a positive integer)")
    assert.equal(3, asyncio.Barrier(3).parties)
  end)
end)
