-- bench/impl/bare.lua WORKLOAD N: the floor. A bare Lua 5.4 round-robin
-- scheduler over coroutine.create, with a Lua ring-buffer queue: no timers,
-- no libuv, no error handling beyond what Lua does. W1, W3, W3b, W4 and W5 only.
local common = require "bench.common"
local cocreate, resume, yield, running = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.running
local now = os.clock  -- CPU time; this program never waits

-- the ready ring
local ready, head, tail = {}, 1, 0
local function wake(co) tail = tail + 1; ready[tail] = co end
local function spawn(fn, ...)
  local args = table.pack(...)
  local co = cocreate(function() return fn(table.unpack(args, 1, args.n)) end)
  wake(co)
  return co
end
local function run()
  while head <= tail do
    local co = ready[head]
    ready[head] = nil
    head = head + 1
    local ok, err = resume(co)
    if not ok then error(err) end
  end
end
local function pass() wake(running()); yield() end

-- a bounded FIFO queue: ring buffer plus waiting getters and putters
local Queue = {}
Queue.__index = Queue
local function new_queue(maxsize)
  return setmetatable({items = {}, first = 1, last = 0, max = maxsize,
    getters = {}, gfirst = 1, glast = 0, putters = {}, pfirst = 1, plast = 0,
    unfinished = 0, joiners = {}}, Queue)
end
function Queue:put(x)
  while self.last - self.first + 1 >= self.max do
    self.plast = self.plast + 1
    self.putters[self.plast] = running()
    yield()
  end
  self.last = self.last + 1
  self.items[self.last] = x
  self.unfinished = self.unfinished + 1
  if self.gfirst <= self.glast then
    local g = self.getters[self.gfirst]
    self.getters[self.gfirst] = nil
    self.gfirst = self.gfirst + 1
    wake(g)
  end
end
function Queue:get()
  while self.last < self.first do
    self.glast = self.glast + 1
    self.getters[self.glast] = running()
    yield()
  end
  local x = self.items[self.first]
  self.items[self.first] = nil
  self.first = self.first + 1
  if self.pfirst <= self.plast then
    local p = self.putters[self.pfirst]
    self.putters[self.pfirst] = nil
    self.pfirst = self.pfirst + 1
    wake(p)
  end
  return x
end
function Queue:task_done()
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then
    for i = 1, #self.joiners do wake(self.joiners[i]) end
    self.joiners = {}
  end
end
function Queue:join()
  if self.unfinished > 0 then
    self.joiners[#self.joiners + 1] = running()
    yield()
  end
end

local W = {}

function W.W1(n)
  local results, left, main = {}, n, nil
  local t0 = now()
  main = spawn(function()
    for i = 1, n do
      spawn(function()
        pass()
        results[i] = i
        left = left - 1
        if left == 0 then wake(main) end
      end)
    end
    yield()
  end)
  run()
  local dt = now() - t0
  local sum = 0
  for i = 1, n do sum = sum + results[i] end
  common.check(sum == n * (n + 1) // 2, "W1 sum")
  return dt
end

function W.W3(n)
  local q, sum = new_queue(100), 0
  local t0 = now()
  spawn(function() for i = 1, n do q:put(i) end end)
  spawn(function() for _ = 1, n do sum = sum + q:get() end end)
  run()
  local dt = now() - t0
  common.check(sum == n * (n + 1) // 2, "W3 sum")
  return dt
end

function W.W3b(n)
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
  local producing, joiner = 4, nil
  for p = 1, 4 do
    spawn(function()
      for i = p, n, 4 do q:put(i) end
      producing = producing - 1
      if producing == 0 then wake(joiner) end
    end)
  end
  joiner = spawn(function()
    yield()  -- until the last producer is done
    q:join()
    finished = true  -- the consumers stay parked on get: the program ends
  end)
  run()
  local dt = now() - t0
  common.check(finished and sum == n * (n + 1) // 2, "W3b sum")
  return dt
end

function W.W4(n)
  local ping, pong, v = new_queue(1), new_queue(1), 0
  local t0 = now()
  spawn(function() for _ = 1, n do pong:put(ping:get() + 1) end end)
  spawn(function()
    for _ = 1, n do
      ping:put(v)
      v = pong:get()
    end
  end)
  run()
  local dt = now() - t0
  common.check(v == n, "W4 token")
  return dt
end

function W.W5(n)
  local function part1(i) pass(); return i end
  local function part2(x) pass(); return x + 1 end
  local results, left, main = {}, n, nil
  local t0 = now()
  main = spawn(function()
    for i = 1, n do
      spawn(function()
        results[i] = part2(part1(i))
        left = left - 1
        if left == 0 then wake(main) end
      end)
    end
    yield()
  end)
  run()
  local dt = now() - t0
  local sum = 0
  for i = 1, n do sum = sum + results[i] end
  common.check(sum == n * (n + 1) // 2 + n, "W5 sum")
  return dt
end

common.main(W, ...)
