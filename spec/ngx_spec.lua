-- asyncio.ngx: OpenResty's cosocket API on the library's streams.
-- lua-resty-redis (Debian's lua-nginx-redis, unpacked by scripts/setup.sh
-- into build/deps, nginx not installed), unmodified, by 100 tasks at once
-- against redis-server, over TLS too, with keepalive pools; then the
-- shim's own conventions against servers of the spec's own.
local asyncio = require "asyncio"
local ngxm = require "asyncio.ngx"
local support = require "spec.support"
local await = asyncio.await

local RESTY_REDIS = "build/deps/lua-nginx-redis/usr/share/lua/5.1/nginx/redis.lua"
local N = 100

local function load_resty_redis()
  local f = io.open(RESTY_REDIS)
  assert(f, RESTY_REDIS .. " is missing: run scripts/setup.sh test (it unpacks lua-nginx-redis)")
  f:close()
  return dofile(RESTY_REDIS)
end

local make_cert = support.make_cert

-- One INFO field of the redis server, through a connection of its own
-- (pool "probe", closed after).
local function info_field(redis, port, field)
  local red = redis:new()
  assert(red:connect("127.0.0.1", port, {pool = "probe"}))
  local text = assert(red:info())
  red:close()
  return tonumber(text:match(field .. ":(%d+)"))
end

describe("asyncio.ngx with lua-resty-redis against redis-server", function()
  local port, tls_port, pid, redis, dir
  setup(function()
    dir = support.sh("mktemp -d"):gsub("%s+$", "")
    local ca = make_cert(dir, "ca", "asyncio test CA")
    local cert, key = make_cert(dir, "server", "localhost", "DNS:localhost,IP:127.0.0.1", "ca")
    port, tls_port = support.free_port(), support.free_port()
    pid = support.spawn(("redis-server --port %d --tls-port %d --tls-cert-file %s --tls-key-file %s " ..
      "--tls-ca-cert-file %s --tls-auth-clients no --bind 127.0.0.1 --save '' --appendonly no")
      :format(port, tls_port, cert, key, ca), dir .. "/redis.log")
    support.run(support.wait_port, port)
    support.run(support.wait_port, tls_port)
    ngxm.install()
    ngxm.configure{trusted_certificate = ca}
    redis = load_resty_redis()
  end)
  teardown(function()
    ngxm.uninstall()
    support.kill(pid)
    support.sh("rm -rf " .. dir)
  end)

  it("serves 100 tasks at once, pipelines included, every answer right", function()
    local res = support.run_within(600, function()
      local all_connected = asyncio.Barrier(N + 1)
      local tasks = {}
      for i = 1, N do
        tasks[i] = asyncio.create_task(function()
          local red = redis:new()
          red:set_timeout(10000)
          assert(red:connect("127.0.0.1", port))
          await(all_connected:wait())   -- every connection is open now
          local key = "asyncio:ngx:key" .. i
          local got = {set = red:set(key, "value " .. i), get = red:get(key),
            missing = red:get(key .. ":none")}
          red:del(key .. ":n")
          red:init_pipeline()
          for _ = 1, 10 do red:incr(key .. ":n") end
          red:get(key)
          red:lpush(key .. ":list", "a", "b")
          got.pipe = red:commit_pipeline()
          got.err = {red:hget(key, "field")}  -- a key of the wrong type
          got.big = red:set(key .. ":big", ("v"):rep(200000)) and #red:get(key .. ":big")
          red:del(key .. ":list")
          assert(red:close())
          return got
        end)
      end
      await(all_connected:wait())
      local clients = info_field(redis, port, "connected_clients")
      local results = await(asyncio.gather(tasks))
      return {results = results, clients = clients}
    end)
    assert.is_true(res.clients >= N + 1, "connected_clients " .. tostring(res.clients))
    for i = 1, N do
      local got = res.results[i]
      assert.equal("OK", got.set)
      assert.equal("value " .. i, got.get)
      assert.equal(ngxm.ngx.null, got.missing)
      assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "value " .. i, 2}, got.pipe)
      assert.is_false(got.err[1])
      assert.matches("^WRONGTYPE", got.err[2])
      assert.equal(200000, got.big)
    end
  end)

  it("reuses connections through setkeepalive: 100 tasks, 5 rounds, 100 connections", function()
    local res = support.run_within(600, function()
      local before = info_field(redis, port, "total_connections_received")
      local rounds = 5
      local barrier = asyncio.Barrier(N)
      local reused = {}
      local tasks = {}
      for i = 1, N do
        tasks[i] = asyncio.create_task(function()
          local seen = {}
          for r = 1, rounds do
            local red = redis:new()
            assert(red:connect("127.0.0.1", port))
            seen[r] = red:get_reused_times()
            assert(red:incr("asyncio:ngx:rounds") >= 1)
            assert(red:set_keepalive(0, N))
            await(barrier:wait())     -- every connection is back in the pool
          end
          reused[i] = seen
        end)
      end
      await(asyncio.gather(tasks))
      local after = info_field(redis, port, "total_connections_received")
      ngxm.close_pools()
      return {accepted = after - before, reused = reused}
    end)
    -- 100 connections for the 500 connects, and one for the probe after
    assert.equal(N + 1, res.accepted)
    for i = 1, N do assert.same({0, 1, 2, 3, 4}, res.reused[i]) end
  end)

  it("talks TLS through sslhandshake, verified, and keeps TLS connections in the pool", function()
    local res = support.run_within(60, function()
      local out = {}
      for r = 1, 2 do
        local red = redis:new()
        assert(red:connect("127.0.0.1", tls_port))
        local sock = red._sock  -- newer lua-resty-redis does this in connect({ssl = true})
        out["reused" .. r] = red:get_reused_times()
        out["session" .. r] = sock:sslhandshake(false, "localhost", true)
        out["set" .. r] = red:set("asyncio:ngx:tls", "secret " .. r)
        red:init_pipeline()
        red:get("asyncio:ngx:tls")
        red:ping()
        out["pipe" .. r] = red:commit_pipeline()
        assert(red:set_keepalive(0, 10))
      end
      local red = redis:new()
      assert(red:connect("127.0.0.1", tls_port, {pool = "other"}))
      out.mismatch = {red._sock:sslhandshake(false, "wrong.example", true)}
      out.after = {red:get("x")}
      ngxm.close_pools()
      return out
    end)
    assert.same({0, true, "OK"}, {res.reused1, res.session1, res.set1})
    assert.same({"secret 1", "PONG"}, res.pipe1)
    assert.same({1, true, "OK"}, {res.reused2, res.session2, res.set2})
    assert.same({"secret 2", "PONG"}, res.pipe2)
    assert.is_nil(res.mismatch[1])
    assert.matches("^handshake failed: .*hostname mismatch", res.mismatch[2])
    assert.same({nil, "closed"}, res.after)
  end)
