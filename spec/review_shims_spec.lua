-- Defects a hostile review of the socket shims (asyncio.luasocket,
-- asyncio.ngx, sockbuf.lua) found (session of 2026-12-07, the second that
-- day): each spec here failed before its fix.
local asyncio = require "asyncio"
local ls = require "asyncio.luasocket"
local ngxm = require "asyncio.ngx"
local support = require "spec.support"
local await = asyncio.await

local serve = support.serve
local function finish(srv) support.finish_server(srv, true) end

local function ngx_client(port)
  local s = ngxm.ngx.socket.tcp()
  assert.equal(1, s:connect("127.0.0.1", port))
  return s
end

local function ls_client(port)
  local s = ls.tcp()
  assert.equal(1, s:connect("127.0.0.1", port))
  return s
end

-- A peer that sends "partial-no-newline" to each connection, then resets
-- it (SO_LINGER 0): python3, since the library's streams close gracefully.
local RST_PEER = [[
import socket, struct, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5)
while True:
    c, _ = s.accept()
    c.sendall(b"partial-no-newline")
    time.sleep(0.1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
]]

describe("the review of the socket shims", function()
  after_each(support.assert_clean)

  it("ngx: setkeepalive refuses a connection whose stream holds bytes not read yet", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(r, w)
        while true do
          local line = await(r:readline())
          if line == "" then break end
          if line == "BIG\n" then w:write(("x"):rep(65536) .. "STALE-REPLY\n")
          else w:write("reply to " .. line) end
        end
      end)
      local a = ngx_client(port)
      a:send("BIG\n")
      local body = a:receive(65536)
      -- until the last 12 bytes are in the stream (read, not in the kernel)
      while a._reader._conn.box:_buffered() == 0 do await(asyncio.sleep(0.005)) end
      local r = {#body, a:setkeepalive()}
      local b = ngx_client(port)
      r[#r + 1] = b:getreusedtimes()
      b:send("PING\n")
      r[#r + 1] = b:receive()
      a:close()
      b:close()
      finish(srv)
      return r
    end)
    assert.same({65536, nil, "connection in dubious state", 0, "reply to PING"}, got)
  end)

  it("ngx: setkeepalive refuses a socket another task is sending on ('socket busy writing')", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(r)
        await(go:wait())
        while await(r:read(65536)) ~= "" do end
      end)
      local s = ngx_client(port)
      -- (more than loopback's socket buffers hold: the send waits)
      local sender = asyncio.create_task(function() return s:send(("y"):rep(32 << 20)) end)
      support.ticks(5)
      local r = {sender:done(), s:setkeepalive()}
      r[#r + 1] = ngxm.idle_connections("127.0.0.1:" .. port)
      go:set()
      r[#r + 1] = await(sender)
      s:close()
      finish(srv)
      return r
    end)
    assert.same({false, nil, "socket busy writing", 0, 32 << 20}, got)
  end)

  it("both: '*a' ended by a connection reset is an error with the partial data, not a whole reply", function()
    local port = support.free_port()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(RST_PEER)
    f:close()
    local pid = support.spawn(("python3 %s %d"):format(script, port))
    local ok, got = pcall(support.run_within, 30, function()
      support.wait_port(port)
      local r = {}
      local a = ls_client(port)
      r.ls = {a:receive("*a")}
      a:close()
      local b = ngx_client(port)
      r.ngx = {b:receive("*a")}
      b:close()
      return r
    end)
    support.kill(pid)
    os.remove(script)
    assert(ok, got)
    assert.same({nil, "closed", "partial-no-newline"}, got.ls)
    assert.same({nil, "closed", "partial-no-newline"}, got.ngx)
  end)

  it("both: '*a' once the stream has ended is nil, 'closed' (a loop reading until it fails ends)", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("tail")
        w:close()
      end)
      local a = ls_client(port)
      local b = ngx_client(port)
      local r = {ls = {a:receive("*a")}, ngx = {b:receive("*a")}}
      r.ls_again, r.ngx_again = {a:receive("*a")}, {b:receive("*a")}
      local n = 0
      while n < 10 and a:receive("*a") do n = n + 1 end
      r.loops = n
      a:close()
      b:close()
      -- LuaSocket's rule: an end with nothing before it is "closed" too
      local srv2, port2 = serve(function(_, w) w:close() end)
      local c = ls_client(port2)
      r.empty = {c:receive("*a")}
      c:close()
      finish(srv)
      finish(srv2)
      return r
    end)
    assert.same({"tail"}, got.ls)
    assert.same({"tail"}, got.ngx)
    assert.same({nil, "closed", ""}, got.ls_again)
    assert.same({nil, "closed", ""}, got.ngx_again)
    assert.equal(0, got.loops)
    assert.same({nil, "closed", ""}, got.empty)
  end)

  it("luasocket: receive(n, prefix) counts the prefix among the n bytes; a count may be a numeric string or a fraction",
     function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("0123456789abcdef")
        w:close()
      end)
      local s = ls_client(port)
      local r = {s:receive(5, "XYZ"), s:receive(2, "LONGER"), s:receive("3"), s:receive(2.7), s:receive("*a")}
      s:close()
      finish(srv)
      return r
    end)
    assert.same({"XYZ01", "LONGER", "234", "56", "789abcdef"}, got)
  end)

  it("ngx: receiveuntil with inclusive and a size ends each record at its pattern", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(_, w)
        w:write("abc--END--def--END--")
        w:close()
      end)
      local s = ngx_client(port)
      local it = s:receiveuntil("--END--", {inclusive = true})
      local records = {}
      for _ = 1, 2 do
        local parts = {}
        while true do
          local data, err = it(2)
          if err then parts[#parts + 1] = "error " .. err break end
          if not data then break end
          parts[#parts + 1] = data
        end
        records[#records + 1] = table.concat(parts)
      end
      s:close()
      finish(srv)
      return records
    end)
    assert.same({"abc--END--", "def--END--"}, got)
  end)

  it("ngx: receiveuntil's retry after a time limit that fell inside the pattern still finds it", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("abc--EN")
        await(go:wait())
        w:write("D--second--END--")
        w:close()
      end)
      local s = ngx_client(port)
      s:settimeout(50)
      local it = s:receiveuntil("--END--")
      local r = {{it()}}
      go:set()
      r[#r + 1] = {it()}
      r[#r + 1] = {it()}
      s:close()
      finish(srv)
      return r
    end)
    assert.same({{nil, "timeout", "abc"}, {""}, {"second"}}, got)
  end)

  it("big reads cost memory in proportion to their size, not to its square", function()
    local _, built = support.sh("make -s build/bench/malloccount.so")
    assert.equal(0, built)
    local size = 16 << 20
    local bytes = {}
    for _, how in ipairs({"ls_all", "ngx_count", "ngx_until"}) do
      local out_file = os.tmpname()
      local out, code = support.lua_run(([[
        local asyncio = require "asyncio"
        local await, ls, ngx = asyncio.await, require "asyncio.luasocket", require("asyncio.ngx").ngx
        local SIZE, how = %d, %q
        asyncio.run(function()
          local srv = await(asyncio.start_server(function(_, w)
            local block = ("z"):rep(65536)
            for _ = 1, SIZE // 65536 do w:write(block) await(w:drain()) end
            w:write("--END--")
            w:close()
          end, "127.0.0.1", 0))
          local port = srv:sockets()[1]:getsockname()[2]
          local data
          if how == "ls_all" then
            local s = ls.connect("127.0.0.1", port)
            data = s:receive("*a")
            s:close()
          else
            local s = ngx.socket.tcp()
            assert(s:connect("127.0.0.1", port))
            if how == "ngx_count" then data = s:receive(SIZE)
            else data = s:receiveuntil("--END--")() end
            s:close()
          end
          assert(#data >= SIZE, #data)
          srv:close()
          await(srv:wait_closed())
        end)
      ]]):format(size, how), ("MALLOCCOUNT_OUT=%s LD_PRELOAD=build/bench/malloccount.so "):format(out_file))
      local f = assert(io.open(out_file))
      local line = f:read("a")
      f:close()
      os.remove(out_file)
      assert.equal(0, code, out)
      bytes[how] = tonumber(line:match("bytes (%d+)"))
    end
    -- before: each 64 KiB chunk copied the whole buffer again (about 2 GiB
    -- for 16 MiB); now a few copies of the data
    for how, n in pairs(bytes) do
      assert(n < 12 * size, ("%s allocated %d bytes for %d"):format(how, n, size))
    end
  end)

  it("ngx: a receive that fails after another task reconnected the socket leaves the new connection alone", function()
    local got = support.run_within(30, function()
      local srv, port = serve(function(r, w)
        while true do
          local line = await(r:readline())
          if line == "" then break end
          if line ~= "quiet\n" then w:write("echo " .. line) end
        end
      end)
      -- an idle connection in the pool, so that the reconnect does not wait
      local p = ngx_client(port)
      assert.equal(1, p:setkeepalive(0))
      local s = ngx_client(port)  -- takes it (reused once); so pool one more
      local q = ngx_client(port)
      q:send("quiet\n")
      local reading = asyncio.create_task(function() return {s:receive()} end)
      support.ticks(3)
      assert.equal(1, q:setkeepalive(0))
      local r = {reconnect = s:connect("127.0.0.1", port), reused = s:getreusedtimes()}
      r.a = await(reading)
      r.send = s:send("hello\n")
      r.reply = s:receive()
      s:close()
      finish(srv)
      return r
    end)
    assert.same({reconnect = 1, reused = 1, a = {nil, "closed", ""}, send = 6, reply = "echo hello"}, got)
  end)

  it("ngx: a socket collected while connected closes its connection, without an 'unclosed stream' report", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local await, ngx = asyncio.await, require("asyncio.ngx").ngx
      asyncio.run(function()
        local ended = asyncio.Event()
        local srv = await(asyncio.start_server(function(r)
          await(r:read())
          ended:set()
        end, "127.0.0.1", 0))
        local port = srv:sockets()[1]:getsockname()[2]
        local t = asyncio.create_task(function()
          local s = ngx.socket.tcp()
          assert(s:connect("127.0.0.1", port))
          s:send("request\n")
          return s:receive()
        end)
        await(asyncio.sleep(0.02))
        t:cancel()
        pcall(await, t)
        t = nil
        collectgarbage() collectgarbage()
        await(asyncio.wait_for(ended:wait(), 10))
        print("the server saw the end")
        srv:close()
      end)
    ]])
    assert.equal(0, code, out)
    assert.matches("the server saw the end", out, 1, true)
    assert.not_matches("unclosed", out, 1, true)
  end)

  it("argument errors name the program's line; a send of an array inside itself is refused", function()
    local got = support.run_within(30, function()
      local r = {}
      -- (not tail calls: the error's position is the calling line's)
      r.port = select(2, pcall(function() local c = ls.connect("127.0.0.1", "abc") return c end))
      r.host = select(2, pcall(function() local c = ls.connect(nil, 80) return c end))
      r.tcp_port = select(2, pcall(function() local c = ls.tcp():connect("127.0.0.1", -1) return c end))
      local t = {"a"}
      t[2] = t
      r.cyclic = select(2, pcall(ngxm.ngx.socket.tcp().send, ngxm.ngx.socket.tcp(), t))
      return r
    end)
    assert.matches("review_shims_spec.lua:%d+: bad argument #2 to 'connect' %(number expected, got string%)", got.port)
    assert.matches("review_shims_spec.lua:%d+: bad argument #1 to 'connect' %(string expected, got nil%)", got.host)
    assert.matches("review_shims_spec.lua:%d+: bad argument #2 to 'connect' %(port out of range%)", got.tcp_port)
    assert.matches("bad argument #1 to 'send' (bad data type table (an array inside itself) in the table)",
      got.cyclic, 1, true)
  end)

  -- (a review of the fixes above found the next three)
  it("two tasks receiving on one socket: luasocket serves them in turn, ngx says 'socket busy reading'", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        await(go:wait())
        w:write("l1\nl2\nl3\n")
        await(asyncio.sleep(0.01))
        w:write("l4\nl5\nl6\n")
        w:close()
      end)
      local r = {}
      local a = ls_client(port)
      local lines = {}
      local function reader(name)
        while true do
          local line = a:receive()
          if not line then return end
          lines[#lines + 1] = line
          r[#r + 1] = name
          await(asyncio.sleep(0.005))  -- works on the line a while
        end
      end
      local t1, t2 = asyncio.create_task(reader, "A"), asyncio.create_task(reader, "B")
      support.ticks(3)
      go:set()
      await(t1)
      await(t2)
      a:close()
      r.lines = table.concat(lines, " ")
      local srv2, port2 = serve(function(r2) await(r2:read()) end)
      local b = ngx_client(port2)
      local first = asyncio.create_task(function() return {b:receive()} end)
      support.ticks(3)
      r.second = {b:receive()}
      b:close()
      r.first = await(first)
      finish(srv)
      finish(srv2)
      return r
    end)
    assert.equal("l1 l2 l3 l4 l5 l6", got.lines)
    assert.same({nil, "socket busy reading"}, got.second)
    assert.same({nil, "closed", ""}, got.first)
  end)

  it("ngx: receiveuntil with a size hands out the data before a possible start of the pattern at once", function()
    local got = support.run_within(30, function()
      local go = asyncio.Event()
      local srv, port = serve(function(_, w)
        w:write("abcd\r\n")
        await(go:wait())
        w:write("\r\nnext")
        w:close()
      end)
      local s = ngx_client(port)
      s:settimeout(5000)
      local it = s:receiveuntil("\r\n\r\n")
      local r = {it(2), it(2)}  -- before: "cd" waited for more bytes
      go:set()
      r[#r + 1] = {it(2)}
      r[#r + 1] = s:receive("*a")
      s:close()
      finish(srv)
      return r
    end)
    assert.same({"ab", "cd", {}, "next"}, got)
  end)
end)
