-- bench/run.lua: run every workload on lua-asyncio and its peers, in one
-- run, alternating, several rounds; print the medians and the ratios.
--   lua5.4 bench/run.lua [--rounds N] [--only W1,W3] [--smoke]
-- --smoke runs tiny sizes once: it checks every program's answer, not speed.

local ROOT_LUA = 'LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;" '

local RUNTIMES = {
  {id = "asyncio", title = "lua-asyncio", cmd = ROOT_LUA .. "lua5.4 bench/impl/asyncio.lua"},
  {id = "python", title = "Python asyncio", cmd = "python3 bench/impl/python.py", probe = "python3 -c 1",
   skip = {W12 = true}},
  {id = "node", title = "Node.js", cmd = "node bench/impl/node.js", probe = "node -e 0"},
  {id = "cqueues", title = "cqueues", cmd = ROOT_LUA .. "lua5.4 bench/impl/cqueues.lua",
   probe = "lua5.4 -e 'require \"cqueues\"'", skip = {W9 = true, W10 = true, W11 = true, W12 = true}},
  {id = "luahttp", title = "lua-http (5.1)", cmd = "lua5.1 bench/impl/luahttp.lua",
   probe = "lua5.1 -e 'require \"http.server\"'", only = {W9 = true}},
  {id = "luv", title = "luv", cmd = ROOT_LUA .. "lua5.4 bench/impl/luv.lua",
   probe = "lua5.4 -e 'require \"luv\"'", skip = {W9 = true, W10 = true, W11 = true, W12 = true}},
  {id = "cp", title = "cp(1) floor", cmd = "sh bench/impl/cp.sh", only = {W12 = true}},
  {id = "bare", title = "bare Lua floor", cmd = ROOT_LUA .. "lua5.4 bench/impl/bare.lua",
   only = {W1 = true, W3 = true, W3b = true, W4 = true, W5 = true}},
  {id = "libuv", title = "C libuv floor", cmd = "build/bench/libuv", probe = "test -x build/bench/libuv",
   only = {W2 = true, W3 = true, W8 = true, W9 = true}},
}

