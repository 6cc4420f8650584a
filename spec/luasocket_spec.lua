-- asyncio.luasocket: LuaSocket's TCP client API on the library's streams.
-- Debian's redis-lua (pure Lua, written against LuaSocket), unmodified,
-- run by 100 tasks at once against redis-server; then the shim's own
-- conventions against servers of the spec's own.
local asyncio = require "asyncio"
local ls = require "asyncio.luasocket"
local support = require "spec.support"
local await = asyncio.await

-- redis-lua is packaged for Lua 5.1 to 5.3: its file, loaded as it is.
local function redis_lua_path()
  for _, v in ipairs({"5.3", "5.2", "5.1"}) do
    local path = ("/usr/share/lua/%s/redis.lua"):format(v)
    local f = io.open(path)
    if f then f:close() return path end
  end
  error("redis-lua is not installed (Debian's lua-redis: scripts/setup.sh test installs it)")
end

local N = 100

describe("asyncio.luasocket with redis-lua against redis-server", function()
  local port, pid, redis
  setup(function()
    port = support.free_port()
    pid = support.spawn(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no"):format(port))
    support.run(support.wait_port, port)
    ls.install()
    redis = dofile(redis_lua_path())
  end)
  teardown(function()
    ls.uninstall()
    support.kill(pid)
  end)

  it("serves 100 tasks at once, each with its own connection, every answer right", function()
    local res = support.run_within(600, function()
      local all_connected = asyncio.Barrier(N + 1)
      local clients_seen
      local shared = "asyncio:ls:shared"
      local tasks = {}
      for i = 1, N do
        tasks[i] = asyncio.create_task(function()
          local c = redis.connect("127.0.0.1", port)
          await(all_connected:wait())  -- every connection is open now
          local key, counter = "asyncio:ls:key" .. i, "asyncio:ls:n" .. i
          local got = {set = c:set(key, "value " .. i), get = c:get(key)}
          c:del(counter)
          for _ = 1, 10 do c:incr(counter) end
          got.incr = c:incr(counter)
          c:incr(shared)
          -- a pipeline: redis-lua on Lua >= 5.3 needs every command but the
          -- last to have a reply parser (its table.insert with holes)
          got.pipe = c:pipeline(function(p)
            p:setnx(key .. ":nx", "first " .. i)
            p:exists(key)
            p:incrbyfloat(counter .. ":f", 0.5)
            p:ping()
            p:get(key .. ":nx")
          end)
          got.echo = c:echo(("x"):rep(100000) .. i)  -- a reply of many chunks
          c:quit()
          return got
        end)
      end
      await(all_connected:wait())
      local probe = redis.connect("127.0.0.1", port)
      clients_seen = tonumber(probe:info("clients").clients.connected_clients)
      probe:del(shared)
      local results = await(asyncio.gather(tasks))
      local total = probe:get(shared)
      probe:quit()
      return {results = results, clients = clients_seen, shared = total}
    end)
    -- the 100 connections and the probe, all open at the same time
    assert.is_true(res.clients >= N + 1, "connected_clients " .. tostring(res.clients))
    assert.equal(tostring(N), res.shared)
    for i = 1, N do
      local got = res.results[i]
      assert.is_true(got.set)
      assert.equal("value " .. i, got.get)
      assert.equal(11, got.incr)
      assert.same({true, true, 0.5, true, "first " .. i}, got.pipe)
      assert.equal(("x"):rep(100000) .. i, got.echo)
    end
  end)

  it("an error reply is redis-lua's error, and the connection goes on", function()
    local res = support.run_within(60, function()
      local c = redis.connect("127.0.0.1", port)
      c:set("asyncio:ls:str", "text")
      local ok, err = pcall(c.incr, c, "asyncio:ls:str")
      local after = c:get("asyncio:ls:str")
      c:quit()
      return {ok = ok, err = err, after = after}
    end)
    assert.is_false(res.ok)
    assert.matches("redis error: ERR value is not an integer", res.err, 1, true)
    assert.equal("text", res.after)
  end)

  it("a refused connection is redis-lua's error with LuaSocket's reason", function()
    local free = support.free_port()
    local res = support.run_within(60, function()
      return {pcall(redis.connect, "127.0.0.1", free)}
    end)
    assert.is_false(res[1])
    assert.matches("could not connect to 127.0.0.1:%d+ %[connection refused%]", res[2])
  end)

  it("require 'socket' gives the shim inside a task and the real LuaSocket outside", function()
    local socket = require "socket"
    local outside = socket.tcp()
    assert.equal("userdata", type(outside))   -- LuaSocket's own
    outside:close()
    assert.equal("number", type(socket.gettime()))
    local inside = support.run(function() return socket.tcp() end)
    assert.equal("table", type(inside))
    assert.matches("^tcp{master}: ", tostring(inside))
    assert.equal(ls, socket.asyncio)
  end)
end)

local serve, finish = support.serve, support.finish_server

-- A connected shim client to 'port'.
local function client(port)
  local s = ls.tcp()
  assert.equal(1, s:connect("127.0.0.1", port))
  return s
end

describe("asyncio.luasocket's receive", function()
  it("reads lines without their end of line, counts, everything, with a prefix", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("one\r\ntwo\nthree\r\n12345678tail of the stream")
        w:close()
      end)
      local s = client(port)
      local r = {s:receive(), s:receive("*l"), s:receive("l", "pre-"), s:receive(4), s:receive(4, "x"),
        s:receive("*a")}
      r[#r + 1] = select("#", s:receive("*a"))
      s:close()
      finish(srv)
      return r
    end)
    -- (a count takes the prefix among its bytes, as LuaSocket's; "*a" at the end: nil, "closed")
    assert.same({"one", "two", "pre-three", "1234", "x567", "8tail of the stream", 3}, got)
  end)

  it("gives nil, 'timeout' and the partial result, which it consumes", function()
    local got = support.run_within(30, function()
      local more, done = asyncio.Event(), asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("abc")
        await(more:wait())
        w:write("def\nghi")
        await(done:wait())
      end)
      local s = client(port)
      local first = s:receive(1)          -- "abc" has arrived: "bc" is buffered
      s:settimeout(0.05)
      local r = {first, s:receive()}
      more:set()
      r[#r + 1] = s:receive()             -- the partial line is gone
      r[#r + 1] = {s:receive(10)}
      done:set()
      s:close()
      finish(srv)
      return r
    end)
    assert.same({"a", nil, "timeout", "bc", "def", {nil, "timeout", "ghi"}}, got)
  end)

  it("gives nil, 'closed' and the partial result when the peer closes", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("last words")
        w:close()
      end)
      local s = client(port)
      local r = {{s:receive()}, {s:receive(5)}, {s:receive("*a")}}
      s:close()
      finish(srv)
      r[#r + 1] = {s:receive()}
      return r
    end)
    assert.same({{nil, "closed", "last words"}, {nil, "closed", ""}, {nil, "closed", ""}, {nil, "closed"}}, got)
  end)

  it("honours the total time limit of settimeout(t, 't') across several chunks", function()
    local got = support.run_within(30, function()
      local stop = false
      local srv, port = serve(function(_, w)
        for _ = 1, 1000 do  -- a byte a tick: each wait is short, the call long
          if stop then break end
          w:write("x")
          await(asyncio.sleep(0.005))
        end
      end)
      local s = client(port)
      s:settimeout(0.2, "t")   -- the whole call: 1000 bytes take 5 s
      local data, err, partial = s:receive(100000)
      stop = true
      s:close()
      finish(srv)
      return {data = data, err = err, n = #partial}
    end)
    assert.is_nil(got.data)
    assert.equal("timeout", got.err)
    assert.is_true(got.n < 1000)   -- the limit ended the call, not the peer
  end)

  it("is cancellable: the task gets CancelledError and the bytes stay for the next receive", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("par")
        await(go:wait())
        w:write("tial\n")
        await(go:wait())
      end)
      local s = client(port)
      local reading = asyncio.create_task(function() return s:receive() end)
      while s:getstats() == 0 do support.ticks(1) end   -- it has "par" and waits for the rest
      reading:cancel()
      local ok, err = pcall(await, reading)
      go:set()
      local line = s:receive()
      s:close()
      finish(srv)
      return {ok = ok, cancelled = asyncio.CancelledError:is(err), line = line}
    end)
    assert.same({ok = false, cancelled = true, line = "partial"}, got)
  end)
end)

