-- bench/impl/luv.lua WORKLOAD N: the workloads for Lua 5.4 + luv, with the
-- small coroutine adapter a luv user writes: a ready list drained by an
-- idle handle, sleep on a uv timer per sleeper, a queue of waiting coroutines.
local common = require "bench.common"
local uv = require "luv"
local cocreate, resume, yield, running = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.running
local function now() return uv.hrtime() / 1e9 end

-- the adapter ----------------------------------------------------------------
local ready, head, tail = {}, 1, 0
local idle = uv.new_idle()
local idling = false
local function drain()
  while head <= tail do
    local co = ready[head]
    ready[head] = nil
    head = head + 1
    local ok, err = resume(co)
    if not ok then error(err) end
  end
  idle:stop()
  idling = false
end
local function wake(co)
  tail = tail + 1
  ready[tail] = co
  if not idling then idling = true; idle:start(drain) end
end
local function spawn(fn) local co = cocreate(fn); wake(co); return co end
local function sleep(d)
  local co, t = running(), uv.new_timer()
  t:start(math.floor(d * 1000 + 0.5), 0, function() t:close(); wake(co) end)
  yield()
end
local function pass() wake(running()); yield() end

local function gather(fns)
  local results, left, waiter = {}, #fns, running()
  for i, fn in ipairs(fns) do
    spawn(function()
      results[i] = fn()
      left = left - 1
      if left == 0 then wake(waiter) end
    end)
  end
  yield()
  return results
end

local function run(fn)
  local dt
  spawn(function() dt = fn() end)
  uv.run()
  return dt
end

local Queue = {}
Queue.__index = Queue
local function new_queue(maxsize)
  return setmetatable({items = {}, first = 1, last = 0, max = maxsize,
    getters = {}, putters = {}, unfinished = 0, joiners = {}}, Queue)
end
local function wake_first(list)
  local co = table.remove(list, 1)
  if co then wake(co) end
