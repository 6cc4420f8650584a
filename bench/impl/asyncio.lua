-- bench/impl/asyncio.lua WORKLOAD N: the workloads for lua-asyncio.
-- Prints "elapsed <seconds> rss_kb <peak RSS>"; exits non-zero on a wrong answer.
local common = require "bench.common"
local asyncio = require "asyncio"
local await, sleep, gather, Queue = asyncio.await, asyncio.sleep, asyncio.gather, asyncio.Queue
local now = asyncio.monotonic

local W = {}

function W.W1(n)  -- spawn: n tasks, each sleep(0) once and returns its index
  local function job(i) await(sleep(0)); return i end
  return asyncio.run(function()
    local t0 = now()
    local tasks = {}
    for i = 1, n do tasks[i] = asyncio.create_task(job, i) end
    local r = await(gather(tasks))
    local dt = now() - t0
    local sum = 0
    for i = 1, r.n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2 and r.n == n, "W1 sum")
    return dt
  end)
end

function W.W2(n)  -- timers: n tasks sleep a seeded random delay in [0, 0.1]
  local delays = common.delays(n)
  local done = 0
  local function job(d) await(sleep(d)); done = done + 1 end
  return asyncio.run(function()
    local t0 = now()
    local tasks = {}
    for i = 1, n do tasks[i] = asyncio.create_task(job, delays[i]) end
    await(gather(tasks))
    local dt = now() - t0
    common.check(done == n, "W2 count")
    return dt
  end)
end

function W.W3(n)  -- queue: one producer, one consumer, maxsize 100
  return asyncio.run(function()
    local q = Queue(100)
    local t0 = now()
    local consumer = asyncio.create_task(function()
      local sum = 0
      for _ = 1, n do sum = sum + await(q:get()) end
      return sum
    end)
    for i = 1, n do await(q:put(i)) end
    local sum = await(consumer)
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2, "W3 sum")
    return dt
  end)
end

