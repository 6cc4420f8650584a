-- Cancelled readers lose no bytes, and the readers of one stream are
-- served in the order they asked (streams.lua's turn to read, stream.c's
-- _unread, subprocess.lua's communicate). Real sockets on 127.0.0.1 and
-- real child processes; events are ordered by sleep(0) and by what the
-- buffer holds, never by the clock.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local run = support.run

-- The bytes buffered in a reader, and whether EOF came (a look inside).
local function buffered(reader) return reader._conn.box:_buffered() end

-- Let the loop run until 'reader' holds at least 'n' bytes (and EOF if
-- 'eof'): the bytes are then there for a read that starts next.
local function until_buffered(reader, n, eof)
  while true do
    local k, at_eof = buffered(reader)
    if k >= n and (at_eof or not eof) then return end
    await(asyncio.sleep(0))
  end
end

-- A connected pair on 127.0.0.1: fn(r, cw) with 'r' the server's reader
-- and 'cw' the client's writer; everything is closed afterwards.
local function with_pair(fn)
  return run(function()
    local r, w
    local done = asyncio.Event()
    local srv = await(asyncio.start_server(function(sr, sw)
      r, w = sr, sw
      await(done:wait())
    end, "127.0.0.1", 0))
    local port = srv:sockets()[1]:getsockname()[2]
    local _, cw = await(asyncio.open_connection("127.0.0.1", port))
    while not r do await(asyncio.sleep(0)) end
    local res = table.pack(fn(r, cw))
    cw:close()
    w:close()
    srv:close()
    done:set()
    await(srv:wait_closed())
    return table.unpack(res, 1, res.n)
  end)
end

-- Start a task reading with 'op' (a function of no arguments), let it
-- take what is buffered and wait for more, cancel it; returns how it ended.
local function cancel_reader(op)
  local t = asyncio.create_task(op)
  support.ticks(5)
  assert.is_false(t:done())
  t:cancel()
  local ok, err = pcall(await, t)
  assert.is_false(ok)
  assert.is_true(asyncio.CancelledError:is(err))
end

describe("a cancelled read", function()
  it("read() to EOF cancelled after taking bytes gives them to the next read", function()
    local got = with_pair(function(r, cw)
      cw:write("abc")
      until_buffered(r, 3)
      cancel_reader(function() return await(r:read()) end)
      cw:write("def")
      cw:write_eof()
      return await(r:read())
    end)
    assert.equal("abcdef", got)
  end)

  it("read(-1) under wait_for that times out leaves the bytes for readexactly", function()
    local got = with_pair(function(r, cw)
      cw:write("head-")
      until_buffered(r, 5)
      local ok, e = pcall(await, asyncio.wait_for(r:read(-1), 0.01))
      assert.is_false(ok)
      assert.is_true(asyncio.TimeoutError:is(e))
      cw:write("tail")
      return await(r:readexactly(9))
    end)
    assert.equal("head-tail", got)
  end)

  it("readexactly cancelled partway leaves the partial data in the buffer", function()
    local got = with_pair(function(r, cw)
      cw:write("abc")
      until_buffered(r, 3)
      cancel_reader(function() return await(r:readexactly(5)) end)
      assert.equal(3, (buffered(r)))
      cw:write("de")
      return await(r:readexactly(5))
    end)
    assert.equal("abcde", got)
  end)

  it("readuntil cancelled before its separator leaves the data in the buffer", function()
    local got = with_pair(function(r, cw)
      cw:write("key=")
      until_buffered(r, 4)
      cancel_reader(function() return await(r:readuntil(";")) end)
      cw:write("value;")
      return await(r:readuntil(";"))
    end)
    assert.equal("key=value;", got)
  end)
end)

describe("several readers of one stream", function()
  it("are served in the order they asked, also against a task reading line after line", function()
    local got = with_pair(function(r, cw)
      local order = {}
      local function note(who, line) order[#order + 1] = who .. ":" .. line:sub(1, -2) end
      local a = asyncio.create_task(function()
        note("A", await(r:readline()))
        note("A", await(r:readline()))  -- asked after B and C: served after them
      end)
      support.ticks(1)
      local b = asyncio.create_task(function() note("B", await(r:readline())) end)
      support.ticks(1)
      local c = asyncio.create_task(function() note("C", await(r:readline())) end)
      support.ticks(1)
      cw:write("1\n2\n3\n4\n")
      await(asyncio.gather(a, b, c))
      return table.concat(order, " ")
    end)
    assert.equal("A:1 B:2 C:3 A:4", got)
  end)

  it("a reader cancelled while it has the turn passes it to the next one", function()
    local got = with_pair(function(r, cw)
      cw:write("x")
      until_buffered(r, 1)
      local a = asyncio.create_task(function() return await(r:readexactly(4)) end)
      support.ticks(1)
      local b = asyncio.create_task(function() return await(r:readline()) end)
      local c = asyncio.create_task(function() return await(r:readline()) end)
      support.ticks(1)
      a:cancel()
      assert.is_false(pcall(await, a))
      cw:write("1\n2\n")
      return await(b) .. await(c)
    end)
    assert.equal("x1\n2\n", got)
  end)

  it("a reader cancelled after the turn came to it, before it ran, passes it on", function()
    local got = with_pair(function(r, cw)
      local b
      local a = asyncio.create_task(function()
        local line = await(r:readline())
        b:cancel()  -- the turn is B's now, but B has not run yet
        return line
      end)
      support.ticks(1)
      b = asyncio.create_task(function() return await(r:readline()) end)
      local c = asyncio.create_task(function() return await(r:readline()) end)
      support.ticks(1)
      cw:write("1\n2\n")
      local first = await(a)
      assert.is_false(pcall(await, b))
      return first .. await(c) .. (buffered(r))
    end)
    assert.equal("1\n2\n0", got)
  end)
end)

describe("process:communicate() cancelled", function()
  -- Run 'cmd' (sh), wait until stdout holds 3 bytes and stderr 3 (with EOF
  -- on the pipes the command closes: 'eofs'), run communicate in a task,
  -- let it take what is there, cancel it, end the process; returns what
  -- stdout and stderr read afterwards.
  local function communicate_cancelled(cmd, eofs)
    return run(function()
      local p = await(asyncio.create_subprocess_shell(cmd, {stdout = "pipe", stderr = "pipe"}))
      until_buffered(p.stdout, 3, eofs)
      until_buffered(p.stderr, 3, eofs == "both")
      cancel_reader(function() return await(p:communicate()) end)
      p:kill()
      await(p:wait())
      return await(p.stdout:read()), await(p.stderr:read())
    end)
  end

  it("while both pipes are open: what it read comes out of the next reads", function()
    local out, err = communicate_cancelled("printf out; printf err >&2; exec sleep 30")
    assert.equal("out", out)
    assert.equal("err", err)
  end)

  it("after stdout ended, while stderr is open: both are still there", function()
    local out, err = communicate_cancelled("printf out; exec 1>&-; printf err >&2; exec sleep 30",
      "stdout")
    assert.equal("out", out)
    assert.equal("err", err)
  end)

  it("while waiting for the exit, both pipes ended: both are still there", function()
    local out, err = communicate_cancelled("printf out; printf err >&2; exec 1>&- 2>&-; exec sleep 30",
      "both")
    assert.equal("out", out)
    assert.equal("err", err)
  end)
end)

describe("Unix socket paths", function()
  after_each(support.assert_clean)

  it("a path too long for a socket address is refused on both sides, never cut short", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    -- the longest path that fits (107 bytes), and the same with more after it
    local fits = dir .. "/" .. ("s"):rep(107 - #dir - 1)
    local long = fits .. "_and_more"
    local ok, connected, listen_err
    support.run(function()
      local srv = await(asyncio.start_unix_server(function(_, w) w:close() end, fits))
      -- before: libuv cut 'long' to 'fits' and connected to this server
      ok, connected = asyncio.pcall(await, asyncio.open_unix_connection(long))
      local lok
      lok, listen_err = asyncio.pcall(await, asyncio.start_unix_server(print, long))
      assert.is_false(lok)
      srv:close()
      await(srv:wait_closed())
    end)
    os.execute("rm -rf " .. dir)
    assert.is_false(ok)
    assert.is_true(asyncio.OSError:is(connected), tostring(connected))
    assert.equal("ENAMETOOLONG", connected.errno)
    assert.equal("ENAMETOOLONG", listen_err.errno)
  end)
end)