end
function Queue:put(x)
  while self.last - self.first + 1 >= self.max do
    self.putters[#self.putters + 1] = running()
    yield()
  end
  self.last = self.last + 1
  self.items[self.last] = x
  self.unfinished = self.unfinished + 1
  wake_first(self.getters)
end
function Queue:get()
  while self.last < self.first do
    self.getters[#self.getters + 1] = running()
    yield()
  end
  local x = self.items[self.first]
  self.items[self.first] = nil
  self.first = self.first + 1
  wake_first(self.putters)
  return x
end
-- get with a time limit: a uv timer armed for the read, closed after it
function Queue:get_within(s)
  if self.last >= self.first then return self:get() end
  local co, expired = running(), false
  local t = uv.new_timer()
  t:start(math.floor(s * 1000 + 0.5), 0, function()
    expired = true
    for i, g in ipairs(self.getters) do
      if g == co then table.remove(self.getters, i) break end
    end
    wake(co)
  end)
  while self.last < self.first and not expired do
    self.getters[#self.getters + 1] = co
    yield()
  end
  t:stop()
  t:close()
  if expired then error("timed out") end
  return self:get()
end
function Queue:task_done()
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then
    for _, co in ipairs(self.joiners) do wake(co) end
    self.joiners = {}
  end
end
function Queue:join()
  if self.unfinished > 0 then
    self.joiners[#self.joiners + 1] = running()
    yield()
  end
end

-- the workloads --------------------------------------------------------------
local W = {}

function W.W1(n)
  return run(function()
    local t0 = now()
    local fns = {}
    for i = 1, n do fns[i] = function() pass(); return i end end
    local r = gather(fns)
    local dt = now() - t0
    local sum = 0
    for i = 1, n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2, "W1 sum")
    return dt
  end)
end

local function sleepers(n, delay_of, what)
  return run(function()
    local t0 = now()
    local fns, done = {}, 0
    for i = 1, n do fns[i] = function() sleep(delay_of(i)); done = done + 1 end end
    gather(fns)
    local dt = now() - t0
    common.check(done == n, what)
    return dt
  end)
end

function W.W2(n)
  local delays = common.delays(n)
  return sleepers(n, function(i) return delays[i] end, "W2 count")
end

function W.W6(n) return sleepers(n, function() return 1 end, "W6 count") end

function W.W3(n)
  return run(function()
    local q = new_queue(100)
    local t0 = now()
    local r = gather({
      function() for i = 1, n do q:put(i) end end,
      function() local sum = 0; for _ = 1, n do sum = sum + q:get() end; return sum end,
    })
    local dt = now() - t0
    common.check(r[2] == n * (n + 1) // 2, "W3 sum")
    return dt
  end)
end

function W.W3b(n)
  return run(function()
    local q, sum, finished = new_queue(100), 0, false
    local t0 = now()
    for _ = 1, 4 do
      spawn(function()
        while not finished do
          local x = q:get()  -- read sum only after get: other consumers run meanwhile
          sum = sum + x
          q:task_done()
        end
      end)
    end
    local producers = {}
    for p = 1, 4 do producers[p] = function() for i = p, n, 4 do q:put(i) end end end
    gather(producers)
    q:join()
    finished = true  -- the consumers stay parked on get; uv.run ends anyway
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2, "W3b sum")
    return dt
  end)
end

function W.W4(n)
  return run(function()
    local ping, pong, v = new_queue(1), new_queue(1), 0
    local t0 = now()
    spawn(function() for _ = 1, n do pong:put(ping:get() + 1) end end)
    for _ = 1, n do
      ping:put(v)
      v = pong:get()
    end
    local dt = now() - t0
    common.check(v == n, "W4 token")
    return dt
  end)
end

function W.W5(n)
  local function part1(i) pass(); return i end
  local function part2(x) pass(); return x + 1 end
  return run(function()
    local t0 = now()
    local fns = {}
    for i = 1, n do fns[i] = function() return part2(part1(i)) end end
    local r = gather(fns)
    local dt = now() - t0
    local sum = 0
    for i = 1, n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2 + n, "W5 sum")
    return dt
  end)
end

function W.W7(n)
  return run(function()
    local q = new_queue(100)
    local t0 = now()
    local sum = 0
    local r = gather({
      function() for i = 1, n do q:put(i) end end,
      function() for _ = 1, n do sum = sum + q:get_within(1) end end,
    })
    local dt = now() - t0
    common.check(r and sum == n * (n + 1) // 2, "W7 sum")
    return dt
  end)
end

-- W8 on plain luv callbacks, as luv users write network code: an echo
-- server and 100 clients, each waiting for its 64-byte echo before the next
function W.W8(n)
  local conns, per = 100, n // 100
  local msg = ("m"):rep(63) .. "\n"
  local server = uv.new_tcp()
  server:bind("127.0.0.1", 0)
  server:listen(128, function()
    local s = uv.new_tcp()
    server:accept(s)
    s:nodelay(true)
    s:read_start(function(err, data)
      if data then s:write(data) else s:close() end
      assert(not err, err)
    end)
  end)
  local port = server:getsockname().port
  local ok, finished = 0, 0
  local t0 = now()
  local dt
  for _ = 1, conns do
    local c = uv.new_tcp()
    local sent, buf = 0, ""
    c:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      c:nodelay(true)
      sent = 1
      c:write(msg)
      c:read_start(function(rerr, data)
        assert(not rerr, rerr)
        if not data then return end
        buf = buf .. data
        while #buf >= 64 do
          if buf:sub(1, 64) == msg then ok = ok + 1 end
          buf = buf:sub(65)
          if sent < per then
            sent = sent + 1
            c:write(msg)
          else
            c:close()
            finished = finished + 1
            if finished == conns then dt = now() - t0; server:close() end
          end
        end
      end)
    end)
  end
  uv.run()
  common.check(ok == conns * per, "W8 echoes")
  return dt
end

common.main(W, ...)
