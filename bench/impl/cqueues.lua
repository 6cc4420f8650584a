-- bench/impl/cqueues.lua WORKLOAD N: the workloads for Lua 5.4 + cqueues,
-- written as cqueues users write them: cq:wrap for tasks, cqueues.sleep,
-- and a queue built on cqueues.condition.
local common = require "bench.common"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local now, sleep = cqueues.monotime, cqueues.sleep

local Queue = {}
Queue.__index = Queue
local function new_queue(maxsize)
  return setmetatable({items = {}, first = 1, last = 0, max = maxsize,
    nonempty = condition.new(), nonfull = condition.new(),
    unfinished = 0, alldone = condition.new()}, Queue)
end
function Queue:put(x)
  while self.last - self.first + 1 >= self.max do self.nonfull:wait() end
  self.last = self.last + 1
  self.items[self.last] = x
  self.unfinished = self.unfinished + 1
  self.nonempty:signal(1)
end
function Queue:get()
  while self.last < self.first do self.nonempty:wait() end
  local x = self.items[self.first]
  self.items[self.first] = nil
  self.first = self.first + 1
  self.nonfull:signal(1)
  return x
end
-- get with a time limit: condition:wait(timeout) is cqueues' own
function Queue:get_within(s)
  local deadline = now() + s
  while self.last < self.first do
    local left = deadline - now()
    if left <= 0 then error("timed out") end
    self.nonempty:wait(left)
  end
  return self:get()
end
function Queue:task_done()
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then self.alldone:signal() end
end
function Queue:join()
  while self.unfinished > 0 do self.alldone:wait() end
end

local function run(fn)
  local cq = cqueues.new()
  local dt
  cq:wrap(function() dt = fn(cq) end)
  assert(cq:loop())
  return dt
end

-- gather: wrap every function, wait until all are done; results in order
local function gather(cq, fns)
  local results, left, done = {}, #fns, condition.new()
  for i, fn in ipairs(fns) do
    cq:wrap(function()
      results[i] = fn()
      left = left - 1
      if left == 0 then done:signal() end
    end)
  end
  while left > 0 do done:wait() end
  return results
end

local W = {}

function W.W1(n)
  return run(function(cq)
    local t0 = now()
    local fns = {}
    for i = 1, n do fns[i] = function() sleep(0); return i end end
    local r = gather(cq, fns)
    local dt = now() - t0
    local sum = 0
    for i = 1, n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2, "W1 sum")
    return dt
  end)
end

local function sleepers(n, delay_of, what)
  return run(function(cq)
    local t0 = now()
    local fns, done = {}, 0
    for i = 1, n do fns[i] = function() sleep(delay_of(i)); done = done + 1 end end
    gather(cq, fns)
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
  return run(function(cq)
    local q = new_queue(100)
    local t0 = now()
    local r = gather(cq, {
      function() for i = 1, n do q:put(i) end end,
      function() local sum = 0; for _ = 1, n do sum = sum + q:get() end; return sum end,
    })
    local dt = now() - t0
    common.check(r[2] == n * (n + 1) // 2, "W3 sum")
    return dt
  end)
end

function W.W3b(n)
  return run(function(cq)
    local q, sum, finished = new_queue(100), 0, false
    local t0 = now()
    for _ = 1, 4 do
      cq:wrap(function()
        while not finished do
          local x = q:get()  -- read sum only after get: other consumers run meanwhile
        sum = sum + x
          q:task_done()
        end
      end)
    end
    local producers = {}
    for p = 1, 4 do producers[p] = function() for i = p, n, 4 do q:put(i) end end end
    gather(cq, producers)
    q:join()
    finished = true
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2, "W3b sum")
    -- the consumers are parked on get: put one dummy item each to end them
    for _ = 1, 4 do q:put(0) end
    return dt
  end)
end

function W.W4(n)
  return run(function(cq)
    local ping, pong, v = new_queue(1), new_queue(1), 0
    local t0 = now()
    cq:wrap(function() for _ = 1, n do pong:put(ping:get() + 1) end end)
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
  local function part1(i) sleep(0); return i end
  local function part2(x) sleep(0); return x + 1 end
  return run(function(cq)
    local t0 = now()
    local fns = {}
    for i = 1, n do fns[i] = function() return part2(part1(i)) end end
    local r = gather(cq, fns)
    local dt = now() - t0
    local sum = 0
    for i = 1, n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2 + n, "W5 sum")
    return dt
  end)
end

function W.W7(n)
  return run(function(cq)
    local q = new_queue(100)
    local t0 = now()
    local sum = 0
    gather(cq, {
      function() for i = 1, n do q:put(i) end end,
      function() for _ = 1, n do sum = sum + q:get_within(1) end end,
    })
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2, "W7 sum")
    return dt
  end)
end

-- W8 with cqueues.socket: an echo server and 100 clients, each waiting
-- for its 64-byte echo before the next
function W.W8(n)
  local socket = require "cqueues.socket"
  local conns, per = 100, n // 100
  local msg = ("m"):rep(63) .. "\n"
  return run(function(cq)
    local srv = socket.listen("127.0.0.1", 0)
    srv:listen()
    local _, _, port = srv:localname()
    cq:wrap(function()  -- ends with an error when srv closes
      pcall(function() for con in srv:clients() do
        cq:wrap(function()
          con:setmode("b", "bn")
          while true do
            local data = con:xread(-65536)
            if not data then break end
            con:write(data)
            con:flush()
          end
          con:close()
        end)
      end end)
    end)
    local ok = 0
    local t0 = now()
    local fns = {}
    for c = 1, conns do
      fns[c] = function()
        local con = socket.connect("127.0.0.1", port)
        con:setmode("b", "bn")
        for _ = 1, per do
          con:write(msg)
          con:flush()
          if con:read(64) == msg then ok = ok + 1 end
        end
        con:close()
      end
    end
    gather(cq, fns)
    local dt = now() - t0
    srv:close()
    common.check(ok == conns * per, "W8 echoes")
    return dt
  end)
end

common.main(W, ...)