function W.W3b(n)  -- fan: 4 producers, 4 consumers, task_done and join
  return asyncio.run(function()
    local q = Queue(100)
    local sums = {0, 0, 0, 0}
    local t0 = now()
    local consumers = {}
    for c = 1, 4 do
      consumers[c] = asyncio.create_task(function()
        while true do
          sums[c] = sums[c] + await(q:get())
          q:task_done()
        end
      end)
    end
    local producers = {}
    for p = 1, 4 do
      producers[p] = asyncio.create_task(function()
        for i = p, n, 4 do await(q:put(i)) end
      end)
    end
    await(gather(table.unpack(producers)))
    await(q:join())
    local dt = now() - t0
    for c = 1, 4 do consumers[c]:cancel() end
    common.check(sums[1] + sums[2] + sums[3] + sums[4] == n * (n + 1) // 2, "W3b sum")
    return dt
  end)
end

function W.W4(n)  -- ping-pong: a token through two queues of maxsize 1
  return asyncio.run(function()
    local ping, pong = Queue(1), Queue(1)
    local t0 = now()
    local ponger = asyncio.create_task(function()
      for _ = 1, n do pong:put_nowait(await(ping:get()) + 1) end
    end)
    local v = 0
    for _ = 1, n do
      await(ping:put(v))
      v = await(pong:get())
    end
    await(ponger)
    local dt = now() - t0
    common.check(v == n, "W4 token")
    return dt
  end)
end

-- chains: n chains of three coroutine objects, each awaiting the next
-- (the chaining example at scale); the chains gathered from a list
function W.W5(n)
  local async = asyncio.async
  local part1 = async(function(i) await(sleep(0)); return i end)
  local part2 = async(function(x) await(sleep(0)); return x + 1 end)
  local chain = async(function(i) return await(part2(await(part1(i)))) end)
  return asyncio.run(function()
    local t0 = now()
    local chains = {}
    for i = 1, n do chains[i] = chain(i) end
    local r = await(gather(chains))
    local dt = now() - t0
    local sum = 0
    for i = 1, r.n do sum = sum + r[i] end
    common.check(sum == n * (n + 1) // 2 + n and r.n == n, "W5 sum")
    return dt
  end)
end

function W.W6(n)  -- memory: n tasks sleeping 1 s at once
  local done = 0
  local function job() await(sleep(1)); done = done + 1 end
  return asyncio.run(function()
    local t0 = now()
    local tasks = {}
    for i = 1, n do tasks[i] = asyncio.create_task(job) end
    await(gather(tasks))
    common.check(done == n, "W6 count")
    return now() - t0
  end)
end

-- a deadline per read: n items through a queue of maxsize 100, each read
-- with wait_for(q:get(), 1), as a server reads under a time limit
function W.W7(n)
  local wait_for = asyncio.wait_for
  return asyncio.run(function()
    local q = Queue(100)
    local t0 = now()
    local producer = asyncio.create_task(function()
      for i = 1, n do await(q:put(i)) end
    end)
    local sum = 0
    for _ = 1, n do sum = sum + await(wait_for(q:get(), 1)) end
    await(producer)
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2, "W7 sum")
    return dt
  end)
end

-- TCP echo: an echo server and 100 clients in this process; each client
-- sends n / 100 messages of 64 bytes, awaiting each echo before the next.
-- 'sopts' and 'copts' are the server's and the clients' options (W11: TLS).
local function echo(n, what, sopts, copts)
  local conns = 100
  local per = n // conns
  local msg = ("m"):rep(63) .. "\n"
  return asyncio.run(function()
    local srv = await(asyncio.start_server(function(r, w)
      while true do
        local data = await(r:read(65536))
        if data == "" then break end
        w:write(data)
        await(w:drain())
      end
    end, "127.0.0.1", 0, sopts))
    local port = srv:sockets()[1]:getsockname()[2]
    local t0 = now()
    local ok = 0
    local clients = {}
    for c = 1, conns do
      clients[c] = asyncio.create_task(function()
        local r, w = await(asyncio.open_connection("127.0.0.1", port, copts))
        for _ = 1, per do
          w:write(msg)
          if await(r:readexactly(64)) == msg then ok = ok + 1 end
        end
        w:close()
      end)
    end
    await(gather(clients))
    local dt = now() - t0
    srv:close()
    common.check(ok == conns * per, what)
    return dt
  end)
end

function W.W8(n) return echo(n, "W8 echoes") end

-- TLS echo: W8 over TLS with the certificate bench/run.lua makes in
-- build/bench/tls (the clients trust it and check the name "localhost")
function W.W11(n)
  local dir = "build/bench/tls/"
  local sctx = asyncio.ssl_context{mode = "server", certfile = dir .. "cert.pem", keyfile = dir .. "key.pem"}
  local cctx = asyncio.ssl_context{cafile = dir .. "cert.pem"}
  return echo(n, "W11 echoes", {ssl = sctx}, {ssl = cctx, server_hostname = "localhost"})
end

-- HTTP hello: a minimal keep-alive server on port n, until killed
-- HTTP hello on 'port' until killed; prints "listening" once it listens.
local function serve_hello(port)
  local resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
  local srv = await(asyncio.start_server(function(r, w)
    while true do
      local ok, req = pcall(await, r:readuntil("\r\n\r\n"))
      if not ok or req == "" then break end
      w:write(resp)
      await(w:drain())
    end
  end, "127.0.0.1", port, {reuse_port = true}))
  print("listening")
  io.stdout:flush()
  await(srv:serve_forever())
end

function W.W9(port)
  asyncio.run(serve_hello, port)
end

-- W9 on asyncio.cluster: k worker processes on one port (each says
-- "listening"; the driver's SIGTERM to the primary stops them all)
local function hello_workers(k)
  return function(port)
    os.exit(asyncio.cluster.run{workers = k, main = function() serve_hello(port) end})
  end
end
W.W9w1, W.W9w2 = hello_workers(1), hello_workers(2)

-- processes: n runs of /bin/true, 4 at a time
function W.W10(n)
  return asyncio.run(function()
    local t0 = now()
    local ok = 0
    local workers = {}
    for w = 1, 4 do
      workers[w] = asyncio.create_task(function()
        for _ = 1, n // 4 do
          local p = await(asyncio.create_subprocess_exec("/bin/true"))
          if await(p:wait()) == 0 then ok = ok + 1 end
        end
      end)
    end
    await(gather(workers))
    local dt = now() - t0
    common.check(ok == n // 4 * 4, "W10 exits")
    return dt
  end)
end

-- file copy: n MB in 64 KiB reads and writes (the source made beforehand)
function W.W12(n)
  local src, dst = common.make_file(n)
  local dt = asyncio.run(function()
    local t0 = now()
    local a <close> = await(asyncio.open_file(src))
    local b <close> = await(asyncio.open_file(dst, "w"))
    while true do
      local chunk = await(a:read(65536))
      if chunk == "" then break end
      await(b:write(chunk))
    end
    await(b:close())
    return now() - t0
  end)
  common.check_copy(src, dst, n)
  return dt
end

-- CPU work on worker threads: n calls of a pure-Lua loop (about 20 ms
-- each) on a pool of 'size' workers, all awaited at once
local function cpu_calls(n, size)
  local function work(k)
    local x = 0
    for i = 1, 2000000 do x = (x + i * k) % 1000003 end
    return x
  end
  return asyncio.run(function()
    local pool <close> = asyncio.worker_pool{size = size}
    await(pool:call(work, 0))  -- the workers' start is not the work's
    if size > 1 then await(gather(pool:call(work, 0), pool:call(work, 0))) end
    local t0 = now()
    local calls = {}
    for i = 1, n do calls[i] = pool:call(work, i % 7) end
    local r = await(gather(calls))
    local dt = now() - t0
    for i = 1, n do common.check(r[i] == work(i % 7), "W13 answer") end
    return dt
  end)
end
function W.W13(n) return cpu_calls(n, 2) end
function W.W13s(n) return cpu_calls(n, 1) end

-- to_thread round trips: n calls of a trivial function, one after another
function W.W14(n)
  local function inc(i) return i + 1 end
  return asyncio.run(function()
    await(asyncio.to_thread(inc, 0))  -- the default pool's first thread
    local t0 = now()
    local sum = 0
    for i = 1, n do sum = sum + await(asyncio.to_thread(inc, i)) end
    local dt = now() - t0
    common.check(sum == n * (n + 1) // 2 + n, "W14 sum")
    return dt
  end)
end

common.main(W, ...)
