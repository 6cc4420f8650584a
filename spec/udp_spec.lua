-- UDP endpoints (udp.lua, udp.c): between two endpoints, against socat as
-- the peer, datagrams up to 64 KiB, and a closed port.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local run = support.run

describe("UDP endpoints", function()
  it("sendto and recvfrom between two endpoints, with the sender's address", function()
    local got = run(function()
      local a <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      local b <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      local pa, pb = a:getsockname()[2], b:getsockname()[2]
      a:sendto("ping", "127.0.0.1", pb)
      local data, host, port = await(b:recvfrom())
      b:sendto(data:upper(), host, port)
      local back = await(a:recvfrom())
      return {data, host, port == pa, back}
    end)
    assert.same({"ping", "127.0.0.1", true, "PING"}, got)
  end)

  it("datagrams up to 64 KiB keep their boundaries", function()
    local sizes = run(function()
      local b <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      local a <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", b:getsockname()[2]}}))
      local out = {}
      for _, n in ipairs({0, 1, 1500, 9000, 65507}) do
        a:send(("d"):rep(n))
        out[#out + 1] = #(await(b:recvfrom()))
      end
      return out
    end)
    assert.same({0, 1, 1500, 9000, 65507}, sizes)
  end)

  it("talks to socat as the peer (an echo through cat)", function()
    local port = support.free_port()
    local pid = support.spawn(("socat UDP4-RECVFROM:%d,bind=127.0.0.1,fork EXEC:cat"):format(port))
    local got = run(function()
      local e <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", port}}))
      for _ = 1, 200 do  -- until socat listens (an answer is the proof; until
        e:send("hello udp")  -- then the kernel reports the port closed)
        local ok, data = pcall(await, asyncio.wait_for(e:recvfrom(), 0.05))
        if ok then return data end
        await(asyncio.sleep(0.025))
      end
    end)
    support.kill(pid)
    assert.equal("hello udp", got)
  end)

  it("sending to a closed port: the connected endpoint's recvfrom raises ConnectionRefusedError", function()
    local port = support.free_port()
    local err = run(function()
      local e <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", port}}))
      e:send("anyone?")
      local ok, x = pcall(await, asyncio.wait_for(e:recvfrom(), 5))
      assert.is_false(ok)
      return x
    end)
    assert.is_true(asyncio.ConnectionRefusedError:is(err), tostring(err))
  end)

  it("a recvfrom cancelled loses no datagram; close wakes a waiting task", function()
    local res = run(function()
      local b = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      local a <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", b:getsockname()[2]}}))
      local ok = pcall(await, asyncio.wait_for(b:recvfrom(), 0.01))
      assert.is_false(ok)
      a:send("kept")
      local data = await(b:recvfrom())
      local waiter = asyncio.create_task(function() return await(b:recvfrom()) end)
      await(asyncio.sleep(0))
      b:close()
      local ok2, e = pcall(await, waiter)
      return {data = data, ok2 = ok2, errno = e and e.errno}
    end)
    assert.same({data = "kept", ok2 = false, errno = "EBADF"}, res)
  end)

  it("bad arguments name the function and the argument", function()
    run(function()
      assert.has_error(function() asyncio.open_udp({local_addr = {"127.0.0.1"}}) end,
        "bad argument #1 to 'open_udp' (local_addr must be {host, port})")
      local e <close> = await(asyncio.open_udp())
      assert.has_error(function() e:send("x") end,
        "send: the endpoint has no remote_addr (use sendto)")
      assert.has_error(function() e:sendto(1, "127.0.0.1", 9) end,
        "bad argument #2 to 'sendto' (string expected, got number)")
    end)
  end)

  -- (review of 2026-12-07: send raised an earlier datagram's refusal, and
  -- dropped its own datagram)
  it("a burst of sends to a closed port never raises; the refusal goes to recvfrom", function()
    local port = support.free_port()
    local res = run(function()
      local e <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", port}}))
      local oks = {}
      for i = 1, 6 do  -- back to back: on loopback each send's ICMP report is there at the next
        oks[i] = pcall(e.send, e, "datagram " .. i)
      end
      local ok, x = pcall(await, asyncio.wait_for(e:recvfrom(), 5))
      return {oks = oks, ok = ok, err = x}
    end)
    assert.same({true, true, true, true, true, true}, res.oks)
    assert.is_false(res.ok)
    assert.is_true(asyncio.ConnectionRefusedError:is(res.err), tostring(res.err))
  end)

  it("an endpoint whose waiting task's coroutine was closed takes the next waiter", function()
    local res = run(function()
      asyncio.get_running_loop():set_exception_handler(function() end)  -- the tampered task
      local b <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
      local a <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", b:getsockname()[2]}}))
      local co
      local t = asyncio.create_task(function() co = coroutine.running(); return await(b:recvfrom()) end)
      await(asyncio.sleep(0))
      coroutine.close(co)
      a:send("x")  -- wakes the closed task: it ends
      await(asyncio.wait({t}))
      local first = await(asyncio.wait_for(b:recvfrom(), 5))
      local ok, err = pcall(await, asyncio.wait_for(b:recvfrom(), 0.01))  -- has to wait
      return {first = first, ok = ok, err = err}
    end)
    assert.equal("x", res.first)
    assert.is_false(res.ok)
    assert.is_true(asyncio.TimeoutError:is(res.err), tostring(res.err))
  end)

  it("a local name resolves to the remote address's family", function()
    local res = run(function()
      local ok, e = pcall(await, asyncio.open_udp({local_addr = {"localhost", 0},
                                                   remote_addr = {"::1", 9}}))
      local out = {ok = ok, err = not ok and e or nil, host = ok and e:getsockname()[1] or nil}
      if ok then e:close() end
      return out
    end)
    -- bound to ::1, or localhost has no IPv6 address here: never the IPv4
    -- address, which cannot reach ::1 (EAFNOSUPPORT)
    if res.ok then assert.equal("::1", res.host)
    else assert.is_true(asyncio.gaierror:is(res.err), tostring(res.err)) end
  end)

  it("a recvfrom already waiting gets the refusal a send found", function()
    local port = support.free_port()
    local res = run(function()
      local a <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", port}}))
      local reader = asyncio.create_task(function()
        return pcall(await, asyncio.wait_for(a:recvfrom(), 30))
      end)
      await(asyncio.sleep(0))  -- the reader waits
      a:send("1")  -- the port is closed: its report waits on the socket
      local b <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", port}}))
      a:send("2")  -- finds the report before it goes; "2" still goes
      local got = await(asyncio.wait_for(b:recvfrom(), 30))
      local ok, err = await(reader)
      return {got = got, ok = ok, err = err}
    end)
    assert.equal("2", res.got)
    assert.is_false(res.ok)
    assert.is_true(asyncio.ConnectionRefusedError:is(res.err), tostring(res.err))
  end)
end)
