-- The network examples against real programs: redis-server, curl, socat
-- and nc (Debian packages; scripts/setup.sh installs them), each started
-- on 127.0.0.1 on a free port and stopped after.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local LUA = support.LUA

-- Run 'fn' with a guard: a broken peer fails the spec instead of hanging it.
local function run_guarded(fn, ...) return support.run_within(60, fn, ...) end

describe("examples/redis.lua against redis-server", function()
  local port, pid
  setup(function()
    port = support.free_port()
    pid = support.spawn(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no"):format(port))
    support.run(support.wait_port, port)
  end)
  teardown(function() support.kill(pid) end)

  it("PING, SET, GET, INCR, an error reply and a pipeline give the right answers", function()
    local out = run_guarded(require("examples.redis").main, {port = port, n = 500})
    assert.equal("PONG", out.ping)
    assert.equal("OK", out.set)
    assert.equal("hello", out.get)
    assert.is_nil(out.missing)
    assert.equal(1, out.incr)
    assert.matches("^RedisError: ERR unknown command", tostring(out.error))
    assert.equal(500, out.pipelined)
    assert.equal(501, out.last)
  end)

  it("a pipeline of 10,000 commands gets 10,000 answers in order", function()
    local redis = require "examples.redis"
    local res = run_guarded(function()
      local db <close> = redis.connect("127.0.0.1", port)
      local sets, gets = {}, {}
      for i = 1, 10000 do
        sets[i] = {"SET", "asyncio:k" .. i, "value " .. i}
        gets[i] = {"GET", "asyncio:k" .. i}
      end
      local a = db:pipeline(sets)
      local b = db:pipeline(gets)
      return {a = a, b = b}
    end)
    assert.equal(10000, #res.a)
    assert.equal(10000, #res.b)
    for i = 1, 10000 do
      assert.equal("OK", res.a[i])
      if res.b[i] ~= "value " .. i then assert.equal("value " .. i, res.b[i]) end
    end
  end)
end)

describe("examples/http_hello.lua against curl", function()
  local port, pid
  setup(function()
    port = support.free_port()
    pid = support.spawn(("%s examples/http_hello.lua %d"):format(LUA, port))
    support.run(support.wait_port, port)
  end)
  teardown(function() support.kill(pid) end)

  it("answers GET /", function()
    local out, code = support.sh(("curl -s --max-time 30 http://127.0.0.1:%d/"):format(port))
    assert.equal(0, code)
    assert.equal("Hello, World!", out)
  end)

  it("keeps the connection alive between requests", function()
    local url = ("http://127.0.0.1:%d/"):format(port)
    local out, code = support.sh(("curl -sv --max-time 30 %s %sbytes/3 2>&1"):format(url, url))
    assert.equal(0, code)
    assert.matches("Re%-using existing connection", out)
    assert.matches("Hello, World!", out, 1, true)
    assert.matches("xxx", out, 1, true)
    local conns = 0
    for _ in out:gmatch("Connected to 127%.0%.0%.1") do conns = conns + 1 end
    assert.equal(1, conns)
  end)

  it("sends and receives a 1 MB body", function()
    local body = os.tmpname()
    local f = assert(io.open(body, "wb"))
    math.randomseed(7)
    local parts = {}
    for i = 1, 1024 * 1024 / 8 do parts[i] = ("%08x"):format(math.random(0, 0x7fffffff)) end
    f:write(table.concat(parts))
    f:close()
    local got = os.tmpname()
    local _, code = support.sh(("curl -s --max-time 60 --data-binary @%s -o %s http://127.0.0.1:%d/echo")
      :format(body, got, port))
    assert.equal(0, code)
    local _, same = support.sh(("cmp %s %s"):format(body, got))
    assert.equal(0, same)
    local out = support.sh(("curl -s --max-time 60 http://127.0.0.1:%d/bytes/1048576 | wc -c"):format(port))
    assert.equal(1048576, tonumber(out))
    os.remove(body)
    os.remove(got)
  end)

  it("answers 404 and closes on Connection: close", function()
    local out = support.sh(("curl -si --max-time 30 -H 'Connection: close' http://127.0.0.1:%d/nope")
      :format(port))
    assert.matches("^HTTP/1.1 404 Not Found", out)
    assert.matches("Connection: close", out, 1, true)
  end)
end)

describe("reuse_port across processes", function()
  it("two http_hello processes serve one port, and curl gets answers", function()
    local port = support.free_port()
    local a = support.spawn(("%s examples/http_hello.lua %d"):format(LUA, port))
    support.run(support.wait_port, port)
    local b = support.spawn(("%s examples/http_hello.lua %d"):format(LUA, port))
    os.execute("sleep 0.5")
    local _, alive = support.sh("kill -0 " .. b)   -- the second did not fail to listen
    local answers = 0
    for _ = 1, 20 do
      local out = support.sh(("curl -s --max-time 30 http://127.0.0.1:%d/"):format(port))
      if out == "Hello, World!" then answers = answers + 1 end
    end
    support.kill(a)
    support.kill(b)
    assert.equal(0, alive)
    assert.equal(20, answers)
  end)
end)

describe("half-close and EOF against socat and nc", function()
  it("write_eof reaches socat (its cat exits), and everything comes back before EOF", function()
    local port = support.free_port()
    local pid = support.spawn(("socat TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr EXEC:cat"):format(port))
    local got = run_guarded(function()
      local r, w = support.connect_retry(port)  -- this one connection is socat's
      local lines = {}
      for i = 1, 1000 do lines[i] = ("line %d\n"):format(i) end
      w:write(table.concat(lines))
      w:write_eof()            -- without it, cat never ends and read() never returns
      local all = await(r:read())
      assert.is_true(r:at_eof())
      w:close()
      return {all = all, sent = table.concat(lines)}
    end)
    support.kill(pid)
    assert.equal(#got.sent, #got.all)
    assert.equal(got.sent, got.all)
  end)

  it("our echo server sees nc's half-close as EOF and answers everything first", function()
    local port = support.free_port()
    local pid = support.spawn(("%s examples/echo.lua server %d"):format(LUA, port))
    support.run(support.wait_port, port)
    local out, code = support.sh(("printf 'one\\ntwo\\nthree\\n' | timeout 30 nc -N 127.0.0.1 %d"):format(port))
    support.kill(pid)
    assert.equal(0, code)
    assert.equal("one\ntwo\nthree\n", out)
  end)
end)
