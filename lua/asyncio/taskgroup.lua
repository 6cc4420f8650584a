-- taskgroup.lua: task_group(fn), structured concurrency. fn(tg) runs in
-- the awaiting task and spawns children with tg:create_task; the group
-- waits for all of them. The first failure cancels the rest (and fn, if it
-- is still running); the group then raises an ExceptionGroup of every
-- failure, not of the cancellations it caused (CPython's TaskGroup).

local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw

local CancelledError = errors.CancelledError
local await, current = task.await, task.current
local argcheck, typeerror, pack, unpack = util.argcheck, util.typeerror, util.pack, util.unpack

local TaskGroup = {__name = "asyncio.TaskGroup"}
TaskGroup.__index = TaskGroup

local function abort(tg)
  tg._aborting = true
  for t in pairs(tg._tasks) do if not t:done() then t:cancel() end end
end

-- Errors are counted in 'n': a child that raised nil leaves a hole.
local function add_error(tg, err)
  local list = tg._errors
  list.n = list.n + 1
  list[list.n] = err
end

local function on_task_done(tg, t)
  tg._tasks[t] = nil
  tg._ntasks = tg._ntasks - 1
  if tg._completed ~= nil and tg._ntasks == 0 and not tg._completed:done() then
    tg._completed:set_result()
  end
  if not t:failed() then return end  -- a success or a cancellation
  local err = t:exception()
  add_error(tg, err)
  if tg._parent:done() then
    tg._parent._loop:call_exception_handler({message = "task group child failed after its parent ended",
      exception = err, failed = true, task = t})
    return
  end
  if not tg._aborting and not tg._parent_cancel_requested then
    abort(tg)  -- stop the others and whatever fn is doing right now
    tg._parent_cancel_requested = true
    tg._parent:cancel()
  end
end

-- tg:create_task(coro_or_fn, ...): a child task of the group (a coroutine
-- object may be followed by {name = ...}, as create_task's).
function TaskGroup:create_task(what, ...)
  if getmetatable(self) ~= TaskGroup then
    raise(("bad argument #1 to 'create_task' (%s)"):format(typeerror("asyncio.TaskGroup", self)))
  end
  if self._exited then raise("TaskGroup.create_task: the task group is finished") end
  if self._aborting then raise("TaskGroup.create_task: the task group is shutting down") end
  local t = self._parent._loop:create_task(what, ...)
  self._tasks[t] = true
  self._ntasks = self._ntasks + 1
  local tg = self
  t:add_done_callback(function(done) on_task_done(tg, done) end)
  return t
end

-- The body of task_group: run fn(tg), then wait for the children.
local function run_group(fn, ...)
  local parent = current("task_group")
  task.check_wait()  -- it waits for its children: refused before fn spawns any
  local tg = setmetatable({_parent = parent, _tasks = {}, _ntasks = 0, _errors = {n = 0}}, TaskGroup)
  local r = pack(pcall(fn, tg, ...))
  local propagate  -- a CancelledError from outside, to raise at the end
  if not r[1] then
    if CancelledError:is(r[2]) then propagate = r[2] end
    if not tg._aborting then abort(tg) end  -- fn failed or we are cancelled
  end
  while tg._ntasks > 0 do
    tg._completed = Future._new(Future, parent._loop)
    tg._completed._what = "task group's children to finish"
    local ok, err = pcall(await, tg._completed)
    if not ok and CancelledError:is(err) and not tg._aborting then
      propagate = err  -- our parent is being cancelled: cancel the children
      abort(tg)
    end
    tg._completed = nil
  end
  tg._exited = true
  if tg._parent_cancel_requested and parent:uncancel() == 0 then
    propagate = nil  -- the only cancellation was ours, to stop fn
  end
  if propagate ~= nil and tg._errors.n == 0 then error(propagate, 0) end
  if not r[1] and not CancelledError:is(r[2]) then add_error(tg, r[2]) end
  if tg._errors.n > 0 then
    if parent:cancelling() > 0 then parent:uncancel(); parent:cancel() end
    throw(errors.ExceptionGroup("unhandled errors in a task group", tg._errors))
  end
  return unpack(r, 2, r.n)
end

-- task_group(fn, ...): a coroutine object; await it to run fn(tg, ...) in
-- the current task with a group of children. Returns fn's results.
local group = task.async(run_group)
task.label(run_group, "asyncio.task_group(...)")

local function task_group(fn, ...)
  argcheck(type(fn) == "function", 1, "task_group", typeerror("function", fn))
  return group(task.body_of(fn), ...)  -- (a tail call: the coroutine object is made at the caller's line)
end

return {task_group = task_group, TaskGroup = TaskGroup}
