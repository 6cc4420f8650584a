-- waiters.lua: the one machine behind every place where several tasks wait
-- for one event (the readers of a stream, drain, wait_closed, a process's
-- exit, a busy File): a FIFO list of waiters, each waiting on a future of
-- its own. wake_all resolves them in order and each re-checks what it
-- waits for; cancelling a waiter cancels its own future and removes it,
-- and nobody else. (A future shared by all the waiters would let one
-- waiter's timeout cancel them all.)

local Future = require "asyncio.future"
local task = require "asyncio.task"

local PENDING = Future.PENDING
local pcall, error = pcall, error
local await = task.await

local M = {}

-- Suspend task 't' until wake_all(list). 'what' names the wait in task
-- dumps ("read on a stream"). Cancelled: only this waiter is removed.
function M.wait(list, t, what)
  task.check_wait()
  local f = Future._new(Future, t._loop)
  f._what = what
  list[#list + 1] = f
  local ok, err = pcall(await, f)
  if not ok then
    for i = 1, #list do
      if list[i] == f then table.remove(list, i) break end
    end
    error(err, 0)
  end
end

-- Wake every waiter of 'list', first come first woken, and empty it.
function M.wake_all(list)
  for i = 1, #list do
    local f = list[i]
    list[i] = nil
    if f._state == PENDING then f:set_result() end
  end
end

-- A turn: one holder at a time, handed on in arrival order. 'turn' is a
-- list of waiters with a field 'busy'. acquire returns once 't' holds the
-- turn; release hands it straight to the first waiter still waiting, so
-- a holder that asks again goes behind the others (a wake_all would let
-- it take the turn again before they run). A waiter cancelled, or closed
-- by hand (Future:_abandon), after it was handed the turn passes it on.
local function remove(list, f)
  for i = 1, #list do
    if list[i] == f then table.remove(list, i) return end
  end
end

function M.release(turn)
  while turn[1] do
    local f = table.remove(turn, 1)
    if f._state == PENDING then f:set_result() return end  -- 'busy' stays: handed on
  end
  turn.busy = false
end

local function abandoned(f)
  local turn = f._turn
  remove(turn, f)
  if f._state ~= PENDING and not f:cancelled() then M.release(turn) end
end

function M.acquire(turn, t, what)
  if not turn.busy then
    turn.busy = true
    return
  end
  local f = Future._new(Future, t._loop)
  f._what, f._turn, f._on_abandon = what, turn, abandoned
  turn[#turn + 1] = f
  local ok, err = pcall(await, f)
  if not ok then
    abandoned(f)  -- handed the turn before the cancellation landed: pass it on
    error(err, 0)
  end
end

-- For an object whose C side holds one waiting task per event: the first
-- task waits in C, through c_wait(a, b, c) (which must not raise), and the
-- others wait in 'list' until it wakes. Returns c_wait's results to the
-- task that waited in C, nothing to the others: either way the caller
-- asks the object again.
function M.wait_c(list, t, what, c_wait, a, b, c)
  if list.busy then return M.wait(list, t, what) end
  list.busy = true
  local r, msg = c_wait(a, b, c)
  list.busy = false
  M.wake_all(list)
  return r, msg
end

return M