end)

-- A server of the spec's own (counting the connections it accepted), and its end.
local serve, finish = support.serve, support.finish_server

local function client(port)
  local s = ngxm.ngx.socket.tcp()
  assert.equal(1, s:connect("127.0.0.1", port))
  return s
end

describe("asyncio.ngx's cosockets", function()
  it("receive lines, sizes, everything; send strings, numbers and nested tables", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(r, w)
        w:write(await(r:readline()))
        w:write("one\r\ntwo\n12345rest")
        w:close()
      end)
      local s = client(port)
      local sent = s:send({"a", {"b", 1, true}, "\n"})
      local r = {sent, s:receive(), s:receive("*l"), s:receive(), s:receive("5"), s:receive(2), s:receive("*a")}
      r[#r + 1] = {s:receive()}
      finish(srv)
      return r
    end)
    assert.same({8, "ab1true", "one", "two", "12345", "re", "st", {nil, "closed", ""}}, got)
  end)

  it("receiveuntil: whole, in chunks, inclusive", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("hello--BOUNDARY--abcdefg--BOUNDARY--xy--BOUNDARY--tail")
        w:close()
      end)
      local s = client(port)
      local until_b = s:receiveuntil("--BOUNDARY--")
      local r = {until_b()}
      local chunks = {}
      while true do
        local data, err = until_b(3)
        if not data then chunks[#chunks + 1] = err or "end" break end
        chunks[#chunks + 1] = data
      end
      r[#r + 1] = chunks
      r[#r + 1] = s:receiveuntil("--BOUNDARY--", {inclusive = true})()
      r[#r + 1] = {until_b()}
      s:close()
      finish(srv)
      return r
    end)
    assert.same({"hello", {"abc", "def", "g", "end"}, "xy--BOUNDARY--", {nil, "closed", "tail"}}, got)
  end)

  it("a read timeout gives nil, 'timeout', the partial data, and leaves the socket open", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("abc")
        await(go:wait())
        w:write("def\n")
        await(go:wait())
      end)
      local s = client(port)
      local r = {s:receive(1)}
      s:settimeouts(1000, 1000, 20)
      r[#r + 1] = {s:receive()}
      go:set()
      s:settimeout(1000)
      r[#r + 1] = {s:receive()}
      s:close()
      finish(srv)
      return r
    end)
    assert.same({"a", {nil, "timeout", "bc"}, {"def"}}, got)
  end)

  it("is cancellable in receive: CancelledError, and the bytes stay for the next receive", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("half ")
        await(go:wait())
        w:write("line\n")
        await(go:wait())
      end)
      local s = client(port)
      local reading = asyncio.create_task(function() return s:receive() end)
      while s._received == 0 do support.ticks(1) end   -- it holds "half " and waits
      reading:cancel()
      local ok, err = pcall(await, reading)
      go:set()
      local line = s:receive()
      s:close()
      finish(srv)
      return {ok = ok, cancelled = asyncio.CancelledError:is(err), line = line}
    end)
    assert.same({ok = false, cancelled = true, line = "half line"}, got)
  end)

  it("keeps a pool per host: reuse, the size limit, dubious and dead connections", function()
    local got = support.run_within(30, function()
      local srv, port, count = serve(function(r, w)
        while true do
          local line = await(r:readline())
          if line == "" then return end
          if line == "bye\n" then w:close() return end
          if line == "extra\n" then w:write("unasked\n") end
          w:write(line)
        end
      end)
      local out = {}
      local a, b, c = client(port), client(port), client(port)
      for _, s in ipairs({a, b, c}) do s:send("ping\n"); assert(s:receive() == "ping") end
      out.keep = {a:setkeepalive(0, 2), b:setkeepalive(0, 2), c:setkeepalive(0, 2)}  -- a is closed
      out.closed = {a:send("x")}
      local d = client(port)
      out.reused_d = d:getreusedtimes()
      d:send("extra\n")
      assert(d:receive() == "unasked")
      out.dubious = {d:setkeepalive()}
      d:close()
      local e = client(port)                 -- the other pooled one
      out.reused_e = e:getreusedtimes()
      e:send("bye\n")
      out.eof = {e:receive()}                -- the peer closed it: so is e
      out.dead = {e:setkeepalive()}
      local f = client(port)
      out.reused_f = f:getreusedtimes()
      f:close()
      ngxm.close_pools()
      finish(srv)
      out.accepted = count.accepted
      return out
    end)
    assert.same({1, 1, 1}, got.keep)
    assert.same({nil, "closed"}, got.closed)
    assert.equal(1, got.reused_d)
    assert.same({nil, "connection in dubious state"}, got.dubious)
    assert.equal(1, got.reused_e)
    assert.same({nil, "closed", ""}, got.eof)
    assert.same({nil, "closed"}, got.dead)
    assert.equal(0, got.reused_f)
    assert.equal(4, got.accepted)   -- a, b, c, and f: d and e came from the pool
  end)

  it("refuses setkeepalive while another task is in receive on the socket (review)", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(r, w)
        local line = await(r:readline())
        await(asyncio.sleep(0.05))
        w:write(line)
        await(r:read())
      end)
      local s = client(port)
      local pending = asyncio.create_task(function() return s:receive() end)
      await(asyncio.sleep(0))
      local out = {busy = {s:setkeepalive()}}
      s:send("mine\n")
      out.pending = await(pending)        -- the reply went to the task that waited for it
      out.after = s:setkeepalive()        -- nothing pending now
      ngxm.close_pools()
      finish(srv)
      return out
    end)
    assert.same({nil, "socket busy reading"}, got.busy)
    assert.equal("mine", got.pending)
    assert.equal(1, got.after)
  end)

  it("connects to unix: paths, pooled by path", function()
    local path = os.tmpname()
    os.remove(path)
    local got = support.run_within(30, function()
      local srv = await(asyncio.start_unix_server(function(r, w)
        for line in r:lines("L") do w:write("echo " .. line) end
      end, path))
      local s = ngxm.ngx.socket.tcp()
      local out = {s:connect("unix:" .. path)}
      out[#out + 1] = s:send("hi\n")
      out[#out + 1] = s:receive()
      out[#out + 1] = s:setkeepalive()
      out[#out + 1] = ngxm.idle_connections("unix:" .. path)
      local t = ngxm.ngx.socket.tcp()
      out[#out + 1] = t:connect("unix:" .. path, {pool_size = 5})
      out[#out + 1] = t:getreusedtimes()
      t:close()
      finish(srv)
      return out
    end)
    assert.same({1, 3, "echo hi", 1, 1, 1, 1}, got)
  end)

  it("closes an idle pooled connection that the peer closes", function()
    local got = support.run_within(30, function()
      local peer_writers = {}
      local srv, port, count = serve(function(r, w)
        peer_writers[#peer_writers + 1] = w
        await(r:read())
      end)
      local s = client(port)
      assert(s:setkeepalive(0))
      while #peer_writers == 0 do support.ticks(1) end
      peer_writers[1]:close()
      assert.equal(1, ngxm.idle_connections("127.0.0.1:" .. port))
      while ngxm.idle_connections("127.0.0.1:" .. port) > 0 do support.ticks(1) end  -- its watcher saw EOF
      local t = client(port)
      local reused = t:getreusedtimes()
      t:close()
      finish(srv)
      return {reused = reused, accepted = count.accepted}
    end)
    assert.same({reused = 0, accepted = 2}, got)
  end)

  it("closes an idle pooled connection past its keepalive timeout", function()
    local got = support.run_within(30, function()
      local srv, port, count = serve(function(r) await(r:read()) end)
      local s = client(port)
      assert(s:setkeepalive(10))                         -- 10 ms idle at most
      local key = "127.0.0.1:" .. port
      local before = ngxm.idle_connections(key)
      while ngxm.idle_connections(key) > 0 do await(asyncio.sleep(0.005)) end
      local t = client(port)
      local reused = t:getreusedtimes()
      t:close()
      finish(srv)
      return {before = before, reused = reused, accepted = count.accepted}
    end)
    assert.same({before = 1, reused = 0, accepted = 2}, got)
  end)

  it("gives cosocket's errors and refuses bad arguments", function()
    local free = support.free_port()
    local got = support.run_within(30, function()
      local s = ngxm.ngx.socket.tcp()
      return {refused = {s:connect("127.0.0.1", free)},
        unresolved = {s:connect("no-such-host.invalid", 80)},
        closed = {s:receive()}, closed_send = {s:send("x")}, close = {s:close()},
        bad_port = select(2, pcall(s.connect, s, "127.0.0.1", "http")),
        bad_host = select(2, pcall(s.connect, s, 5)),
        bad_opt = select(2, pcall(s.connect, s, "127.0.0.1", 80, {pol = "x"})),
        bad_pattern = select(2, pcall(s.receive, s, "*x")),
        bad_self = select(2, pcall(s.receive, {}))}
    end)
    assert.same({nil, "connection refused"}, got.refused)
    assert.same({nil, "no-such-host.invalid could not be resolved"}, got.unresolved)
    assert.same({nil, "closed"}, got.closed)
    assert.same({nil, "closed"}, got.closed_send)
    assert.same({nil, "closed"}, got.close)
    assert.matches("bad argument #2 to 'connect' (number expected, got string)", got.bad_port, 1, true)
    assert.matches("bad argument #1 to 'connect' (string expected, got number)", got.bad_host, 1, true)
    assert.matches("bad argument #3 to 'connect' (unknown option 'pol')", got.bad_opt, 1, true)
    assert.matches("bad argument #1 to 'receive' (bad pattern argument)", got.bad_pattern, 1, true)
    assert.matches("bad argument #1 to 'receive' (tcpsock expected, got table)", got.bad_self, 1, true)
    assert.has_error(function() ngxm.ngx.socket.tcp():connect("127.0.0.1", 1) end,
      "'connect' called outside a running task")
  end)
end)

describe("asyncio.ngx's ngx table", function()
  it("logs up to the configured level, with OpenResty's constants", function()
    local seen = {}
    ngxm.configure{log = function(level, msg) seen[#seen + 1] = level .. " " .. msg end,
      log_level = ngxm.ngx.WARN}
    local ngx = ngxm.ngx
    ngx.log(ngx.ERR, "failed: ", nil, " ", 42, " ", true)
    ngx.log(ngx.WARN, "careful")
    ngx.log(ngx.INFO, "not shown")
    ngxm.configure{log_level = ngx.ERR}
    assert.same({"4 failed: nil 42 true", "5 careful"}, seen)
    assert.has_error(function() ngx.log(42, "x") end, "bad argument #1 to 'log' (bad log level)")
  end)

  it("has null, now, time, sleep and timer.at", function()
    local ngx = ngxm.ngx
    assert.equal("userdata: NULL", tostring(ngx.null))
    assert.is_true(math.abs(ngx.now() - os.time()) <= 2)
    local order = support.run_within(30, function()
      local seen = {}
      local fired = asyncio.Event()
      ngx.timer.at(0, function(premature, x) seen[#seen + 1] = {premature, x}; fired:set() end, "arg")
      ngx.sleep(0)
      await(fired:wait())
      return seen
    end)
    assert.same({{false, "arg"}}, order)
  end)

  it("install sets the global ngx and uninstall gives back the one before", function()
    local before = rawget(_G, "ngx")
    assert.equal(ngxm.ngx, ngxm.install())
    assert.equal(ngxm.ngx, rawget(_G, "ngx"))
    ngxm.uninstall()
    assert.equal(before, rawget(_G, "ngx"))
  end)
end)
