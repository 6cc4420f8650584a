-- timeouts.lua: timeout, wait_for, wait, as_completed and shield. A time
-- limit cancels the current task when it expires and turns that very
-- cancellation into TimeoutError at its own boundary, so nested limits and
-- cancellations from outside keep their meaning (CPython 3.12+ semantics).

local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw

local CancelledError, TimeoutError = errors.CancelledError, errors.TimeoutError
local await, current, async = task.await, task.current, task.async
local argcheck, typeerror, pack, unpack = util.argcheck, util.typeerror, util.pack, util.unpack
local isyieldable = coroutine.isyieldable
local getmetatable = require("asyncio.core").metatable  -- raw, and cheaper than Lua's

local M = {}

local function checkfn(fn, n, fname)
  argcheck(type(fn) == "function", n, fname, typeerror("function", fn))
end

-- Run fn(...) in the current task under a deadline 'delay' seconds away.
local function run_with_timeout(delay, fn, ...)
  if delay == nil then return fn(...) end
  local t = current("timeout")
  local baseline = t:cancelling()
  local expired = false
  local function expire()
    expired = true
    t:cancel()
  end
  -- a deadline already due cancels at the first suspension point: a
  -- callback queued now runs before any wake-up of this task (CPython)
  local handle = delay <= 0 and t._loop:call_soon(expire) or t._loop:call_later(delay, expire)
  local r = pack(pcall(fn, ...))
  handle:cancel()
  if expired then
    -- our own cancellation becomes TimeoutError; one from outside stays
    if t:uncancel() <= baseline and not r[1] and CancelledError:is(r[2]) then
      throw(TimeoutError())
    end
  end
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- timeout(delay, fn, ...): a coroutine object running fn(...) in the
-- awaiting task; TimeoutError if 'delay' seconds pass first (nil: no limit).
local with_timeout = async(run_with_timeout)
task.label(run_with_timeout, "asyncio.timeout(...)")