describe("asyncio.luasocket's send", function()
  it("sends data:sub(i, j) and returns j", function()
    local got = support.run_within(30, function()
      local received = asyncio.Future()
      local srv, port = serve(function(r)
        received:set_result(await(r:read()))
      end)
      local s = client(port)
      local r = {s:send("hello world", 7), s:send("abcdef", 2, 3), s:send("xyz", -1), s:send("")}
      s:close()
      finish(srv)
      r[#r + 1] = await(received)
      return r
    end)
    assert.same({11, 3, 3, 0, "worldbcz"}, got)
  end)

  it("to a peer that does not read: nil, 'timeout' and the last index once the queue is full", function()
    local got = support.run_within(60, function()
      local release, received = asyncio.Event(), asyncio.Future()
      local srv, port = serve(function(r)
        await(release:wait())
        received:set_result(#await(r:read()))
      end)
      local s = client(port)
      s:settimeout(0.02)
      local chunk = ("z"):rep(1 << 20)
      local sent, last, err = 0, nil, nil
      for _ = 1, 200 do
        local n, e, lastsent = s:send(chunk)
        if n then sent = sent + #chunk
        else err, last = e, lastsent; sent = sent + lastsent; break end
      end
      s:settimeout(nil)
      release:set()
      s:shutdown("send")
      local n = await(received)
      s:close()
      finish(srv)
      return {err = err, last = last, sent = sent, received = n}
    end)
    assert.equal("timeout", got.err)
    assert.equal(1 << 20, got.last)  -- the chunk was handed over whole
    assert.equal(got.sent, got.received)
  end)

  it("gives nil, 'closed' after close and after the peer has gone", function()
    local got = support.run_within(60, function()
      local srv, port = serve(function(_, w) w:close() end)
      local s = client(port)
      assert.same({nil, "closed", ""}, {s:receive()})
      local res
      for _ = 1, 100 do  -- the reset comes back after a send or two
        res = {s:send(("y"):rep(100000))}
        if not res[1] then break end
        await(asyncio.sleep(0.01))
      end
      s:close()
      finish(srv)
      return {peer = res, after = {s:send("x", 1)}}
    end)
    assert.same({nil, "closed", 0}, got.peer)
    assert.same({nil, "closed", 0}, got.after)
  end)
end)

describe("asyncio.luasocket.install without the real LuaSocket", function()
  it("gives the shim inside a task and a clear error outside", function()
    local out, code = support.lua_run([[
      package.path = "lua/?.lua;lua/?/init.lua;./?.lua"   -- no system paths: no LuaSocket
      package.cpath = "build/?.so"
      local asyncio = require "asyncio"
      local socket = require("asyncio.luasocket").install()
      print(select(2, pcall(socket.tcp)))
      print(asyncio.run(function() return tostring(require("socket").tcp()):match("^tcp{master}") end))
      print(socket._VERSION)
    ]])
    assert.equal(0, code, out)
    assert.equal("socket.tcp called outside a task, and the real LuaSocket is not installed\n" ..
      "tcp{master}\nLuaSocket 3.1.0 (asyncio.luasocket)\n", out)
  end)
end)

describe("asyncio.luasocket's sockets", function()
  it("connect gives LuaSocket's reasons and refuses bad arguments", function()
    local free = support.free_port()
    local got = support.run_within(30, function()
      local s = ls.tcp()
      local r = {s:connect("127.0.0.1", free)}
      local ok, err = pcall(s.connect, s, 5)
      return {refused = r, err = err, ok = ok,
        bad_port = select(2, pcall(s.connect, s, "127.0.0.1", "http")),
        master_receive = select(2, pcall(s.receive, s)),
        not_a_socket = select(2, pcall(s.receive, {}))}
    end)
    assert.same({nil, "connection refused"}, got.refused)
    assert.is_false(got.ok)
    assert.matches("bad argument #1 to 'connect' (string expected, got number)", got.err, 1, true)
    assert.matches("bad argument #2 to 'connect' (number expected, got string)", got.bad_port, 1, true)
    assert.matches("'receive' called on a tcp{master} object", got.master_receive, 1, true)
    assert.matches("bad argument #1 to 'receive' (tcp object expected, got table)", got.not_a_socket, 1, true)
  end)

  it("refuses to wait outside a task, with a clear error", function()
    assert.has_error(function() ls.tcp():connect("127.0.0.1", 1) end,
      "'connect' called outside a running task")
    assert.has_error(function() ls.sleep(0) end, "'sleep' called outside a running task")
  end)

  it("says what it does not support", function()
    assert.has_error(function() ls.select({}, {}) end,
      "'select' is not supported by asyncio.luasocket (a TCP client API): use tasks, which wait for their own sockets")
    assert.has_error(function() ls.tcp():listen() end,
      "'listen' is not supported by asyncio.luasocket (a TCP client API): use asyncio.start_server for servers")
    assert.has_error(function() ls.udp() end,
      "'udp' is not supported by asyncio.luasocket (a TCP client API): use asyncio.open_udp")
  end)

  it("tells its addresses, options, descriptor and state", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(r) await(r:read()) end)
      local s = ls.connect("127.0.0.1", port)
      local peer = {s:getpeername()}
      local me = {s:getsockname()}
      local r = {peer = peer, me = me, fd = s:getfd(), dirty = s:dirty(),
        opt = {s:setoption("keepalive", true), s:getoption("keepalive"), s:getoption("tcp-nodelay")},
        badopt = select(2, pcall(s.setoption, s, "no-such-option", 1)),
        shut = s:shutdown("send"), name = tostring(s)}
      s:close()
      finish(srv)
      r.closed = {s:getpeername()}
      r.closed_name = tostring(s)
      return r
    end)
    assert.same({"127.0.0.1", got.peer[2], "inet"}, got.peer)
    assert.equal("127.0.0.1", got.me[1])
    assert.is_true(got.fd >= 0)
    assert.is_false(got.dirty)
    assert.same({1, true, true}, got.opt)
    assert.matches("bad argument #1 to 'setoption' (unsupported option 'no-such-option')", got.badopt, 1, true)
    assert.equal(1, got.shut)
    assert.matches("^tcp{client}: ", got.name)
    assert.same({nil, "closed"}, got.closed)
    assert.matches("^tcp{closed}: ", got.closed_name)
  end)

  it("sleep suspends the task, letting the others run", function()
    local order = support.run_within(30, function()
      local seen = {}
      local other = asyncio.create_task(function() seen[#seen + 1] = "other" end)
      ls.sleep(0)
      seen[#seen + 1] = "sleeper"
      await(other)
      return seen
    end)
    assert.same({"other", "sleeper"}, order)
  end)

  it("try and protect turn errors into nil, err and let others through", function()
    local f = ls.protect(function(x)
      ls.try(x, "failed")
      return "fine"
    end)
    assert.equal("fine", f(true))
    assert.same({nil, "failed"}, {f(false)})
    assert.has_error(ls.protect(function() error("boom", 0) end), "boom")
  end)
end)