-- metric: how a report (elapsed seconds, peak RSS, empty-run RSS) becomes
-- the figure in the table; 'higher' says whether more is better.
local WORKLOADS = {
  {id = "W1", title = "W1 spawn, tasks/s", n = 100000, smoke = 300, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  {id = "W2", title = "W2 timers, overhead s", n = 100000, smoke = 300, higher = false,
   metric = function(r) return r.elapsed - 0.1 end},
  {id = "W3", title = "W3 queue, items/s", n = 1000000, smoke = 3000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  {id = "W3b", title = "W3b fan 4x4, items/s", n = 1000000, smoke = 3000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  {id = "W4", title = "W4 ping-pong, round trips/s", n = 500000, smoke = 1000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  {id = "W5", title = "W5 chains, chains/s", n = 100000, smoke = 300, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  {id = "W6", title = "W6 memory, bytes/sleeping task", n = 100000, smoke = 300, higher = false,
   metric = function(r, n) return (r.rss_kb - r.empty_kb) * 1024 / n end},
  {id = "W7", title = "W7 deadline per read, items/s", n = 1000000, smoke = 3000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  -- 100 connections to an in-process echo server, 64-byte messages, each
  -- awaiting its echo: n messages in all
  {id = "W8", title = "W8 TCP echo, messages/s", n = 1000000, smoke = 1000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  -- each runtime's keep-alive HTTP server under wrk -t1 -c64 for n seconds
  {id = "W9", title = "W9 HTTP hello, requests/s", n = 5, smoke = 1, higher = true, server = true},
  {id = "W9p99", title = "W9 HTTP hello, p99 latency", higher = false, derived = "W9"},
  -- W9 on asyncio.cluster, lua-asyncio alone: 1 and 2 worker processes on
  -- one port (issue 21); wrk shares the machine's cores with them
  {id = "W9w1", title = "W9w1 HTTP, 1 worker, requests/s", n = 5, smoke = 1, higher = true,
   server = true, listeners = 1, peers = {asyncio = true}},
  {id = "W9w2", title = "W9w2 HTTP, 2 workers, requests/s", n = 5, smoke = 1, higher = true,
   server = true, listeners = 2, peers = {asyncio = true}},
  -- n runs of /bin/true, 4 at a time (issue 12)
  {id = "W10", title = "W10 processes, spawns/s", n = 1000, smoke = 8, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  -- W8 over TLS: 100 connections, 64-byte messages, n in all (issue 12)
  {id = "W11", title = "W11 TLS echo, messages/s", n = 200000, smoke = 1000, higher = true,
   metric = function(r, n) return n / r.elapsed end},
  -- copy n MB in 64 KiB reads and writes (issue 12). The files are on
  -- /dev/shm when there is one: on a disk the kernel's writeback stalls
  -- decide the figure (runs of cp and of every peer vary 0.13 to 0.9 s),
  -- and memory shows what each runtime's I/O machinery costs
  {id = "W12", title = "W12 file copy, MB/s", n = 256, smoke = 2, higher = true,
   env = os.execute("test -d /dev/shm -a -w /dev/shm") and "TMPDIR=/dev/shm" or nil,
   metric = function(r, n) return n / r.elapsed end},
  -- issue 21: n calls of a pure-Lua CPU loop (about 20 ms each) on a worker
  -- pool of 2 threads (W13) and of 1 (W13s); the speed-up W13 / W13s is
  -- what a second core gives (the machine's count is printed beside it)
  {id = "W13", title = "W13 CPU on 2 workers, calls/s", n = 100, smoke = 4, higher = true,
   peers = {asyncio = true}, metric = function(r, n) return n / r.elapsed end},
  {id = "W13s", title = "W13 CPU on 1 worker, calls/s", n = 50, smoke = 2, higher = true,
   peers = {asyncio = true}, metric = function(r, n) return n / r.elapsed end},
  -- to_thread round trips of a trivial function, one after another
  {id = "W14", title = "W14 to_thread, calls/s", n = 20000, smoke = 100, higher = true,
   peers = {asyncio = true, python = true}, metric = function(r, n) return n / r.elapsed end},
}

-- The bar of issue 10, as ratios in this run: {workload, peer, op, bound};
-- peer "W3" compares with lua-asyncio's own W3 rate; no peer: an absolute.
local GOALS = {
  -- issue 20 (the core, against the Lua peers and the bare Lua floor)
  {"W1", "luv", ">=", 1.0}, {"W1", "bare", ">=", 1.0},
  {"W2", "luv", "<=", 0.7},
  {"W3", "bare", ">=", 1.0}, {"W4", "luv", ">=", 1.2},
  {"W5", "luv", ">=", 1.0},
  {"W7", "cqueues", ">=", 1.0}, {"W7", "luv", ">=", 1.0}, {"W7", "W3", ">=", 0.6},
  {"W6", nil, "<=", 1550},
  -- issue 11
  {"W8", "node", ">=", 1.0}, {"W8", "libuv", ">=", 0.5},
  {"W9", "node", ">=", 1.0}, {"W9", "luahttp", ">=", 2.0},
  {"W9p99", "node", "<=", 1.0},
  -- issue 12
  {"W10", "node", ">=", 1.0},
  {"W11", "node", ">=", 1.0},
  {"W12", "node", ">=", 1.0}, {"W12", "cp", ">=", 0.5},
  -- issue 21 (W13: on a machine of 2 cores or more)
  {"W13", "W13s", ">=", 1.7},
  {"W14", nil, ">=", 20000},
  -- issue 21 (2 workers against 1, on a 2-core machine)
  {"W9w2", "W9w1", ">=", 1.4},
}

local function parse_args(argv)
  local o = {rounds = 5}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--smoke" then o.smoke = true; o.rounds = 1
    elseif a == "--scale" then o.scale = true; o.rounds = 3
    elseif a == "--rounds" and tonumber(argv[i + 1]) then o.rounds = math.tointeger(tonumber(argv[i + 1])); i = i + 1
    elseif a == "--only" and argv[i + 1] then
      o.only = {}
      for w in argv[i + 1]:gmatch("[^,]+") do o.only[w] = true end
      i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/run.lua [--rounds N] [--only W1,W3] [--smoke | --scale]\n")
      os.exit(2)
    end
    i = i + 1
  end
  return o
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local failures = 0

-- Run one program; its report, or nil after saying what went wrong.
local function run_one(rt, w, n)
  local out, code = sh(("%s%s %s %d"):format(w.env and w.env .. " " or "", rt.cmd, w.id, n))
  local elapsed, rss = out:match("elapsed ([%d.]+) rss_kb (%d+)")
  if code ~= 0 or not elapsed then
    failures = failures + 1
    io.stderr:write(("FAILED: %s %s %d (exit %s)\n%s\n"):format(rt.id, w.id, n, tostring(code), out))
    return nil
  end
  return {elapsed = tonumber(elapsed), rss_kb = tonumber(rss)}
end

-- A TCP port nothing listens on now (the kernel's pick).
local function free_port()
  local out = sh("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); " ..
    "print(s.getsockname()[1])'")
  return assert(math.tointeger(tonumber(out:match("%d+"))), out)
end

-- Start the runtime's W9 server, load it with wrk for 'secs' seconds and
-- stop it; returns {rps =, p99 = milliseconds} or nil.
local function run_server(rt, w, secs)
  local port = free_port()
  local log = os.tmpname()
  local pid = tonumber((sh(("exec env %s %s %d >%s 2>&1 & echo $!"):format(rt.cmd, w.id, port, log))))
  local up = false
  for _ = 1, 100 do
    local f = io.open(log)
    local text = f and f:read("a") or ""
    if f then f:close() end
    local _, listening = text:gsub("listening", "")
    if listening >= (w.listeners or 1) then up = true; break end
    sh("sleep 0.1")
  end
  local out = up and sh(("wrk -t1 -c%d -d%ds --latency http://127.0.0.1:%d/"):format(
    secs > 1 and 64 or 8, secs, port)) or ""
  sh("kill " .. tostring(pid))
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  local p99, unit = out:match("\n%s*99%%%s+([%d.]+)(%a+)")
  local f = io.open(log)
  local serverlog = f and f:read("a") or ""
  if f then f:close() end
  os.remove(log)
  local scale_ms = {us = 1e-3, ms = 1, s = 1e3}
  if not rps or not p99 or out:match("Non%-2xx") then
    failures = failures + 1
    io.stderr:write(("FAILED: %s %s (server %s)\n%s\n%s\n"):format(rt.id, w.id,
      up and "up" or "never listened", out, serverlog))
    return nil
  end
  return {rps = rps, p99 = tonumber(p99) * (scale_ms[unit] or 1)}
end

-- The machine's core count, printed beside the ratios that depend on it.
local CORES = (sh("nproc"):match("%d+")) or "?"

local function median(t)
  if #t == 0 then return nil end
  table.sort(t)
  local m = (#t + 1) // 2
  return #t % 2 == 1 and t[m] or (t[m] + t[m + 1]) / 2
end

local function fmt(v, w)
  if v == nil then return "-" end
  if w.id == "W2" then return ("%.3f s"):format(v) end
  if w.id == "W6" then return ("%.0f B"):format(v) end
  if w.id == "W9p99" then return ("%.2f ms"):format(v) end
  if v >= 1e6 then return ("%.2f M"):format(v / 1e6) end
  if v < 1e4 then return ("%.0f"):format(v) end
  return ("%.0f k"):format(v / 1e3)
end

local function pad(s, n) return s .. (" "):rep(n - #s) end

-- --scale: W1 and W2 on lua-asyncio at 10 k, 100 k and 1 M tasks: the
-- time and the memory per task should stay flat as the work grows.
local SCALE_SIZES = {10000, 100000, 1000000}

local function scale(o)
  local rt = RUNTIMES[1]
  print(("lua-asyncio, medians of %d rounds: time per task (W2: wall - 0.1 s, per task) and"):format(o.rounds))
  print("peak RSS above an empty run, per task")
  print()
  print("| workload | tasks | time per task | bytes per task |")
  print("| --- | --- | --- | --- |")
  for _, wid in ipairs({"W1", "W2"}) do
    if not o.only or o.only[wid] then
      local empty = run_one(rt, {id = wid}, 0)
      for _, n in ipairs(SCALE_SIZES) do
        local times, bytes = {}, {}
        for _ = 1, o.rounds do
          local r = run_one(rt, {id = wid}, n)
          if r and empty then
            times[#times + 1] = (wid == "W2" and r.elapsed - 0.1 or r.elapsed) / n
            bytes[#bytes + 1] = (r.rss_kb - empty.rss_kb) * 1024 / n
          end
        end
        local t, b = median(times), median(bytes)
        print(("| %s | %d | %s | %s |"):format(wid, n, t and ("%.2f us"):format(t * 1e6) or "-",
          b and ("%.0f B"):format(b) or "-"))
        io.stdout:flush()
      end
    end
  end
  if failures > 0 then os.exit(1) end
end

-- W11's certificate, self-signed for "localhost" and 127.0.0.1: made once
-- with the openssl command into build/bench/tls.
local function make_tls_cert()
  local dir = "build/bench/tls"
  local f = io.open(dir .. "/cert.pem")
  if f then f:close(); return end
  local out, code = sh(("mkdir -p %s && openssl req -x509 -newkey rsa:2048 -nodes -days 3650 " ..
    "-keyout %s/key.pem -out %s/cert.pem -subj /CN=localhost " ..
    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1"):format(dir, dir, dir))
  if code ~= 0 then error("bench: cannot make the W11 certificate:\n" .. out) end
end

local function main(argv)
  local o = parse_args(argv)
  if o.scale then return scale(o) end
  if not o.only or o.only.W11 then make_tls_cert() end
  local runtimes, skipped = {}, {}
  for _, rt in ipairs(RUNTIMES) do
    if rt.probe == nil or select(2, sh(rt.probe)) == 0 then runtimes[#runtimes + 1] = rt
    else skipped[#skipped + 1] = rt.title end
  end
  local workloads = {}
  local have_wrk = select(2, sh("command -v wrk")) == 0
  if not have_wrk then skipped[#skipped + 1] = "wrk (so no W9)" end
  for _, w in ipairs(WORKLOADS) do
    local wanted = not o.only or o.only[w.id] or (w.derived and o.only[w.derived])
    if wanted and (have_wrk or not (w.server or w.derived)) then
      workloads[#workloads + 1] = w
    end
  end
  local samples = {}  -- samples[w][rt] = list of metric values
  for _, w in ipairs(workloads) do
    samples[w.id] = {}
    for _, rt in ipairs(runtimes) do samples[w.id][rt.id] = {} end
  end
  io.stderr:write(("bench: %d round(s)%s; %s\n"):format(o.rounds, o.smoke and ", smoke sizes" or "",
    #skipped > 0 and ("not installed: " .. table.concat(skipped, ", ")) or "every peer present"))
  for round = 1, o.rounds do
    for _, w in ipairs(workloads) do
      local n = o.smoke and w.smoke or w.n
      -- alternate the order of the runtimes from round to round
      for k = 0, #runtimes - 1 do
        local rt = runtimes[(k + round - 1) % #runtimes + 1]
        local server_ok = not (rt.skip and rt.skip[w.id]) and (not w.peers or w.peers[rt.id])
        if w.derived then server_ok = false end
        if w.server and server_ok and (not rt.only or rt.only[w.id]) then
          local r = run_server(rt, w, n)
          if r then
            local list = samples[w.id][rt.id]
            list[#list + 1] = r.rps
            local lat = samples[w.id .. "p99"] and samples[w.id .. "p99"][rt.id]
            if lat then lat[#lat + 1] = r.p99 end
          end
        elseif not w.server and server_ok and (not rt.only or rt.only[w.id]) then
          local r = run_one(rt, w, n)
          if r and w.id == "W6" then
            local e = run_one(rt, w, 0)
            r.empty_kb = e and e.rss_kb
          end
          if r and (w.id ~= "W6" or r.empty_kb) then
            local list = samples[w.id][rt.id]
            list[#list + 1] = w.metric(r, n)
          end
        end
      end
      io.stderr:write(("  round %d: %s done\n"):format(round, w.id))
    end
  end

  local med = {}
  for _, w in ipairs(workloads) do
    med[w.id] = {}
    for _, rt in ipairs(runtimes) do med[w.id][rt.id] = median(samples[w.id][rt.id]) end
  end

  print(("Medians of %d round(s)%s, on %s CPU(s). Higher is better for rates; lower for W2, W6 "
    .. "and latency."):format(o.rounds, o.smoke and " (smoke sizes: the figures mean nothing)" or "", CORES))
  print()
  local head = {pad("workload", 32)}
  for _, rt in ipairs(runtimes) do head[#head + 1] = pad(rt.title, 15) end
  print(table.concat(head, " | "))
  for _, w in ipairs(workloads) do
    local row = {pad(w.title, 32)}
    for _, rt in ipairs(runtimes) do row[#row + 1] = pad(fmt(med[w.id][rt.id], w), 15) end
    print(table.concat(row, " | "))
  end
  print()
  print("lua-asyncio / peer (above 1 is better for rates, below 1 for W2, W6 and latency):")
  print()
  local rhead = {pad("workload", 32)}
  for _, rt in ipairs(runtimes) do
    if rt.id ~= "asyncio" then rhead[#rhead + 1] = pad(rt.title, 15) end
  end
  print(table.concat(rhead, " | "))
  for _, w in ipairs(workloads) do
    local row, mine = {pad(w.title, 32)}, med[w.id].asyncio
    for _, rt in ipairs(runtimes) do
      if rt.id ~= "asyncio" then
        local peer = med[w.id][rt.id]
        local cell = (mine and peer and peer ~= 0) and ("%.2fx"):format(mine / peer) or "-"
        row[#row + 1] = pad(cell, 15)
      end
    end
    print(table.concat(row, " | "))
  end
  print()
  print(("Goals (issue 20 for the core, issues 11 and 12 for I/O, 21 for workers; this machine " ..
    "has %s cores):"):format(CORES))
  for _, g in ipairs(GOALS) do
    local wid, peer, op, bound = g[1], g[2], g[3], g[4]
    if med[wid] then
      local mine, value, what = med[wid].asyncio
      if peer and med[peer] then  -- another workload of lua-asyncio's own
        local p = med[peer].asyncio
        value = (mine and p and p ~= 0) and mine / p or nil
        what = ("%s: lua-asyncio %s / its %s %s %.2f"):format(wid, wid, peer, op, bound)
        if wid:match("^W9w") or wid == "W13" then what = what .. (" (%s cores)"):format(CORES) end
      elseif peer then
        local p = med[wid][peer]
        value = (mine and p and p ~= 0) and mine / p or nil
        what = ("%s: lua-asyncio / %s %s %.1f"):format(wid, peer, op, bound)
      elseif wid == "W6" then
        value = mine
        what = ("%s: bytes per sleeping task %s %d"):format(wid, op, bound)
      else
        value = mine
        what = ("%s: lua-asyncio %s %d"):format(wid, op, bound)
      end
      local met = value ~= nil and ((op == ">=" and value >= bound) or (op == "<=" and value <= bound))
      print(("  %-44s %-10s %s"):format(what, value and ("%.2f"):format(value) or "-",
        value == nil and "not measured" or met and "met" or "NOT MET"))
    end
  end
  if failures > 0 then
    io.stderr:write(("bench: %d program(s) failed or gave a wrong answer\n"):format(failures))
    os.exit(1)
  end
end

main(arg)