function M.timeout(delay, fn, ...)
  util.checkdelay(delay, 1, "timeout", true)
  checkfn(fn, 2, "timeout")
  return with_timeout(delay, task.body_of(fn), ...)  -- (a tail call: made at the caller's line)
end

-- wait_for(aw, timeout) is an object of its own rather than a coroutine
-- object: one array per call, a timer slot in the C core, and no closure,
-- since servers put a time limit on every read. Its slots:
local AW, TIMEOUT, TASK, EXPIRED, OVER, NOW = 1, 2, 3, 4, 5, 6
local WaitFor = {__name = "asyncio.wait_for"}

-- The deadline of wait_for 'w' passed: cancel its task (unless it is over).
local function expire(w)
  if w[OVER] then return end
  w[EXPIRED] = true
  w[TASK]:cancel()
end

-- The inner await of 'w' ended with pcall's 'ok, ...': its results, its
-- error, or TimeoutError if our own cancellation ended it.
local function wait_for_end(w, t, baseline, timer, ok, ...)
  w[OVER] = true
  if timer then t._loop._core:untimer(timer) end
  if w[EXPIRED] and t:uncancel() <= baseline and not ok and CancelledError:is((...)) then
    throw(TimeoutError())
  end
  if not ok then error((...), 0) end
  return ...
end

-- A time limit already up (<= 0), as CPython's wait_for: 'aw' becomes a
-- task that is cancelled before it can start (a future done already gives
-- its result): TimeoutError unless it is done. An awaitable that stands
-- for something done already (a put that went through at once) gives its
-- results: saying it timed out would hide what happened. The end of the
-- cancelled task is awaited through a future of our own: a cancellation
-- of this task from outside meanwhile cancels that one and is raised here
-- (awaited directly, the task being cancelled would take it in).
-- Can 'aw' be awaited without a wait (a done awaitable or future)?
local function done_already(aw)
  if task.isdone(aw) then return true end
  local mt = getmetatable(aw)
  return type(mt) == "table" and mt.__isfuture == true and aw:done()
end

local function wait_expired(aw)
  if task.isdone(aw) then return await(aw) end
  local fut = task.ensure_future(aw, "wait_for", 1)
  task.check_same_loop(fut, rt.current._loop, "wait_for")  -- before it is cancelled
  if not fut:done() then
    fut:cancel()
    local ended = Future._new(Future, fut._loop or rt.loop)
    -- given up on (this task was cancelled): the CancelledError we asked
    -- it for is no news, and is not reported as never retrieved
    local function quiet(f)
      if f._failed and CancelledError:is(f._exc) then f._guard = nil end
    end
    fut:add_done_callback(function(f)
      if ended:done() then quiet(f) else ended:set_result() end
    end)
    local ok, err = pcall(await, ended)
    if not ok then
      if fut:done() then quiet(fut) end
      error(err, 0)
    end
  end
  local r = pack(pcall(fut.result, fut))
  if not r[1] then
    if CancelledError:is(r[2]) then throw(TimeoutError()) end
    error(r[2], 0)
  end
  return unpack(r, 2, r.n)
end

-- Where the task cannot wait (isyieldable first: it is one C call), refuse
-- before anything is set up for 'aw' (a task, a timer), unless it is done;
-- the error says what became of 'aw': it is not reported later.
local function check_wait_for(aw)
  if not isyieldable() and not done_already(aw) then
    task.forgo(aw)
    task.check_wait()
  end
end

function WaitFor.__await(w)
  if w[TASK] then raise("await: this wait_for was already awaited") end
  local aw, timeout = w[AW], w[TIMEOUT]
  if not timeout then  -- a plain await, which checks for itself
    w[TASK] = true
    return await(aw)
  end
  if timeout <= 0 then
    check_wait_for(aw)
    w[TASK] = true
    return wait_expired(aw)
  end
  local now = w[NOW]
  if now then  -- a get that finds its item never waits: no timer to arm
    local done, item = now(aw)
    if done then
      w[TASK] = true
      return item
    end
  end
  check_wait_for(aw)
  local t = rt.current  -- await checked that a task runs
  w[TASK] = t
  local timer = t._loop._core:timer(timeout, expire, w)  -- (a limit <= 0 returned above)
  return wait_for_end(w, t, t._num_cancels_requested or 0, timer, pcall(await, aw))
end
task.register_awaitable(WaitFor)

-- The metatables of awaitables seen by wait_for (weak) -> their __now, or
-- false if none: one lookup per call, since servers put a time limit on
-- every read. __now(aw) says at once whether 'aw' is done already (true,
-- results), as a queue's get that finds its item, so that no timer is armed.
local now_of = setmetatable({}, {__mode = "k"})

-- wait_for(aw, timeout): await 'aw' for at most 'timeout' seconds; on
-- expiry 'aw' is cancelled and TimeoutError raised. nil: no limit.
local valid_timeout = 0  -- the last time limit seen to be a number: the same needs no call

function M.wait_for(aw, timeout)
  if timeout ~= valid_timeout then
    if timeout ~= tonumber(timeout) then util.checkdelay(timeout, 2, "wait_for", true) end  -- not a number
    if timeout ~= nil then valid_timeout = timeout end
  end
  local mt = getmetatable(aw)
  local now = now_of[mt]
  if now == nil then
    argcheck(task.isawaitable(aw), 1, "wait_for", typeerror("awaitable", aw))
    now = type(mt) == "table" and rawget(mt, "__now") or false
    now_of[mt] = now
  end
  return setmetatable({aw, timeout or false, false, false, false, now}, WaitFor)
end

local RETURN_WHEN = {FIRST_COMPLETED = true, FIRST_EXCEPTION = true, ALL_COMPLETED = true}

-- The futures of list 'fs' for 'fname'. wait refuses coroutine objects,
-- as CPython does since 3.11 (they would run without anyone holding their
-- task); as_completed wraps them in tasks, as CPython does.
local function futures_of(fs, fname, wrap_coroutines)
  argcheck(type(fs) == "table" and getmetatable(fs) == nil, 1, fname,
    typeerror("list of futures", fs))
  local list, seen = {}, {}
  for i = 1, #fs do
    local f = fs[i]
    if not wrap_coroutines and task.iscoroutine(f) then
      raise(("bad argument #1 to '%s' (coroutine objects are not accepted: create tasks for them)")
        :format(fname))
    end
    f = task.ensure_future(f, fname, 1)
    if not seen[f] then seen[f] = true; list[#list + 1] = f end
  end
  return list
end

-- The body of wait(list): wait until 'when' holds for the futures of 'list'
-- or 'timeout' seconds pass; done, pending.
local function wait_body(list, timeout, when)
  task.check_wait()  -- the waiter below is always waited for
  local loop = list[1]._loop or rt.loop
  local waiter = Future._new(Future, loop)
  local handle
  if timeout ~= nil then
    handle = loop:call_later(timeout, function() if not waiter:done() then waiter:set_result() end end)
  end
  local counter = #list
  local function on_completion(f)
    counter = counter - 1
    if counter <= 0 or when == "FIRST_COMPLETED" or
       (when == "FIRST_EXCEPTION" and f._failed) then
      if handle then handle:cancel() end
      if not waiter:done() then waiter:set_result() end
    end
  end
  for _, f in ipairs(list) do f:add_done_callback(on_completion) end
  local ok, err = pcall(await, waiter)
  if handle then handle:cancel() end
  for _, f in ipairs(list) do f:remove_done_callback(on_completion) end
  if not ok then error(err, 0) end
  local done, pending = {}, {}
  for _, f in ipairs(list) do
    if f:done() then done[f] = true else pending[f] = true end
  end
  return done, pending
end
local wait_async = async(wait_body)
task.label(wait_body, "asyncio.wait(...)")

-- wait(list, {timeout=, return_when=}): an awaitable giving done, pending as
-- sets {[fut] = true}. Nothing is cancelled when the time runs out.
function M.wait(fs, opts)
  opts = util.checkopts(opts, {timeout = true, return_when = true}, 2, "wait")
  local timeout = util.checkdelay(opts.timeout, 2, "wait", true)
  local when = opts.return_when or "ALL_COMPLETED"
  argcheck(RETURN_WHEN[when], 2, "wait", "return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED")
  local list = futures_of(fs, "wait")
  argcheck(#list > 0, 1, "wait", "list of futures is empty")
  return wait_async(list, timeout, when)  -- (a tail call: made at the caller's line)
end

-- as_completed(list, {timeout=}): an iterator of awaitables; awaiting the
-- i-th gives the results of the i-th future to finish (or raises its
-- error, or TimeoutError once the time is up).
function M.as_completed(fs, opts)
  opts = util.checkopts(opts, {timeout = true}, 2, "as_completed")
  local timeout = util.checkdelay(opts.timeout, 2, "as_completed", true)
  local list = futures_of(fs, "as_completed", true)
  local finished, waiters, timed_out = {}, {}, false
  local ndone, timer = 0, nil
  local function wake_one()
    local w = table.remove(waiters, 1)
    while w and w:done() do w = table.remove(waiters, 1) end
    if w then w:set_result() end
  end
  local function on_completion(f)
    if timed_out then return end
    finished[#finished + 1] = f
    ndone = ndone + 1
    if ndone == #list and timer then timer:cancel() end  -- all in: no time limit left to keep
    wake_one()
  end
  for _, f in ipairs(list) do f:add_done_callback(on_completion) end
  local loop = (list[1] and list[1]._loop) or rt.loop
  if timeout ~= nil and #list > 0 then
    timer = loop:call_later(timeout, function()
      timed_out = true
      for _, f in ipairs(list) do f:remove_done_callback(on_completion) end
      while #waiters > 0 do wake_one() end
    end)
  end
  local Next = {__name = "asyncio.as_completed", __await = function(self)
    -- each takes one result: awaited again, it would take another's
    if self[1] then raise("await: this as_completed awaitable was already awaited") end
    self[1] = true
    while #finished == 0 and not timed_out do
      task.check_wait()  -- before the waiter is listed
      local w = Future._new(Future, loop)
      waiters[#waiters + 1] = w
      await(w)
    end
    local f = table.remove(finished, 1)
    if f == nil then throw(TimeoutError()) end
    return f:result()
  end}
  local i = 0
  return function()
    i = i + 1
    if i > #list then return nil end
    return setmetatable({}, Next)
  end
end

-- shield(aw): a future that follows 'aw' but whose cancellation does not
-- reach 'aw'.
function M.shield(aw)
  local inner = task.ensure_future(aw, "shield", 1)
  if inner:done() then return inner end
  local outer = Future._new(Future, inner._loop)
  local function inner_done(f)
    if outer:cancelled() then
      if not f:cancelled() then f:exception() end  -- retrieved: no report
      return
    end
    if f:cancelled() then outer:cancel()
    elseif f._failed then outer:_set_exception(f:exception(), f._tb)
    else outer:set_result(f:result()) end
  end
  inner:add_done_callback(inner_done)
  outer:add_done_callback(function()
    if not inner:done() then inner:remove_done_callback(inner_done) end
  end)
  return outer
end

return M
